#include "key_index.h"

#include <algorithm>

namespace tessera::parallel::ps {

std::size_t KeyIndex::slot_of(uint64_t key) const {
  // Fibonacci hashing: the product's high bits. Independent of server_of_key's hash, whose low
  // bits are the same for every key one server holds.
  return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ULL) >> shift_);
}

KeyIndex::Found KeyIndex::find_or_insert(uint64_t key) {
  if (2 * (keys_.size() + 1) > slots_.size()) grow();
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t s = slot_of(key);; s = (s + 1) & mask) {
    Slot& slot = slots_[s];
    if (slot.index < 0) {
      slot = {key, static_cast<int64_t>(keys_.size())};
      keys_.push_back(key);
      return {slot.index, true};
    }
    if (slot.key == key) return {slot.index, false};
  }
}

void KeyIndex::clear() {
  if (keys_.empty()) return;
  // Many keys: one sequential pass over the slots beats a cache miss per key.
  if (16 * keys_.size() >= slots_.size()) {
    std::fill(slots_.begin(), slots_.end(), Slot{0, -1});
    keys_.clear();
    return;
  }
  const std::size_t mask = slots_.size() - 1;
  for (const uint64_t key : keys_) {
    std::size_t s = slot_of(key);
    while (slots_[s].index < 0 || slots_[s].key != key) s = (s + 1) & mask;
    slots_[s].index = -1;
  }
  keys_.clear();
}

void KeyIndex::grow() {
  const std::size_t size = slots_.empty() ? 64 : 2 * slots_.size();
  slots_.assign(size, Slot{0, -1});
  shift_ = 64 - __builtin_ctzll(size);
  const std::size_t mask = size - 1;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    std::size_t s = slot_of(keys_[i]);
    while (slots_[s].index >= 0) s = (s + 1) & mask;
    slots_[s] = {keys_[i], static_cast<int64_t>(i)};
  }
}

}  // namespace tessera::parallel::ps
