// The parameter server's request path without sockets (parallel/ps/server_state.h): headers
// decoded as the server decodes them, then served against a server's tables.
//
// Input: a mode byte (bits 0-1: 0 bsp, 1 asp, 2 ssp with staleness 1; bit 2: replies go to a
// stand-in for a shared segment where they fit), then messages, each a 40-byte header and then
// header.body_bytes of body; input that ends inside a body ends the run. share_memory and segment
// bodies go to their decoders.
// Waits have no time (deadline now), so BSP and SSP gates answer at once with their error.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "parallel/ps/connection.h"
#include "parallel/ps/message.h"
#include "parallel/ps/server_state.h"

namespace {

using namespace tessera::parallel::ps;

std::vector<TableSpec> tables() {
  using Kind = OptimizerSpec::Kind;
  return {
      {.id = 1, .kind = TableSpec::Kind::kDense, .size = 64, .optimizer = {.momentum = 0.9f}},
      {.id = 2,
       .kind = TableSpec::Kind::kSparse,
       .dim = 4,
       .init_scale = 0.1f,
       .optimizer = {.kind = Kind::kFtrl, .l1 = 0.1f}},
      {.id = 3, .kind = TableSpec::Kind::kDense, .size = 5, .optimizer = {.kind = Kind::kAdam}},
      {.id = 4, .kind = TableSpec::Kind::kSparse, .dim = 3, .optimizer = {.kind = Kind::kAdagrad}},
  };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Consistency modes[] = {Consistency::kBsp, Consistency::kAsp, Consistency::kSsp,
                               Consistency::kAsp};
  const ServerOptions options{.index = 0,
                              .servers = 2,
                              .workers = 2,
                              .consistency = modes[data[0] & 3],
                              .staleness = 1,
                              .token = "t",
                              .log = nullptr};
  ServerState state(options, tables(), {});
  const auto* at = reinterpret_cast<const std::byte*>(data + 1);
  size_t left = size - 1;
  BodyBuffer body;
  ReplyValues values;
  std::vector<uint64_t> segment(128);  // 1 KiB, 8-byte aligned, as a segment's reply space is
  const bool shared = (data[0] & 4) != 0;
  while (left >= kHeaderBytes) {
    Header h;
    try {
      const std::span<const std::byte, kHeaderBytes> head(at, kHeaderBytes);
      (void)decode_header(head, false);
      h = decode_header(head, true);
    } catch (const ProtocolError&) {
      // The pre-handshake limit may refuse what the authenticated one allows: decode again.
      try {
        h = decode_header(std::span<const std::byte, kHeaderBytes>(at, kHeaderBytes), true);
      } catch (const ProtocolError&) {
        return 0;  // the server closes such a connection
      }
    }
    at += kHeaderBytes;
    left -= kHeaderBytes;
    if (h.body_bytes > left) return 0;
    std::span<std::byte> bytes = body.resize(h.body_bytes);
    std::copy_n(at, h.body_bytes, bytes.begin());
    at += h.body_bytes;
    left -= h.body_bytes;
    try {
      if (h.type == MessageType::kShareMemory) {
        (void)decode_share_memory(bytes);
        continue;
      }
      if (h.type == MessageType::kSegment) {
        (void)decode_segment(bytes);
        continue;
      }
      values.reset(shared ? std::as_writable_bytes(std::span(segment)) : std::span<std::byte>());
      const MessageType reply =
          state.serve(h.sender % 2, h, bytes, std::chrono::steady_clock::now(), &values);
      if (reply == MessageType::kValues && values.values().size_bytes() > kMaxBodyBytes) {
        __builtin_trap();
      }
    } catch (const tessera::Error&) {  // answered with kError; the connection goes on
    }
  }
  return 0;
}
