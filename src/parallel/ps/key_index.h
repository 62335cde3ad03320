#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

// Numbers 64-bit keys 0, 1, 2, ... in the order they are first seen: an open-addressing table
// (linear probing, at most half full) over flat arrays, for the per-key work of sparse pushes
// and pulls, where a node-based map spends most of its time allocating and chasing pointers.
// A slot holds its key beside its number, so that a lookup touches one cache line; loops over a
// batch of keys prefetch a few keys ahead, so that those lines arrive while others are probed.
namespace tessera::parallel::ps {

class KeyIndex {
 public:
  // How far ahead of find_or_insert a loop over keys calls prefetch.
  static constexpr std::size_t kPrefetchDistance = 8;

  // The key's number, and whether it was new (it then gets the next number).
  struct Found {
    int64_t index;
    bool inserted;
  };
  Found find_or_insert(uint64_t key);
  // Starts loading the key's slot into the cache; changes nothing.
  void prefetch(uint64_t key) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[slot_of(key)]);
  }
  [[nodiscard]] int64_t size() const { return static_cast<int64_t>(keys_.size()); }
  [[nodiscard]] uint64_t key(int64_t index) const { return keys_[static_cast<std::size_t>(index)]; }
  // Forgets every key; keeps the memory for the next use.
  void clear();

 private:
  struct Slot {
    uint64_t key;
    int64_t index;  // -1: empty
  };
  void grow();
  [[nodiscard]] std::size_t slot_of(uint64_t key) const;

  std::vector<Slot> slots_;
  std::vector<uint64_t> keys_;  // by number
  int shift_ = 64;
};

}  // namespace tessera::parallel::ps
