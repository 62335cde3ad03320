#include "tessera/tensor/storage.h"

#include <cstdlib>
#include <new>

namespace tessera {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data == nullptr) throw std::bad_alloc();
  return std::shared_ptr<Storage>(new Storage(data, nbytes, device));
}

Storage::~Storage() { std::free(data_); }

}  // namespace tessera
