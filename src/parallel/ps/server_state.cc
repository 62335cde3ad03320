#include "server_state.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "tessera/core/crc32.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {

ServerState::ServerState(const ServerOptions& options, const std::vector<TableSpec>& tables,
                         const std::map<uint32_t, std::vector<float>>& dense_initial)
    : index_(options.index),
      servers_(options.servers),
      clocks_(options.workers, options.consistency, options.staleness, options.rejoin_window) {
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
                               Clock::time_point deadline, ReplyValues* values) {
  switch (h.type) {
    case MessageType::kPullDense: {
      auto& s = shard<DenseShard>(h.table, h.type);
      const DenseRequest r = decode_pull_dense(body);
      clocks_.wait_to_start(worker, h.clock, deadline);
      s.pull(h.clock, r, values, deadline);
      return MessageType::kValues;
    }
    case MessageType::kPullMapped: {
      auto& s = shard<DenseShard>(h.table, h.type);
      const DenseRequest r = decode_pull_dense(body);
      clocks_.wait_to_start(worker, h.clock, deadline);
      s.wait_readable(h.clock, r, deadline);
      return MessageType::kAck;
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
      const std::span<float> out = values->take(floats);
      clocks_.wait_to_start(worker, h.clock, deadline);
      s.pull(h.clock, r.keys, out, deadline);
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
    case MessageType::kSteps:
    case MessageType::kCheckpoint:
      if (!body.empty()) throw ProtocolError(detail::concat(to_string(h.type), " has no body"));
      return MessageType::kAck;
    default:
      throw ProtocolError(detail::concat("a worker may not send ", to_string(h.type)));
  }
}

SegmentInfo ServerState::dense_segment(uint32_t table) {
  return shard<DenseShard>(table, MessageType::kMapDense).segment();
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

namespace {

constexpr char kCheckpointMagic[8] = {'T', 'S', 'P', 'S', 'S', 'R', 'V', 'R'};
constexpr uint32_t kCheckpointVersion = 1;

}  // namespace

namespace {

// Passes bytes on to `dest`, keeping their CRC-32 and count: a checkpoint goes to its file as it
// is encoded, never whole in memory.
class CrcBuffer : public std::streambuf {
 public:
  explicit CrcBuffer(std::streambuf* dest) : dest_(dest) {}
  [[nodiscard]] uint32_t crc() const { return crc_; }
  [[nodiscard]] uint64_t count() const { return count_; }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    crc_ = crc32(std::as_bytes(std::span(s, static_cast<size_t>(n))), crc_);
    count_ += static_cast<uint64_t>(n);
    return dest_->sputn(s, n);
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }

 private:
  std::streambuf* dest_;
  uint32_t crc_ = 0;
  uint64_t count_ = 0;
};

}  // namespace

void ServerState::checkpoint(std::ostream& out) {
  BinaryWriter f(out);
  f.write_bytes(std::as_bytes(std::span(kCheckpointMagic)));
  f.write_u32(kCheckpointVersion);
  const std::streampos length_at = out.tellp();
  f.write_u64(0);  // the payload's length, known at its end
  CrcBuffer crc(out.rdbuf());
  std::ostream payload(&crc);
  BinaryWriter p(payload);
  p.write_u32(static_cast<uint32_t>(index_));
  p.write_u32(static_cast<uint32_t>(servers_));
  clocks_.save(p);
  p.write_u32(static_cast<uint32_t>(shards_.size()));
  for (auto& [id, shard] : shards_) {
    p.write_u32(id);
    p.write_u32(static_cast<uint32_t>(shard->spec().kind));
    shard->save(p);  // under the shard's lock: its pushes wait while it is written
  }
  payload.flush();
  f.write_u32(crc.crc());
  const std::streampos end = out.tellp();
  out.seekp(length_at);
  f.write_u64(crc.count());
  out.seekp(end);
  if (!out) throw Error("ps server checkpoint: the stream failed while it was written");
}

std::string ServerState::checkpoint() {
  std::stringstream out;
  checkpoint(out);
  return out.str();
}

void ServerState::restore(std::istream& in, const std::string& path) {
  const std::string what = "ps server checkpoint " + path;
  const auto fail = [&](const std::string& why) { throw FormatError(what + ": " + why); };
  constexpr uint64_t kFixed = sizeof(kCheckpointMagic) + 4 + 8;
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(std::max<std::streamoff>(in.tellg(), 0));
  in.seekg(0);
  char magic[sizeof(kCheckpointMagic)] = {};
  if (size < kFixed + 4 || !in.read(magic, sizeof(magic)) ||
      std::memcmp(magic, kCheckpointMagic, sizeof(magic)) != 0) {
    fail("not a tessera parameter-server checkpoint");
  }
  BinaryReader h(in, what);
  const uint32_t version = h.read_u32();
  if (version != kCheckpointVersion)
    fail(detail::concat("version ", version, ", expected ", kCheckpointVersion));
  const uint64_t length = h.read_u64();
  if (length != size - kFixed - 4) {
    fail(detail::concat("payload of ", length, " bytes in a file of ", size,
                        " (truncated or padded)"));
  }
  // The checksum first, reading the payload in pieces: a shard may be larger than what memory
  // can hold twice.
  uint32_t crc = 0;
  std::vector<char> piece(static_cast<size_t>(std::min<uint64_t>(length, uint64_t{1} << 20)));
  for (uint64_t left = length; left > 0;) {
    const auto n = static_cast<std::streamsize>(std::min<uint64_t>(left, piece.size()));
    if (!in.read(piece.data(), n)) fail("could not read its payload");
    crc = crc32(std::as_bytes(std::span(piece.data(), static_cast<size_t>(n))), crc);
    left -= static_cast<uint64_t>(n);
  }
  if (crc != h.read_u32()) fail("checksum mismatch: the file is damaged");
  in.seekg(static_cast<std::streamoff>(kFixed));
  BinaryReader r(in, what);
  const uint32_t index = r.read_u32();
  const uint32_t servers = r.read_u32();
  if (index != static_cast<uint32_t>(index_) || servers != static_cast<uint32_t>(servers_)) {
    fail(detail::concat("written by server ", index, " of ", servers, ", not ", index_, " of ",
                        servers_));
  }
  clocks_.restore(r);
  const uint32_t tables = r.read_u32();
  if (tables != shards_.size()) fail(detail::concat(tables, " tables, expected ", shards_.size()));
  for (uint32_t t = 0; t < tables; ++t) {
    const uint32_t id = r.read_u32();
    const uint32_t kind = r.read_u32();
    const auto it = shards_.find(id);
    if (it == shards_.end() || kind != static_cast<uint32_t>(it->second->spec().kind)) {
      fail(detail::concat("table ", id, " of kind ", kind, " is not one of this job's"));
    }
    it->second->restore(r);
  }
  if (r.offset() != length) fail("bytes after the last table");
}

}  // namespace tessera::parallel::ps
