#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/comm/store.h"

namespace tessera::comm {

// A view of another store where every key is prefixed with `prefix` + "/": gives each job
// attempt or component its own key space on one shared store. Shares ownership of the
// underlying store; as thread-safe as it.
class PrefixStore final : public Store {
 public:
  PrefixStore(std::string prefix, std::shared_ptr<Store> store);

  void set(const std::string& key, std::string_view value) override;
  [[nodiscard]] bool check(const std::vector<std::string>& keys) override;
  std::int64_t add(const std::string& key, std::int64_t delta) override;
  std::string compare_set(const std::string& key, std::string_view expected,
                          std::string_view desired) override;
  bool remove(const std::string& key) override;
  [[nodiscard]] std::string description() const override;

 protected:
  std::string do_get(const std::string& key, std::chrono::milliseconds timeout) override;
  void do_wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  [[nodiscard]] std::string full_key(const std::string& key) const;
  [[nodiscard]] std::vector<std::string> full_keys(const std::vector<std::string>& keys) const;

  std::string prefix_;
  std::shared_ptr<Store> store_;
};

}  // namespace tessera::comm
