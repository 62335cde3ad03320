#include "tessera/comm/prefix_store.h"

#include "tessera/core/error.h"

namespace tessera::comm {

PrefixStore::PrefixStore(std::string prefix, std::shared_ptr<Store> store)
    : Store(store ? store->timeout() : std::chrono::milliseconds(1)),
      prefix_(std::move(prefix)),
      store_(std::move(store)) {
  if (!store_) throw ValueError("PrefixStore: null store");
}

std::string PrefixStore::full_key(const std::string& key) const { return prefix_ + "/" + key; }

std::vector<std::string> PrefixStore::full_keys(const std::vector<std::string>& keys) const {
  std::vector<std::string> full;
  full.reserve(keys.size());
  for (const auto& k : keys) full.push_back(full_key(k));
  return full;
}

void PrefixStore::set(const std::string& key, std::string_view value) {
  store_->set(full_key(key), value);
}

std::string PrefixStore::do_get(const std::string& key, std::chrono::milliseconds timeout) {
  return store_->get(full_key(key), timeout);
}

void PrefixStore::do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  store_->wait(full_keys(keys), timeout);
}

bool PrefixStore::check(const std::vector<std::string>& keys) {
  return store_->check(full_keys(keys));
}

std::int64_t PrefixStore::add(const std::string& key, std::int64_t delta) {
  return store_->add(full_key(key), delta);
}

std::string PrefixStore::compare_set(const std::string& key, std::string_view expected,
                                     std::string_view desired) {
  return store_->compare_set(full_key(key), expected, desired);
}

bool PrefixStore::remove(const std::string& key) { return store_->remove(full_key(key)); }

std::string PrefixStore::description() const {
  return store_->description() + " (keys under '" + prefix_ + "/')";
}

}  // namespace tessera::comm
