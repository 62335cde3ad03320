#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/parallel/ps/tables.h"

// A worker's client of the parameter servers: one authenticated connection to each server. A call
// sends its requests to every server concerned before it waits for any reply, so the servers work
// in parallel. `clock` is the worker's step: pull the parameters for step t, compute, push step t's
// gradients; the servers' consistency mode decides how long a pull waits.
namespace tessera::parallel::ps {

struct WorkerOptions {
  uint32_t index = 0;                     // this worker's place among the workers
  std::vector<std::string> servers = {};  // "host:port" of each server, in server order
  std::string token;                      // the job token
  // How long to keep trying to reach a server that is not listening yet.
  std::chrono::milliseconds connect_timeout = std::chrono::minutes(1);
  // The longest wait for a reply. Servers answer a wait of their own that fails (a round or SSP's
  // slowest worker) with its reason, so give them longer than their ServerOptions::timeout.
  std::chrono::milliseconds timeout = std::chrono::minutes(6);
  // How often the worker tells the servers it is alive while it computes; well under the
  // servers' ServerOptions::heartbeat_timeout.
  std::chrono::milliseconds heartbeat_interval = std::chrono::seconds(1);
  // How long a call keeps reconnecting to a server whose connection broke (a server the launcher
  // restarts from its checkpoint) and asking again; 0: a broken connection fails the call.
  std::chrono::milliseconds reconnect_timeout{0};
  // With a server on the same host, pass message bodies through memory shared with it instead of
  // through the socket; a server elsewhere is reached through the socket either way.
  bool shared_memory = true;
};

class Worker {
 public:
  // Connects to every server. Throws comm::CommError naming the server it cannot reach or that
  // refuses it, comm::TimeoutError after connect_timeout.
  Worker(WorkerOptions options, std::vector<TableSpec> tables);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The whole dense table.
  void pull_dense(uint32_t table, int64_t clock, std::span<float> out);
  void push_dense(uint32_t table, int64_t clock, std::span<const float> grad, float lr);
  // keys.size() rows of dim floats into out, in the keys' order; keys may repeat.
  void pull_sparse(uint32_t table, int64_t clock, std::span<const uint64_t> keys,
                   std::span<float> out);
  // Gradients of keys.size() rows; repeated keys are summed before they are sent. Every server
  // hears from the worker at every step, with no keys if none hash to it, so that its view of the
  // worker's step stays current.
  void push_sparse(uint32_t table, int64_t clock, std::span<const uint64_t> keys,
                   std::span<const float> grads, float lr);
  // The most steps any server has from this worker (pushes of steps 0 .. steps() - 1): where a
  // worker started again after it died goes on.
  [[nodiscard]] int64_t steps();
  // Asks every server to checkpoint its shard as step `step`'s (ServerOptions::checkpoint_dir) and
  // waits until all have. Under bsp, called between pulling step `step` and pushing it, the
  // servers' state is exactly the one after `step` steps. Throws CommError with a server's reason
  // when one could not write it.
  void checkpoint(int64_t step);
  // Tells every server this worker is done (the destructor does it if it was not called).
  void finish();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::parallel::ps
