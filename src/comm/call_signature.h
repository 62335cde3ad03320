#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/comm/data_type.h"

namespace tessera::comm {

enum class OpKind : std::uint8_t {
  kAllreduce,
  kBroadcast,
  kReduce,
  kAllgather,
  kAllgatherv,
  kReduceScatter,
  kGather,
  kScatter,
  kAlltoall,
  kBarrier,
  kSplit,
  kSend,
  kRecv,
};

// "allreduce", "reduce_scatter", ...
[[nodiscard]] std::string_view op_kind_name(OpKind kind);

// How errors name an operation: "allreduce #3 on group world".
[[nodiscard]] std::string describe_op(OpKind kind, std::uint64_t seq, const std::string& group);

// What one rank asked a collective to do. Ranks that call the same collective have equal
// signatures; the consistency check and the timeout diagnosis compare them. Fields that do not
// apply to the kind stay at their defaults.
struct CallSignature {
  OpKind kind = OpKind::kBarrier;
  DataType dtype = DataType::kFloat32;
  ReduceOp op = ReduceOp::kSum;
  std::int32_t root = -1;
  // Elements per rank (allreduce, broadcast, ...), total elements (allgatherv).
  std::uint64_t count = 0;
  // allgatherv: a hash of the per-rank counts.
  std::uint64_t counts_hash = 0;

  bool operator==(const CallSignature&) const = default;

  // "allreduce(count=10, dtype=float32, op=sum)": only the fields that apply.
  [[nodiscard]] std::string describe() const;

  static constexpr std::size_t kWireSize = 24;
  using Wire = std::array<std::byte, kWireSize>;
  [[nodiscard]] Wire encode() const;
  [[nodiscard]] static CallSignature decode(const std::byte* wire);
};

// FNV-1a over the counts, for CallSignature::counts_hash.
[[nodiscard]] std::uint64_t hash_counts(const std::vector<std::size_t>& counts);

}  // namespace tessera::comm
