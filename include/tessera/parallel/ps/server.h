#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/parallel/ps/tables.h"

// A parameter server: holds its shard of every table (a range of each dense table, the rows of
// each sparse table that hash to it), answers the workers' pulls and applies their pushes with the
// tables' optimizers. One thread accepts connections; each worker's connection has its own thread,
// so pushes to different tables apply concurrently and pushes to one table in arrival order.
//
// Every connection must prove it holds the job token first (comm/token_auth.h). A message that
// breaks the protocol is counted, logged with the worker and peer that sent it, and answered with
// an error (or, if its header is unreadable, its connection is closed); nothing a peer sends
// stops the server.
namespace tessera::parallel::ps {

struct ServerOptions {
  int index = 0;  // this server's place among the servers: which shard it holds
  int servers = 1;
  int workers = 1;
  Consistency consistency = Consistency::kBsp;
  int64_t staleness = 0;           // kSsp: how many steps a worker may run ahead of the slowest
  std::string token;               // the job token every worker must prove (non-empty)
  std::string host = "127.0.0.1";  // address to listen on
  int port = 0;                    // 0: any free port (see port())
  // The longest wait for a round's last gradient or for SSP's slowest worker; the error names
  // whom it waited for.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  // A worker silent this long (no request and no heartbeat) is declared lost: SSP stops waiting
  // for it, BSP stops. Workers send heartbeats every WorkerOptions::heartbeat_interval.
  std::chrono::milliseconds heartbeat_timeout = std::chrono::seconds(10);
  // Where a launcher starts dead workers again: how long a lost worker has to connect again
  // before the server may finish without it. Zero: a lost worker is gone.
  std::chrono::milliseconds rejoin_window = std::chrono::milliseconds::zero();
  std::FILE* log = stderr;  // where refused connections and dropped messages are reported
  // Where the server writes its checkpoints (its shards, their optimizer state and the workers'
  // steps; atomically, with a checksum): checkpoint_file(dir, index) when it starts, every
  // checkpoint_interval and when it stops; checkpoint_file(dir, index, step) when a worker asks
  // (Worker::checkpoint), keeping the newest keep_step_checkpoints. Empty: none.
  std::string checkpoint_dir = {};
  std::chrono::milliseconds checkpoint_interval = std::chrono::seconds(30);
  int keep_step_checkpoints = 3;
  // A checkpoint to start from instead of the initial values: a restarted server's own (the
  // workers reconnect and ask again, WorkerOptions::reconnect_timeout; the updates after it are
  // lost), or a step's, to resume a job. Workers it knew as training that do not connect within
  // heartbeat_timeout are declared lost. Empty: start afresh.
  std::string restore_from = {};
  // Told (from a connection's thread) of each worker declared lost for sending nothing, not even a
  // heartbeat, within heartbeat_timeout: one that hangs, which its launcher may replace.
  std::function<void(uint32_t worker)> on_hung = nullptr;
};

struct ServerStats {
  int64_t pulls = 0;
  int64_t pushes = 0;
  int64_t shared = 0;     // pulls and pushes whose bodies came through shared memory
  int64_t malformed = 0;  // messages that broke the protocol
  int64_t refused = 0;    // connections that failed the handshake
};

// The checkpoint file of server `index` in `dir`: its latest ("server-1.ckpt"), or the one of step
// `step` ("server-1.step-120.ckpt").
[[nodiscard]] std::string checkpoint_file(const std::string& dir, int index, int64_t step = -1);

class Server {
 public:
  // `dense_initial` holds each dense table's starting values, whole (this server keeps its range);
  // a table without an entry starts at zero. Listens at once; throws CommError if it cannot.
  Server(ServerOptions options, std::vector<TableSpec> tables,
         const std::map<uint32_t, std::vector<float>>& dense_initial);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] int port() const;
  // Blocks until every worker has said goodbye or been lost. Throws comm::TimeoutError when the
  // workers are still training after `timeout`, and comm::CommError when a BSP job lost a worker
  // (the round can never complete).
  void wait_until_done(std::chrono::milliseconds timeout);
  // Stops accepting and closes every connection. Idempotent; the destructor calls it.
  void stop();

  [[nodiscard]] ServerStats stats() const;
  // This server's range of a dense table, and how many rows of a sparse table it holds.
  [[nodiscard]] std::vector<float> dense_values(uint32_t table);
  [[nodiscard]] int64_t sparse_rows(uint32_t table);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::parallel::ps
