#include "tessera/tensor/storage.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tessera/core/error.h"
#include "tessera/core/memory.h"

namespace tessera {
namespace {

std::atomic<size_t> live_bytes{0};
std::atomic<size_t> peak_bytes{0};
std::atomic<size_t> limit_bytes{0};  // 0: none
std::string limit_source;            // set before limit_bytes, read after it

void count_allocation(size_t nbytes) {
  const size_t live = live_bytes.fetch_add(nbytes, std::memory_order_relaxed) + nbytes;
  size_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (live > peak && !peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

}  // namespace

size_t live_storage_bytes() { return live_bytes.load(std::memory_order_relaxed); }

size_t peak_storage_bytes() { return peak_bytes.load(std::memory_order_relaxed); }

void reset_peak_storage_bytes() {
  peak_bytes.store(live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void set_storage_limit(size_t bytes, std::string source) {
  limit_bytes.store(0, std::memory_order_release);
  limit_source = std::move(source);
  limit_bytes.store(bytes, std::memory_order_release);
}

namespace {

void check_limit(size_t nbytes) {
  const size_t limit = limit_bytes.load(std::memory_order_acquire);
  const size_t live = live_bytes.load(std::memory_order_relaxed);
  if (limit == 0 || (nbytes <= limit && live <= limit - nbytes)) return;
  throw Error("out of memory: a tensor of " + format_bytes(nbytes) +
              " would bring this process's " + "tensor memory from " + format_bytes(live) + " to " +
              format_bytes(live + nbytes) + ", over its cap of " + format_bytes(limit) + " (" +
              limit_source + ")");
}

// nbytes of aligned memory, counted.
void* allocate_bytes(size_t nbytes) {
  constexpr size_t kAlignment = Storage::kAlignment;
  if (nbytes > SIZE_MAX - kAlignment) {
    throw Error("out of memory: cannot allocate " + format_bytes(nbytes) + " for a tensor");
  }
  check_limit(nbytes);
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data == nullptr) {
    throw Error("out of memory: cannot allocate " + format_bytes(nbytes) +
                " for a tensor (this machine has " + format_bytes(physical_memory_bytes()) + ")");
  }
  count_allocation(nbytes);
  return data;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  return std::shared_ptr<Storage>(new Storage(allocate_bytes(nbytes), nbytes, device));
}

void Storage::release() {
  if (external_) throw ValueError("Storage::release: the memory is someone else's");
  if (data_ == nullptr) return;
  std::free(data_);
  data_ = nullptr;
  live_bytes.fetch_sub(nbytes_, std::memory_order_relaxed);
}

void Storage::restore() {
  if (data_ == nullptr) data_ = allocate_bytes(nbytes_);
}

std::shared_ptr<Storage> Storage::wrap(std::shared_ptr<void> memory, size_t nbytes) {
  if (reinterpret_cast<std::uintptr_t>(memory.get()) % kAlignment != 0) {
    throw ValueError("Storage::wrap: memory is not " + std::to_string(kAlignment) +
                     "-byte aligned");
  }
  auto storage = std::shared_ptr<Storage>(new Storage(memory.get(), nbytes, Device{}));
  storage->external_ = std::move(memory);
  count_allocation(nbytes);
  return storage;
}

Storage::~Storage() {
  if (data_ == nullptr) return;  // released
  live_bytes.fetch_sub(nbytes_, std::memory_order_relaxed);
  if (!external_) std::free(data_);
}

}  // namespace tessera
