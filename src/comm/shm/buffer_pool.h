#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "segment.h"

namespace tessera::comm::shm {

// One rank's pool in its group's segment: memory every rank of the group has mapped, for the
// buffers of collectives that then run without staging copies (see ShmGroup's allreduce).
// First fit over whole pages; thread-safe. A buffer keeps the segment mapped while it lives, so
// it may outlive its group.
class BufferPool {
 public:
  // The pool is [offset, offset + bytes) of `segment`.
  BufferPool(std::shared_ptr<Segment> segment, std::size_t offset, std::size_t bytes);

  // A page-aligned buffer of at least `bytes`, backed by memory now; nullptr when no free range
  // is large enough or /dev/shm has no room left.
  [[nodiscard]] std::shared_ptr<std::byte[]> allocate(std::size_t bytes);

  // The offset in this pool of [p, p + bytes) when it lies inside the pool, else kNotPooled.
  [[nodiscard]] std::uint64_t offset_of(const void* p, std::size_t bytes) const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the buffers, whose deleters give ranges back
};

}  // namespace tessera::comm::shm
