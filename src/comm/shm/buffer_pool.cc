#include "buffer_pool.h"

#include <iterator>
#include <map>
#include <mutex>

namespace tessera::comm::shm {
namespace {

constexpr std::size_t kPage = 4096;

}  // namespace

struct BufferPool::State {
  std::shared_ptr<Segment> segment;
  std::size_t offset;  // of the pool in the segment
  std::size_t bytes;
  std::mutex mutex;
  std::map<std::size_t, std::size_t> free;  // offset in the pool -> length, coalesced

  void give_back(std::size_t at, std::size_t length) {
    std::lock_guard<std::mutex> lock(mutex);
    auto next = free.lower_bound(at);
    if (next != free.end() && at + length == next->first) {
      length += next->second;
      next = free.erase(next);
    }
    if (next != free.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == at) {
        prev->second += length;
        return;
      }
    }
    free.emplace(at, length);
  }
};

BufferPool::BufferPool(std::shared_ptr<Segment> segment, std::size_t offset, std::size_t bytes)
    : state_(std::make_shared<State>()) {
  state_->segment = std::move(segment);
  state_->offset = offset;
  state_->bytes = bytes;
  if (bytes > 0) state_->free.emplace(0, bytes);
}

std::shared_ptr<std::byte[]> BufferPool::allocate(std::size_t bytes) {
  const std::size_t length = std::max<std::size_t>((bytes + kPage - 1) / kPage * kPage, kPage);
  std::size_t at = 0;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto it = state_->free.begin();
    while (it != state_->free.end() && it->second < length) ++it;
    if (it == state_->free.end()) return nullptr;
    at = it->first;
    if (!state_->segment->reserve(state_->offset + at, length)) return nullptr;
    const std::size_t rest = it->second - length;
    state_->free.erase(it);
    if (rest > 0) state_->free.emplace(at + length, rest);
  }
  std::byte* p = state_->segment->base() + state_->offset + at;
  return std::shared_ptr<std::byte[]>(
      p, [state = state_, at, length](std::byte* /*p*/) { state->give_back(at, length); });
}

std::uint64_t BufferPool::offset_of(const void* p, std::size_t bytes) const {
  const auto* begin = state_->segment->base() + state_->offset;
  const auto* q = static_cast<const std::byte*>(p);
  if (q < begin || q + bytes > begin + state_->bytes) return kNotPooled;
  return static_cast<std::uint64_t>(q - begin);
}

}  // namespace tessera::comm::shm
