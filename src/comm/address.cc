#include "tessera/comm/address.h"

#include <charconv>

namespace tessera::comm {

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    // A bare IPv6 address has several colons and no way to tell its port apart.
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  // Brackets belong around an IPv6 address, never inside a host.
  if (host.find_first_of("[]") != std::string_view::npos) return std::nullopt;
  int value = -1;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || port.empty() || error != std::errc() || end != port.data() + port.size() ||
      value < 0 || value > 65535) {
    return std::nullopt;
  }
  return HostPort{std::string(host), value};
}

}  // namespace tessera::comm
