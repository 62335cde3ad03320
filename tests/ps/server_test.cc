// Servers and workers in one process, over loopback TCP: each worker on its own thread, as it
// would be its own process.
#include "tessera/parallel/ps/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <thread>

#include <malloc.h>
#include <unistd.h>

#include "parallel/ps/connection.h"
#include "parallel/ps/shared_segment.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/socket.h"
#include "tessera/parallel/ps/worker.h"

namespace tessera::parallel::ps {
namespace {

using std::chrono::milliseconds;
constexpr const char* kToken = "ps-test-token";

TableSpec dense_table(uint32_t id, int64_t size, OptimizerSpec optimizer = {}) {
  return {.id = id, .kind = TableSpec::Kind::kDense, .size = size, .optimizer = optimizer};
}

TableSpec sparse_table(uint32_t id, int64_t dim, float init_scale = 0.5f) {
  return {
      .id = id, .kind = TableSpec::Kind::kSparse, .dim = dim, .init_scale = init_scale, .seed = 11};
}

// S servers on free ports, all with the same tables.
struct Cluster {
  Cluster(int servers, int workers, Consistency mode, std::vector<TableSpec> tables,
          std::map<uint32_t, std::vector<float>> initial = {}, int64_t staleness = 0,
          milliseconds timeout = milliseconds(20000),
          milliseconds heartbeat_timeout = milliseconds(10000))
      : tables(std::move(tables)) {
    for (int s = 0; s < servers; ++s) {
      this->servers.push_back(
          std::make_unique<Server>(ServerOptions{.index = s,
                                                 .servers = servers,
                                                 .workers = workers,
                                                 .consistency = mode,
                                                 .staleness = staleness,
                                                 .token = kToken,
                                                 .timeout = timeout,
                                                 .heartbeat_timeout = heartbeat_timeout,
                                                 .log = nullptr},
                                   this->tables, initial));
    }
  }
  [[nodiscard]] std::unique_ptr<Worker> worker(uint32_t index, bool shared_memory = true) const {
    WorkerOptions o{.index = index,
                    .token = kToken,
                    .heartbeat_interval = milliseconds(50),
                    .shared_memory = shared_memory};
    for (const auto& s : servers) o.servers.push_back("127.0.0.1:" + std::to_string(s->port()));
    return std::make_unique<Worker>(o, tables);
  }
  std::vector<TableSpec> tables;
  std::vector<std::unique_ptr<Server>> servers;
};

TEST(PsServer, DenseTableIsSplitAcrossServersAndRoundTrips) {
  std::vector<float> initial(10);
  std::iota(initial.begin(), initial.end(), 0.0f);
  Cluster c(3, 1, Consistency::kAsp, {dense_table(1, 10)}, {{1, initial}});
  auto w = c.worker(0);
  std::vector<float> got(10, -1.0f);
  w->pull_dense(1, 0, got);
  EXPECT_EQ(got, initial);
  EXPECT_EQ(c.servers[0]->dense_values(1).size(), 4u);  // 10 over 3 servers: 4, 3, 3
  EXPECT_EQ(c.servers[2]->dense_values(1), (std::vector<float>{7, 8, 9}));

  const std::vector<float> grad(10, 1.0f);
  w->push_dense(1, 0, grad, 0.5f);  // plain SGD: w -= 0.5 * 1
  w->pull_dense(1, 1, got);
  for (int i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(got[i], i - 0.5f);
  w->finish();
  for (auto& s : c.servers) s->wait_until_done(milliseconds(1000));
}

TEST(PsServer, SparseRowsAreCreatedOnFirstTouchTheSameOnAnyNumberOfServers) {
  const std::vector<uint64_t> keys = {3, uint64_t{1} << 50, 3, 77};
  auto pull = [&](int servers) {
    Cluster c(servers, 1, Consistency::kAsp, {sparse_table(2, 4)});
    auto w = c.worker(0);
    std::vector<float> rows(keys.size() * 4);
    w->pull_sparse(2, 0, keys, rows);
    int64_t held = 0;
    for (auto& s : c.servers) held += s->sparse_rows(2);
    EXPECT_EQ(held, 3) << "three distinct keys, each held by one server";
    return rows;
  };
  const std::vector<float> one = pull(1);
  EXPECT_EQ(one, pull(3));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(one[i], one[8 + i]) << "the repeated key";
  EXPECT_NE(one[0], one[4]);
  for (float v : one) EXPECT_LE(std::abs(v), 0.5f);
}

TEST(PsServer, SparsePushSumsRepeatedKeysBeforeTheUpdate) {
  Cluster c(2, 1, Consistency::kAsp, {sparse_table(2, 2, 0.0f)});
  auto w = c.worker(0);
  const std::vector<uint64_t> keys = {9, 9, 4};
  const std::vector<float> grads = {1, 2, 3, 4, 10, 20};
  w->push_sparse(2, 0, keys, grads, 1.0f);
  std::vector<float> rows(4);
  w->pull_sparse(2, 1, std::vector<uint64_t>{9, 4}, rows);
  EXPECT_EQ(rows, (std::vector<float>{-4, -6, -10, -20}));
}

// The same calls through memory shared with the servers and through the socket alone: the same
// values, bit for bit, while segments grow from a small table's size to a large one's.
TEST(PsServer, SharedMemoryAndTheSocketGiveTheSameResults) {
  auto run = [](bool shared_memory) {
    Cluster c(2, 1, Consistency::kAsp,
              {dense_table(1, 10), dense_table(3, 50'000, {.momentum = 0.9f}), sparse_table(2, 4)});
    auto w = c.worker(0, shared_memory);
    std::vector<uint64_t> keys(1000);
    for (size_t k = 0; k < keys.size(); ++k) keys[k] = (k * 7919) % 600;  // repeats
    std::vector<float> pulled;
    std::vector<float> small(10), large(50'000), rows(keys.size() * 4);
    for (int64_t step = 0; step < 3; ++step) {
      w->pull_dense(1, step, small);
      w->pull_dense(3, step, large);
      w->pull_sparse(2, step, keys, rows);
      for (const auto* v : {&small, &large, &rows})
        pulled.insert(pulled.end(), v->begin(), v->end());
      std::vector<float> g(large.size());
      for (size_t i = 0; i < g.size(); ++i) g[i] = 0.001f * static_cast<float>(i % 97) + step;
      w->push_dense(3, step, g, 0.1f);
      w->push_dense(1, step, std::vector<float>(10, 1.0f), 0.5f);
      std::vector<float> sg(rows.size());
      for (size_t i = 0; i < sg.size(); ++i) sg[i] = rows[i] * 0.5f - 0.1f;
      w->push_sparse(2, step, keys, sg, 0.2f);
    }
    w->finish();
    int64_t shared = 0;
    for (auto& s : c.servers) shared += s->stats().shared;
    return std::pair(pulled, shared);
  };
  const auto [through_memory, shared] = run(true);
  const auto [through_socket, none] = run(false);
  EXPECT_EQ(none, 0);
  EXPECT_EQ(shared, 2 * 3 * 6) << "every pull and push of every step, on both servers";
  ASSERT_EQ(through_memory.size(), through_socket.size());
  EXPECT_EQ(0, std::memcmp(through_memory.data(), through_socket.data(),
                           through_memory.size() * sizeof(float)));
}

// BSP: each step applies the mean of the workers' gradients once, as one process would on the
// global batch; no worker sees step t's parameters before every gradient of step t - 1 arrived.
TEST(PsServer, BspAppliesTheWorkersMeanGradientOncePerStep) {
  constexpr int kWorkers = 3;
  constexpr int kSteps = 4;
  const OptimizerSpec momentum{.momentum = 0.9f};
  Cluster c(2, kWorkers, Consistency::kBsp, {dense_table(1, 5, momentum)},
            {{1, std::vector<float>(5, 1.0f)}});
  auto grad_of = [](int worker, int step, int i) {
    return 0.1f * static_cast<float>((worker + 1) * (i + 1)) + 0.01f * static_cast<float>(step);
  };
  std::vector<std::thread> threads;
  std::vector<std::vector<float>> last(kWorkers);
  for (int r = 0; r < kWorkers; ++r) {
    threads.emplace_back([&, r] {
      auto w = c.worker(static_cast<uint32_t>(r));
      std::vector<float> params(5);
      for (int step = 0; step < kSteps; ++step) {
        w->pull_dense(1, step, params);
        std::vector<float> g(5);
        for (int i = 0; i < 5; ++i) g[i] = grad_of(r, step, i);
        if (r == 1) std::this_thread::sleep_for(milliseconds(20));  // a straggler
        w->push_dense(1, step, g, 0.1f);
      }
      w->pull_dense(1, kSteps, params);
      last[r] = params;
      w->finish();
    });
  }
  for (auto& t : threads) t.join();
  // One process: SGD with momentum on the mean gradient.
  std::vector<float> p(5, 1.0f), buf(5, 0.0f);
  for (int step = 0; step < kSteps; ++step) {
    for (int i = 0; i < 5; ++i) {
      float mean = 0.0f;
      for (int r = 0; r < kWorkers; ++r) mean += grad_of(r, step, i);
      mean /= kWorkers;
      buf[i] = step == 0 ? mean : 0.9f * buf[i] + mean;
      p[i] -= 0.1f * buf[i];
    }
  }
  for (int r = 0; r < kWorkers; ++r) {
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(last[r][i], p[i], 1e-5f) << "worker " << r;
  }
}

// SSP with staleness s: a worker may start step t only when the slowest has finished step t - s
// - 1. The slow worker marks each step done before it pushes, so every fast worker's start can be
// checked against it.
TEST(PsServer, SspNeverLetsAWorkerRunMoreThanStalenessStepsAhead) {
  constexpr int kStaleness = 2;
  constexpr int kSteps = 12;
  Cluster c(2, 3, Consistency::kSsp, {dense_table(1, 4)}, {}, kStaleness);
  std::atomic<int> slow_done{0};
  std::atomic<int> worst_lead{0};
  std::atomic<int> fast_finished{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      auto w = c.worker(static_cast<uint32_t>(r));
      std::vector<float> params(4);
      const std::vector<float> g(4, 0.01f);
      for (int step = 0; step < kSteps; ++step) {
        w->pull_dense(1, step, params);
        if (r == 0) {
          std::this_thread::sleep_for(milliseconds(30));
          slow_done = step + 1;
        } else {
          const int lead = step - slow_done.load();
          int seen = worst_lead.load();
          while (lead > seen && !worst_lead.compare_exchange_weak(seen, lead)) {
          }
        }
        w->push_dense(1, step, g, 0.1f);
      }
      if (r != 0) ++fast_finished;
      w->finish();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(worst_lead.load(), kStaleness);
  EXPECT_EQ(worst_lead.load(), kStaleness) << "the fast workers should have used their slack";
  EXPECT_EQ(fast_finished.load(), 2);
}

TEST(PsServer, AspDoesNotWaitForASlowWorker) {
  Cluster c(1, 2, Consistency::kAsp, {dense_table(1, 4)});
  std::atomic<bool> fast_done{false};
  std::thread slow([&] {
    auto w = c.worker(0);
    std::vector<float> params(4);
    w->pull_dense(1, 0, params);
    for (int i = 0; i < 200 && !fast_done; ++i) std::this_thread::sleep_for(milliseconds(10));
    w->finish();
  });
  auto w = c.worker(1);
  std::vector<float> params(4);
  for (int step = 0; step < 20; ++step) {
    w->pull_dense(1, step, params);
    w->push_dense(1, step, std::vector<float>(4, 1.0f), 0.1f);
  }
  fast_done = true;
  w->finish();
  slow.join();
  // 20 pushes of 1, each weighted 1/2 (one of two workers), at lr 0.1.
  EXPECT_NEAR(c.servers[0]->dense_values(1)[0], -1.0f, 1e-5f);
}

// A worker that is alive (it sends heartbeats) but never finishes its step holds SSP back until
// the deadline, and the error names it.
TEST(PsServer, SspTimeoutNamesTheSlowestWorker) {
  Cluster c(1, 2, Consistency::kSsp, {dense_table(1, 2)}, {}, 0, milliseconds(500),
            milliseconds(300));
  auto stuck = c.worker(0);  // connects, then never pushes
  auto w = c.worker(1);
  std::vector<float> params(2);
  w->pull_dense(1, 0, params);
  w->push_dense(1, 0, std::vector<float>(2, 1.0f), 0.1f);
  try {
    w->pull_dense(1, 1, params);
    FAIL() << "expected the SSP wait to time out";
  } catch (const comm::CommError& e) {
    EXPECT_NE(std::string(e.what()).find("slowest, worker 0"), std::string::npos) << e.what();
  }
}

// A worker that stops sending anything (hung, or its machine gone) is declared lost after the
// heartbeat timeout, and SSP goes on without it.
TEST(PsServer, SspGoesOnWithoutAWorkerThatFallsSilent) {
  Cluster c(1, 2, Consistency::kSsp, {dense_table(1, 2)}, {}, 0, milliseconds(20000),
            milliseconds(300));
  std::string error;
  Connection silent(comm::connect_tcp("127.0.0.1", c.servers[0]->port(),
                                      Clock::now() + milliseconds(2000), &error),
                    "silent");
  handshake_as_worker(silent, kToken, 0, Clock::now() + milliseconds(2000));
  auto w = c.worker(1);
  std::vector<float> params(2);
  const auto start = Clock::now();
  for (int step = 0; step < 3; ++step) {
    w->pull_dense(1, step, params);
    w->push_dense(1, step, std::vector<float>(2, 1.0f), 0.1f);
  }
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
  EXPECT_NEAR(params[0], -0.1f, 1e-6f);  // two pushes of 1 at lr 0.1, each weighted 1/2
}

// A worker whose connection drops without saying bye is lost; a BSP round can then never
// complete, so the survivors are told why instead of waiting out the timeout.
TEST(PsServer, BspLosingAWorkerFailsTheRoundNamingIt) {
  Cluster c(1, 2, Consistency::kBsp, {dense_table(1, 2)});
  auto survivor = c.worker(1);
  {
    std::string error;
    Connection doomed(comm::connect_tcp("127.0.0.1", c.servers[0]->port(),
                                        Clock::now() + milliseconds(2000), &error),
                      "doomed");
    handshake_as_worker(doomed, kToken, 0, Clock::now() + milliseconds(2000));
  }
  std::vector<float> params(2);
  try {
    // The loss may be seen before the push or while the pull waits: either is refused.
    survivor->push_dense(1, 0, std::vector<float>(2, 1.0f), 0.1f);
    survivor->pull_dense(1, 1, params);
    FAIL() << "expected the round to fail";
  } catch (const comm::CommError& e) {
    EXPECT_NE(std::string(e.what()).find("worker 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("was lost"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.servers[0]->wait_until_done(milliseconds(2000)), comm::CommError);
}

std::unique_ptr<Server> server_awaiting_lost_workers(milliseconds rejoin_window) {
  return std::make_unique<Server>(ServerOptions{.workers = 2,
                                                .consistency = Consistency::kAsp,
                                                .token = kToken,
                                                .rejoin_window = rejoin_window,
                                                .log = nullptr},
                                  std::vector{dense_table(1, 2)},
                                  std::map<uint32_t, std::vector<float>>{});
}

// Connects as worker 0 and drops the connection without saying bye, as a killed worker does.
void lose_worker_zero(const Server& server) {
  std::string error;
  Connection doomed(
      comm::connect_tcp("127.0.0.1", server.port(), Clock::now() + milliseconds(2000), &error),
      "doomed");
  handshake_as_worker(doomed, kToken, 0, Clock::now() + milliseconds(2000));
}

std::unique_ptr<Worker> worker_of(const Server& server, uint32_t index) {
  return std::make_unique<Worker>(
      WorkerOptions{.index = index,
                    .servers = {"127.0.0.1:" + std::to_string(server.port())},
                    .token = kToken},
      std::vector{dense_table(1, 2)});
}

// Where the launcher starts dead workers again, the job is not over while a lost worker may still
// come back: the others finishing first must not leave it servers that are gone.
TEST(PsServer, ALostWorkerIsWaitedForWithinItsRejoinWindow) {
  auto server = server_awaiting_lost_workers(milliseconds(60000));
  lose_worker_zero(*server);
  auto other = worker_of(*server, 1);
  other->push_dense(1, 0, std::vector<float>(2, 1.0f), 0.1f);
  other->finish();
  EXPECT_THROW(server->wait_until_done(milliseconds(300)), comm::TimeoutError)
      << "done while worker 0 could still come back";
  auto again = worker_of(*server, 0);
  again->push_dense(1, 0, std::vector<float>(2, 1.0f), 0.1f);
  again->finish();
  server->wait_until_done(milliseconds(5000));
  EXPECT_EQ(server->stats().pushes, 2);
}

TEST(PsServer, ALostWorkerThatDoesNotComeBackWithinItsWindowIsGone) {
  auto server = server_awaiting_lost_workers(milliseconds(400));
  const auto start = Clock::now();
  lose_worker_zero(*server);
  auto other = worker_of(*server, 1);
  other->finish();
  server->wait_until_done(milliseconds(5000));
  EXPECT_GE(Clock::now() - start, milliseconds(400)) << "gone only once its window closed";
}

TEST(PsServer, RefusesAWorkerWithoutTheToken) {
  Cluster c(1, 1, Consistency::kAsp, {dense_table(1, 2)});
  WorkerOptions o{.index = 0,
                  .servers = {"127.0.0.1:" + std::to_string(c.servers[0]->port())},
                  .token = "not-the-token"};
  try {
    Worker w(o, c.tables);
    FAIL() << "expected a refusal";
  } catch (const comm::CommError& e) {
    EXPECT_NE(std::string(e.what()).find("wrong job token"), std::string::npos) << e.what();
  }
  // The server counts the refusal after it has sent it.
  for (int i = 0; i < 200 && c.servers[0]->stats().refused < 1; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(c.servers[0]->stats().refused, 1);
}

// The process's virtual size in KiB: a thread that ended but was never joined keeps its stack
// mapped, so unjoined threads show here.
int64_t virtual_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmSize:")) return std::stoll(line.substr(7));
  }
  return -1;
}

TEST(PsServer, ConnectionsThatEndedLeaveNoThreadBehind) {
  Cluster c(1, 1, Consistency::kAsp, {dense_table(1, 2)});
  auto refuse = [&](int n) {
    for (int i = 0; i < n; ++i) {
      WorkerOptions o{.index = 0,
                      .servers = {"127.0.0.1:" + std::to_string(c.servers[0]->port())},
                      .token = "not-the-token"};
      EXPECT_THROW(Worker(o, c.tables), comm::CommError);
    }
  };
  // An exited thread that nobody joined keeps its stack mapped, which the kernel no longer lists
  // as a task: count mappings. One malloc arena, so that a new thread's first allocation does
  // not reserve another 64 MiB.
  mallopt(M_ARENA_MAX, 1);
  refuse(2);  // the first threads' stacks are mapped once and reused after
  const int64_t before = virtual_kib();
  refuse(40);
  // Unjoined, 40 threads would keep 40 stacks of 8 MiB each.
  EXPECT_LT(virtual_kib() - before, 64 * 1024);
}

// Garbage after the handshake: a body that does not decode gets an error reply and the connection
// goes on; a header that does not decode closes it. Either way the server counts it and serves
// the next worker.
TEST(PsServer, CountsMalformedMessagesAndKeepsServing) {
  Cluster c(1, 2, Consistency::kAsp, {dense_table(1, 4)});
  std::string error;
  comm::Socket raw = comm::connect_tcp("127.0.0.1", c.servers[0]->port(),
                                       Clock::now() + milliseconds(2000), &error);
  Connection conn(comm::Socket(::dup(raw.fd())), "test");
  const auto deadline = Clock::now() + milliseconds(5000);
  handshake_as_worker(conn, kToken, 0, deadline);
  const int64_t bad[2] = {3, 9};  // past the table's end
  conn.send({.type = MessageType::kPullDense, .sender = 0, .table = 1, .body_bytes = 16},
            {bytes_of<int64_t>(bad)}, deadline);
  const Header reply = conn.receive_header(deadline, true, "reply");
  EXPECT_EQ(reply.type, MessageType::kError);
  std::string text(reply.body_bytes, '\0');
  conn.receive(std::as_writable_bytes(std::span<char>(text)), deadline, "reply");
  EXPECT_NE(text.find("not within"), std::string::npos) << text;
  conn.send({.type = MessageType::kPushDense, .sender = 0, .table = 5, .body_bytes = 0}, {},
            deadline);
  EXPECT_EQ(conn.receive_header(deadline, true, "reply").type, MessageType::kError);
  // A header that is not one: the connection ends.
  const std::string junk(kHeaderBytes, 'x');
  EXPECT_NO_THROW(conn.send({.type = MessageType::kHeartbeat, .sender = 0}, {}, deadline));
  EXPECT_EQ(comm::send_all(raw.fd(), junk.data(), junk.size(), deadline, &error),
            comm::IoStatus::kOk);
  for (int i = 0; i < 100 && c.servers[0]->stats().malformed < 3; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(c.servers[0]->stats().malformed, 3);

  auto w = c.worker(1);
  std::vector<float> params(4, -1.0f);
  w->pull_dense(1, 0, params);
  EXPECT_EQ(params, std::vector<float>(4, 0.0f));
}

// The shared-memory path spoken by hand: a shared body before any segment, one larger than the
// segment, and a segment size out of range are refused and counted; a real segment carries a
// pull's body and its reply.
TEST(PsServer, SharedBodiesNeedASegmentThatHoldsThem) {
  Cluster c(1, 1, Consistency::kAsp, {dense_table(1, 4)}, {{1, {1, 2, 3, 4}}});
  std::string error;
  comm::Socket raw = comm::connect_tcp("127.0.0.1", c.servers[0]->port(),
                                       Clock::now() + milliseconds(2000), &error);
  Connection conn(std::move(raw), "test");
  const auto deadline = Clock::now() + milliseconds(5000);
  handshake_as_worker(conn, kToken, 0, deadline);
  auto reply_text = [&] {
    const Header h = conn.receive_header(deadline, true, "reply");
    std::string text(h.body_bytes, '\0');
    conn.receive(std::as_writable_bytes(std::span<char>(text)), deadline, "reply");
    return std::pair(h, text);
  };
  const Header pull{
      .type = MessageType::kPullDense, .sender = 0, .table = 1, .body_bytes = 16, .shared = true};
  conn.send(pull, {}, deadline);
  auto [h, text] = reply_text();
  EXPECT_EQ(h.type, MessageType::kError);
  EXPECT_NE(text.find("the segment holds 0"), std::string::npos) << text;

  const uint64_t too_small = 8;
  conn.send({.type = MessageType::kShareMemory, .sender = 0, .body_bytes = 8},
            {bytes_of(too_small)}, deadline);
  std::tie(h, text) = reply_text();
  EXPECT_EQ(h.type, MessageType::kError);
  EXPECT_NE(text.find("outside [64"), std::string::npos) << text;

  const uint64_t size = 4096;
  conn.send({.type = MessageType::kShareMemory, .sender = 0, .request = 7, .body_bytes = 8},
            {bytes_of(size)}, deadline);
  std::tie(h, text) = reply_text();
  ASSERT_EQ(h.type, MessageType::kSegment) << text;
  EXPECT_EQ(h.request, 7u);
  const SegmentInfo info = decode_segment(std::as_bytes(std::span(text)));
  EXPECT_EQ(info.bytes, size);
  std::optional<SharedSegment> segment = SharedSegment::open(info);
  ASSERT_TRUE(segment.has_value());
  SegmentInfo wrong = info;
  wrong.nonce[0] ^= std::byte{1};
  EXPECT_FALSE(SharedSegment::open(wrong).has_value()) << "another host's segment";

  conn.send({.type = MessageType::kPullDense,
             .sender = 0,
             .table = 1,
             .body_bytes = 5000,
             .shared = true},
            {}, deadline);
  std::tie(h, text) = reply_text();
  EXPECT_EQ(h.type, MessageType::kError);
  EXPECT_NE(text.find("the segment holds 4096"), std::string::npos) << text;

  const int64_t body[2] = {1, 3};  // values 1 .. 3
  std::memcpy(segment->bytes().data(), body, sizeof(body));
  conn.send(pull, {}, deadline);
  h = conn.receive_header(deadline, true, "reply");
  ASSERT_EQ(h.type, MessageType::kValues);
  EXPECT_TRUE(h.shared);
  ASSERT_EQ(h.body_bytes, 12u);
  float values[3];
  std::memcpy(values, segment->bytes().data() + reply_offset(16), sizeof(values));
  EXPECT_EQ(std::vector<float>(values, values + 3), (std::vector<float>{2, 3, 4}));
  EXPECT_EQ(c.servers[0]->stats().malformed, 3);
  EXPECT_EQ(c.servers[0]->stats().shared, 1);
}

// A server checkpointing into `dir`; `restore` starts it from its latest checkpoint there, on
// `port` (0: any).
std::unique_ptr<Server> checkpointing_server(const std::string& dir, int workers, bool restore,
                                             int port, Consistency mode = Consistency::kAsp,
                                             const std::string& from = "") {
  return std::make_unique<Server>(
      ServerOptions{.index = 0,
                    .servers = 1,
                    .workers = workers,
                    .consistency = mode,
                    .token = kToken,
                    .port = port,
                    .heartbeat_timeout = milliseconds(500),
                    .log = nullptr,
                    .checkpoint_dir = dir,
                    .checkpoint_interval = std::chrono::hours(1),
                    .keep_step_checkpoints = 2,
                    .restore_from = !from.empty() ? from
                                    : restore     ? checkpoint_file(dir, 0)
                                                  : ""},
      std::vector{dense_table(1, 5, {.momentum = 0.5f}), sparse_table(2, 3)},
      std::map<uint32_t, std::vector<float>>{});
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("tessera_ps_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// The server dies after its checkpoint and comes back on the same port: the worker's next calls
// reconnect and get the checkpointed values, and training goes on from there.
TEST(PsServer, ARestartedServerGoesOnFromItsCheckpointWhileTheWorkerRetries) {
  const std::string path = temp_path("restart");
  auto server = checkpointing_server(path, 1, false, 0);
  const int port = server->port();
  WorkerOptions o{.index = 0,
                  .servers = {"127.0.0.1:" + std::to_string(port)},
                  .token = kToken,
                  .heartbeat_interval = milliseconds(50),
                  .reconnect_timeout = milliseconds(20000)};
  Worker worker(o, {dense_table(1, 5, {.momentum = 0.5f}), sparse_table(2, 3)});
  const std::vector<uint64_t> keys{7, 1ULL << 40, 7};
  for (int step = 0; step < 3; ++step) {
    worker.push_dense(1, step, std::vector<float>{1, 2, 3, 4, 5}, 0.1f);
    worker.push_sparse(2, step, keys, std::vector<float>(9, 0.5f), 0.1f);
  }
  std::vector<float> dense(5);
  std::vector<float> rows(9);
  worker.pull_dense(1, 3, dense);
  worker.pull_sparse(2, 3, keys, rows);
  server->stop();  // writes its checkpoint, then its connections close as if it died
  server.reset();

  std::thread restart([&] {
    std::this_thread::sleep_for(milliseconds(300));  // the worker's calls fail meanwhile
    server = checkpointing_server(path, 1, true, port);
  });
  std::vector<float> dense_again(5);
  std::vector<float> rows_again(9);
  worker.pull_dense(1, 3, dense_again);
  restart.join();
  worker.pull_sparse(2, 3, keys, rows_again);
  EXPECT_EQ(dense_again, dense);
  EXPECT_EQ(rows_again, rows);
  // Momentum survived the restart: the next step moves as it would have without one.
  worker.push_dense(1, 3, std::vector<float>{1, 2, 3, 4, 5}, 0.1f);
  worker.pull_dense(1, 4, dense_again);
  const float velocity = 1 + 0.5f * (1 + 0.5f * (1 + 0.5f * 1));  // element 0, 4 pushes
  EXPECT_NEAR(dense_again[0], dense[0] - 0.1f * velocity, 1e-6);
  EXPECT_EQ(worker.steps(), 4) << "the servers had 4 steps from it, one after the restart";
  worker.finish();
  server->wait_until_done(milliseconds(5000));
  std::filesystem::remove_all(path);
}

TEST(PsServer, ARestartedServerDeclaresLostTheWorkersThatDoNotComeBack) {
  const std::string path = temp_path("lost");
  checkpointing_server(path, 2, false, 0).reset();  // both workers still training in it
  auto server = checkpointing_server(path, 2, true, 0);
  const auto start = std::chrono::steady_clock::now();
  server->wait_until_done(milliseconds(5000));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(450))
      << "lost only after the heartbeat timeout";
  std::filesystem::remove_all(path);
}

TEST(PsServer, ADamagedOrForeignCheckpointIsRefusedNamingTheFile) {
  const std::string dir = temp_path("bad");
  const std::string path = checkpoint_file(dir, 0);
  checkpointing_server(dir, 1, false, 0).reset();
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto refused = [&](const std::string& content, const std::string& why) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    try {
      (void)checkpointing_server(dir, 1, true, 0);
      ADD_FAILURE() << "expected FormatError: " << why;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  refused(flipped, "checksum mismatch");
  refused(bytes.substr(0, bytes.size() - 3), "truncated");
  refused("not a checkpoint at all, but long enough", "not a tessera parameter-server checkpoint");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  try {
    (void)checkpointing_server(dir, 2, true, 0);
    ADD_FAILURE() << "expected FormatError for another job's worker count";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("a job of 1 workers, not 2"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

// Under bsp worker 0 asks for a step's checkpoint between its pull and its push of that step: the
// servers' state is exactly the one after it, and a server started from it (a resumed job)
// expects that step's round.
TEST(PsServer, ABspStepCheckpointResumesAtItsRound) {
  const std::string dir = temp_path("steps");
  auto server = checkpointing_server(dir, 2, false, 0, Consistency::kBsp);
  std::vector<std::unique_ptr<Worker>> workers;
  const auto connect = [&] {
    workers.clear();
    for (uint32_t w = 0; w < 2; ++w) {
      workers.push_back(std::make_unique<Worker>(
          WorkerOptions{.index = w,
                        .servers = {"127.0.0.1:" + std::to_string(server->port())},
                        .token = kToken},
          std::vector{dense_table(1, 5, {.momentum = 0.5f}), sparse_table(2, 3)}));
    }
  };
  connect();
  const auto push = [&](uint32_t w, int64_t step) {
    workers[w]->push_dense(1, step, std::vector<float>{1, 1, 1, 1, float(w)}, 0.1f);
    workers[w]->push_sparse(2, step, std::vector<uint64_t>{3}, std::vector<float>{1, 2, 3}, 0.1f);
  };
  const auto both_push = [&](int64_t step) {
    std::thread other([&] { push(1, step); });
    push(0, step);
    other.join();
  };
  workers[0]->checkpoint(0);
  both_push(0);
  workers[0]->checkpoint(1);
  both_push(1);
  std::vector<float> at_two(5);
  workers[0]->pull_dense(1, 2, at_two);
  push(1, 2);  // worker 1 is ahead: its push of step 2 is not in the checkpoint
  workers[0]->checkpoint(2);
  push(0, 2);
  for (auto& w : workers) w->finish();
  server->wait_until_done(milliseconds(5000));
  server.reset();
  EXPECT_TRUE(std::filesystem::exists(checkpoint_file(dir, 0, 2)));
  EXPECT_TRUE(std::filesystem::exists(checkpoint_file(dir, 0, 1)));
  EXPECT_FALSE(std::filesystem::exists(checkpoint_file(dir, 0, 0))) << "keeps the newest 2";

  server = checkpointing_server(dir, 2, false, 0, Consistency::kBsp, checkpoint_file(dir, 0, 2));
  connect();
  std::vector<float> resumed(5);
  workers[1]->pull_dense(1, 2, resumed);
  EXPECT_EQ(resumed, at_two);
  both_push(2);  // the round of step 2 again, from both
  workers[0]->pull_dense(1, 3, resumed);
  EXPECT_NE(resumed, at_two);
  for (auto& w : workers) w->finish();
  server->wait_until_done(milliseconds(5000));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tessera::parallel::ps
