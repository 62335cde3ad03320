#include "p2p_wire.h"

#include <cstring>

#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm::shm {

std::array<std::byte, kMessageHeaderBytes> encode_message_header(const MessageHeader& header) {
  std::array<std::byte, kMessageHeaderBytes> bytes{};
  std::memcpy(bytes.data(), &header.tag, sizeof(header.tag));
  std::memcpy(bytes.data() + 8, &header.length, sizeof(header.length));
  return bytes;
}

MessageHeader decode_message_header(std::span<const std::byte, kMessageHeaderBytes> bytes,
                                    int sender) {
  MessageHeader header;
  std::uint32_t padding = 0;
  std::memcpy(&header.tag, bytes.data(), sizeof(header.tag));
  std::memcpy(&padding, bytes.data() + 4, sizeof(padding));
  std::memcpy(&header.length, bytes.data() + 8, sizeof(header.length));
  if (padding != 0) {
    throw CommError(detail::concat("a message header from rank ", sender,
                                   " is corrupt: its padding holds ", padding, ", not 0"));
  }
  if (header.length > kMaxMessageBytes) {
    throw CommError(detail::concat(
        "a message header from rank ", sender, " is corrupt: its length ", header.length,
        " exceeds what any process can address (", kMaxMessageBytes, ")"));
  }
  return header;
}

void check_ring(const RingPositions& positions, std::size_t capacity, int sender, int receiver) {
  const auto where = [&] {
    return detail::concat("the shared-memory ring from rank ", sender, " to rank ", receiver,
                          " is corrupt: ");
  };
  if (positions.tail > positions.head) {
    throw CommError(detail::concat(where(), "its tail ", positions.tail, " (written by rank ",
                                   receiver, ") is beyond its head ", positions.head,
                                   " (written by rank ", sender, ")"));
  }
  if (positions.head - positions.tail > capacity) {
    throw CommError(detail::concat(where(), "its head ", positions.head, " (written by rank ",
                                   sender, ") is ", positions.head - positions.tail,
                                   " bytes past its tail ", positions.tail, ", more than its ",
                                   capacity, " bytes hold"));
  }
}

}  // namespace tessera::comm::shm
