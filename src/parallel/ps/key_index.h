#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

// Numbers 64-bit keys 0, 1, 2, ... in the order they are first seen: an open-addressing table
// (linear probing, at most half full) over flat arrays, for the per-key work of sparse pushes
// and pulls, where a node-based map spends most of its time allocating and chasing pointers.
namespace tessera::parallel::ps {

class KeyIndex {
 public:
  // The key's number, and whether it was new (it then gets the next number).
  struct Found {
    int64_t index;
    bool inserted;
  };
  Found find_or_insert(uint64_t key);
  [[nodiscard]] int64_t size() const { return static_cast<int64_t>(keys_.size()); }
  [[nodiscard]] uint64_t key(int64_t index) const { return keys_[static_cast<std::size_t>(index)]; }
  // Forgets every key, in time proportional to their number; keeps the memory for the next use.
  void clear();

 private:
  void grow();
  [[nodiscard]] std::size_t slot_of(uint64_t key) const;

  std::vector<int64_t> slots_;  // -1: empty; else an index into keys_
  std::vector<uint64_t> keys_;
  int shift_ = 64;
};

}  // namespace tessera::parallel::ps
