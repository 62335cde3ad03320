#include "tessera/tensor/storage.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include "tessera/core/error.h"
#include "tessera/core/memory.h"

namespace tessera {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  if (nbytes > SIZE_MAX - kAlignment) {
    throw Error("out of memory: cannot allocate " + format_bytes(nbytes) + " for a tensor");
  }
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data == nullptr) {
    throw Error("out of memory: cannot allocate " + format_bytes(nbytes) +
                " for a tensor (this machine has " + format_bytes(physical_memory_bytes()) + ")");
  }
  return std::shared_ptr<Storage>(new Storage(data, nbytes, device));
}

std::shared_ptr<Storage> Storage::wrap(std::shared_ptr<void> memory, size_t nbytes) {
  if (reinterpret_cast<std::uintptr_t>(memory.get()) % kAlignment != 0) {
    throw ValueError("Storage::wrap: memory is not " + std::to_string(kAlignment) +
                     "-byte aligned");
  }
  auto storage = std::shared_ptr<Storage>(new Storage(memory.get(), nbytes, Device{}));
  storage->external_ = std::move(memory);
  return storage;
}

Storage::~Storage() {
  if (!external_) std::free(data_);
}

}  // namespace tessera
