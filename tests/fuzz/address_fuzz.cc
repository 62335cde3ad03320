// The HOST:PORT parser (--rdzv, TESSERA_STORE_ADDR, MASTER_ADDR): any text is an address or
// nullopt, and an address written back as the store writes it parses to the same one.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tessera/comm/address.h"
#include "tessera/comm/socket.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::optional<tessera::comm::HostPort> address = tessera::comm::parse_host_port(text);
  if (!address) return 0;
  if (address->host.empty() || address->port < 0 || address->port > 65535) __builtin_trap();
  const std::optional<tessera::comm::HostPort> again =
      tessera::comm::parse_host_port(tessera::comm::format_address(address->host, address->port));
  if (!again || again->host != address->host || again->port != address->port) __builtin_trap();
  return 0;
}
