#include "call_signature.h"

#include <cstring>
#include <sstream>

namespace tessera::comm {

std::string describe_op(OpKind kind, std::uint64_t seq, const std::string& group) {
  std::string text(op_kind_name(kind));
  text += " #";
  text += std::to_string(seq);
  text += " on group ";
  text += group;
  return text;
}

std::string_view op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::kAllreduce:
      return "allreduce";
    case OpKind::kBroadcast:
      return "broadcast";
    case OpKind::kReduce:
      return "reduce";
    case OpKind::kAllgather:
      return "allgather";
    case OpKind::kAllgatherv:
      return "allgatherv";
    case OpKind::kReduceScatter:
      return "reduce_scatter";
    case OpKind::kGather:
      return "gather";
    case OpKind::kScatter:
      return "scatter";
    case OpKind::kAlltoall:
      return "alltoall";
    case OpKind::kBarrier:
      return "barrier";
    case OpKind::kSplit:
      return "split";
    case OpKind::kSend:
      return "send";
    case OpKind::kRecv:
      return "recv";
  }
  return "op(?)";
}

std::string CallSignature::describe() const {
  std::ostringstream out;
  out << op_kind_name(kind) << "(";
  switch (kind) {
    case OpKind::kBarrier:
    case OpKind::kSplit:
      break;
    case OpKind::kAllgatherv:
      out << "total=" << count << ", counts hash=" << std::hex << counts_hash << std::dec
          << ", dtype=" << data_type_name(dtype);
      break;
    default:
      out << "count=" << count << ", dtype=" << data_type_name(dtype);
      break;
  }
  switch (kind) {
    case OpKind::kAllreduce:
    case OpKind::kReduceScatter:
      out << ", op=" << reduce_op_name(op);
      break;
    case OpKind::kReduce:
      out << ", op=" << reduce_op_name(op) << ", root=" << root;
      break;
    case OpKind::kBroadcast:
    case OpKind::kGather:
    case OpKind::kScatter:
      out << ", root=" << root;
      break;
    default:
      break;
  }
  out << ")";
  return out.str();
}

CallSignature::Wire CallSignature::encode() const {
  Wire wire{};
  wire[0] = static_cast<std::byte>(kind);
  wire[1] = static_cast<std::byte>(dtype);
  wire[2] = static_cast<std::byte>(op);
  std::memcpy(wire.data() + 4, &root, sizeof(root));
  std::memcpy(wire.data() + 8, &count, sizeof(count));
  std::memcpy(wire.data() + 16, &counts_hash, sizeof(counts_hash));
  return wire;
}

CallSignature CallSignature::decode(const std::byte* wire) {
  CallSignature s;
  s.kind = static_cast<OpKind>(wire[0]);
  s.dtype = static_cast<DataType>(wire[1]);
  s.op = static_cast<ReduceOp>(wire[2]);
  std::memcpy(&s.root, wire + 4, sizeof(s.root));
  std::memcpy(&s.count, wire + 8, sizeof(s.count));
  std::memcpy(&s.counts_hash, wire + 16, sizeof(s.counts_hash));
  return s;
}

std::uint64_t hash_counts(const std::vector<std::size_t>& counts) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t c : counts) {
    for (int i = 0; i < 8; ++i) {
      h ^= (static_cast<std::uint64_t>(c) >> (8 * i)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

}  // namespace tessera::comm
