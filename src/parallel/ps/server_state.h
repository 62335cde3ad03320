#pragma once

#include <chrono>
#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "message.h"
#include "shard.h"
#include "tessera/parallel/ps/server.h"
#include "worker_clocks.h"

// A server's tables and its view of the workers, and what each request does to them; no sockets,
// so the request path can be tested and fuzzed alone. Safe to call from every connection thread.
namespace tessera::parallel::ps {

class ServerState {
 public:
  ServerState(const ServerOptions& options, const std::vector<TableSpec>& tables,
              const std::map<uint32_t, std::vector<float>>& dense_initial);

  // Serves one authenticated request of `worker`. Returns the reply's type: kValues (the values
  // are in values->values()), kAck (to kSteps: its clock is clocks().steps(worker); to kCheckpoint:
  // once the server wrote it), or kHeartbeat for "no reply". Throws ProtocolError when the request
  // does not fit the protocol or the table, and comm errors when a wait fails.
  MessageType serve(uint32_t worker, const Header& header, std::span<const std::byte> body,
                    Clock::time_point deadline, ReplyValues* values);

  // Where dense table `table`'s values live (kMapDense). Throws ProtocolError for no such table.
  [[nodiscard]] SegmentInfo dense_segment(uint32_t table);
  WorkerClocks& clocks() { return clocks_; }
  // Every wait fails with `why` from now on: a BSP job lost a worker, or the server stops.
  void fail(const std::string& why);
  [[nodiscard]] std::vector<float> dense_values(uint32_t table);
  [[nodiscard]] int64_t sparse_rows(uint32_t table);

  // The checkpoint of this server: the workers' steps and every shard, with a header naming the
  // server and a CRC (one shard at a time is locked while it is copied). restore() loads one
  // into a state just built from the same options and tables; it throws FormatError naming
  // `path` for a file that is damaged or belongs to another server or table layout.
  [[nodiscard]] std::string checkpoint();
  // The same written to `out` as it is encoded (a seekable stream: a file), so that a large
  // table is never copied whole.
  void checkpoint(std::ostream& out);
  void restore(std::istream& in, const std::string& path);

 private:
  template <typename T>
  T& shard(uint32_t table, MessageType type);

  int index_;
  int servers_;
  std::map<uint32_t, std::unique_ptr<Shard>> shards_;
  WorkerClocks clocks_;
};

}  // namespace tessera::parallel::ps
