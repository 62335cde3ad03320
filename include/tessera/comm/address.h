#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tessera::comm {

struct HostPort {
  std::string host;
  int port = 0;
};

// "HOST:PORT" or "[IPV6]:PORT", the port in 0-65535; nullopt when `text` is neither. The one
// parser of addresses given by users (the launcher's --rdzv, TESSERA_STORE_ADDR, MASTER_ADDR):
// callers name the option or variable in their error and decide whether port 0 is allowed.
[[nodiscard]] std::optional<HostPort> parse_host_port(std::string_view text);

}  // namespace tessera::comm
