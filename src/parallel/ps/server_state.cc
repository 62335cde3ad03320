#include "server_state.h"

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera::parallel::ps {

ServerState::ServerState(const ServerOptions& options, const std::vector<TableSpec>& tables,
                         const std::map<uint32_t, std::vector<float>>& dense_initial)
    : clocks_(options.workers, options.consistency, options.staleness) {
  check_tables(tables);
  const bool bsp = options.consistency == Consistency::kBsp;
  for (const TableSpec& t : tables) {
    if (t.kind == TableSpec::Kind::kSparse) {
      shards_[t.id] = std::make_unique<SparseShard>(t, options.workers, bsp);
      continue;
    }
    const Range range = shard_range(t.size, options.index, options.servers);
    std::vector<float> initial(static_cast<size_t>(range.size()), 0.0f);
    if (const auto it = dense_initial.find(t.id); it != dense_initial.end()) {
      if (static_cast<int64_t>(it->second.size()) != t.size) {
        throw ValueError(detail::concat("ps table ", t.id, ": ", it->second.size(),
                                        " initial values for a table of ", t.size));
      }
      std::copy_n(it->second.begin() + range.begin, range.size(), initial.begin());
    }
    shards_[t.id] =
        std::make_unique<DenseShard>(t, range, std::move(initial), options.workers, bsp);
  }
}

template <typename T>
T& ServerState::shard(uint32_t table, MessageType type) {
  const auto it = shards_.find(table);
  if (it == shards_.end()) {
    throw ProtocolError(detail::concat(to_string(type), ": no table ", table));
  }
  auto* shard = dynamic_cast<T*>(it->second.get());
  if (shard == nullptr) {
    throw ProtocolError(detail::concat(to_string(type), ": table ", table, " is ",
                                       std::is_same_v<T, DenseShard> ? "sparse" : "dense"));
  }
  return *shard;
}

MessageType ServerState::serve(uint32_t worker, const Header& h, std::span<const std::byte> body,
                               Clock::time_point deadline, std::vector<float>* values) {
  switch (h.type) {
    case MessageType::kPullDense: {
      auto& s = shard<DenseShard>(h.table, h.type);
      const DenseRequest r = decode_pull_dense(body);
      clocks_.wait_to_start(worker, h.clock, deadline);
      s.pull(h.clock, r, values, deadline);
      return MessageType::kValues;
    }
    case MessageType::kPushDense:
      shard<DenseShard>(h.table, h.type).push(worker, h.clock, decode_push_dense(body));
      clocks_.pushed(worker, h.clock);
      return MessageType::kAck;
    case MessageType::kPullSparse: {
      auto& s = shard<SparseShard>(h.table, h.type);
      const SparseRequest r = decode_pull_sparse(body);
      const uint64_t floats = r.keys.size() * static_cast<uint64_t>(s.spec().dim);
      if (floats > kMaxBodyBytes / 4) {
        throw ProtocolError(detail::concat("pull_sparse: ", r.keys.size(),
                                           " keys make a reply over the message limit"));
      }
      values->resize(floats);
      clocks_.wait_to_start(worker, h.clock, deadline);
      s.pull(h.clock, r.keys, *values, deadline);
      return MessageType::kValues;
    }
    case MessageType::kPushSparse: {
      auto& s = shard<SparseShard>(h.table, h.type);
      s.push(worker, h.clock, decode_push_sparse(body, s.spec().dim));
      clocks_.pushed(worker, h.clock);
      return MessageType::kAck;
    }
    case MessageType::kHeartbeat:
      return MessageType::kHeartbeat;
    case MessageType::kBye:
      clocks_.finished(worker);
      return MessageType::kAck;
    default:
      throw ProtocolError(detail::concat("a worker may not send ", to_string(h.type)));
  }
}

void ServerState::fail(const std::string& why) {
  clocks_.fail(why);
  for (auto& [id, shard] : shards_) shard->fail(why);
}

std::vector<float> ServerState::dense_values(uint32_t table) {
  return shard<DenseShard>(table, MessageType::kPullDense).values();
}

int64_t ServerState::sparse_rows(uint32_t table) {
  return shard<SparseShard>(table, MessageType::kPullSparse).rows();
}

}  // namespace tessera::parallel::ps
