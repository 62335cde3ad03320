#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "tessera/tensor/device.h"

namespace tessera {

// A block of memory, 64-byte aligned (a cache line; what AVX-512 loads want). Shared by every
// tensor that views it through std::shared_ptr<Storage>; freed with the last one.
class Storage {
 public:
  static constexpr size_t kAlignment = 64;
  // Uninitialised memory for nbytes.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = {});
  // nbytes of memory someone else allocated (e.g. ProcessGroup::allocate), aligned to
  // kAlignment; `memory` is kept alive as long as the storage.
  static std::shared_ptr<Storage> wrap(std::shared_ptr<void> memory, size_t nbytes);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // nullptr while released.
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Frees the memory but keeps the storage, so the tensors that view it (a fully sharded layer's
  // parameters, and what backward saved of them) see it again, with new contents, after
  // restore(). Throws ValueError on wrapped memory, which this storage does not own.
  void release();
  // Allocates the memory again (uninitialised) if released; counts against the cap as
  // allocate() does.
  void restore();
  [[nodiscard]] bool released() const { return data_ == nullptr; }

 private:
  Storage(void* data, size_t nbytes, Device device)
      : data_(data), nbytes_(nbytes), device_(device) {}
  void* data_;
  std::shared_ptr<void> external_;  // set by wrap(): the memory's owner; data_ is not freed
  size_t nbytes_;
  Device device_;
};

// Bytes of tensor storage alive in this process (allocated, or wrapped from elsewhere), and the
// most alive at once since the process started or the last reset_peak_storage_bytes(). They count
// every Storage of every thread, so ranks run as threads share them. Thread-safe.
[[nodiscard]] size_t live_storage_bytes();
[[nodiscard]] size_t peak_storage_bytes();
// Starts a new peak from the bytes alive now.
void reset_peak_storage_bytes();
// Caps the tensor memory this process allocates (0: no cap): an allocation that would take the
// live bytes over it throws Error naming the sizes, the cap and `source` (where it was set). Set
// it before the threads that allocate start.
void set_storage_limit(size_t bytes, std::string source);

}  // namespace tessera
