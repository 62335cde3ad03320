#include "tessera/comm/hash_store.h"

#include <algorithm>
#include <charconv>

#include "duration.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using Clock = std::chrono::steady_clock;

std::string join_keys(const std::vector<std::string>& keys) {
  std::string text = "[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) text += ", ";
    text += "'" + keys[i] + "'";
  }
  return text + "]";
}

}  // namespace

HashStore::HashStore(std::chrono::milliseconds timeout) : Store(timeout) {}

void HashStore::set(const std::string& key, std::string_view value) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    values_[key] = std::string(value);
  }
  changed_.notify_all();
}

std::string HashStore::do_get(const std::string& key, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_until(lock, start + timeout, [&] { return values_.count(key) > 0; })) {
    throw TimeoutError(detail::concat(description(), ": get of key '", key, "' timed out after ",
                                      to_ms(Clock::now() - start), " ms: the key was never set"));
  }
  return values_.find(key)->second;
}

void HashStore::do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  auto all_set = [&] {
    return std::all_of(keys.begin(), keys.end(),
                       [&](const auto& k) { return values_.count(k) > 0; });
  };
  if (!changed_.wait_until(lock, start + timeout, all_set)) {
    std::vector<std::string> missing;
    for (const auto& k : keys) {
      if (values_.count(k) == 0) missing.push_back(k);
    }
    throw TimeoutError(detail::concat(description(), ": wait for keys ", join_keys(keys),
                                      " timed out after ", to_ms(Clock::now() - start),
                                      " ms; missing: ", join_keys(missing)));
  }
}

bool HashStore::check(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::all_of(keys.begin(), keys.end(), [&](const auto& k) { return values_.count(k) > 0; });
}

std::int64_t HashStore::add(const std::string& key, std::int64_t delta) {
  std::int64_t value = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if (it != values_.end()) {
      const std::string& text = it->second;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || ptr != text.data() + text.size()) {
        throw ValueError(detail::concat(description(), ": add: key '", key,
                                        "' holds a value that is not an integer"));
      }
    }
    value = static_cast<std::int64_t>(static_cast<std::uint64_t>(value) +
                                      static_cast<std::uint64_t>(delta));
    values_[key] = std::to_string(value);
  }
  changed_.notify_all();
  return value;
}

std::string HashStore::compare_set(const std::string& key, std::string_view expected,
                                   std::string_view desired) {
  std::string current;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if ((it == values_.end() && expected.empty()) ||
        (it != values_.end() && it->second == expected)) {
      values_[key] = std::string(desired);
      current = std::string(desired);
    } else {
      current = it == values_.end() ? std::string() : it->second;
    }
  }
  changed_.notify_all();
  return current;
}

bool HashStore::remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  return values_.erase(key) > 0;
}

std::string HashStore::description() const { return "in-process store"; }

}  // namespace tessera::comm
