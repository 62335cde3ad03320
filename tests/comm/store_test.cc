#include "tessera/comm/store.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "run_ranks.h"
#include "store_protocol.h"
#include "store_service.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/comm/prefix_store.h"
#include "tessera/comm/socket.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/comm/token_auth.h"
#include "tessera/core/error.h"
#include "testing/text.h"

namespace tessera::comm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using tessera::testing::contains;

int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

int count_lines_with(const std::string& text, const std::string& part) {
  int n = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) n += contains(line, part) ? 1 : 0;
  return n;
}

// The same contract, checked on each implementation.
struct StoreFactory {
  std::string name;
  std::function<std::shared_ptr<Store>()> make;
};

class StoreContract : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override { store_ = GetParam().make(); }
  std::shared_ptr<Store> store_;
};

// A server shared by the TcpStore cases of the contract (each case uses fresh keys).
TcpStoreServer& shared_server() {
  static TcpStoreServer server(TcpStoreServerOptions{.token = "contract-token"});
  return server;
}

// A blocking loopback connection to `port`, not speaking until told to.
int raw_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const timeval limit{.tv_sec = 10, .tv_usec = 0};  // no read in a test waits forever
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  return fd;
}

void send_bytes(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Everything the peer sends until it closes the connection (or 10 s pass).
std::string read_until_closed(int fd) {
  std::string bytes;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(n, 0) << "the connection was not closed";
  return bytes;
}

// One frame's body from fd.
std::string read_frame(int fd) {
  char prefix[4];
  if (::recv(fd, prefix, 4, MSG_WAITALL) != 4) return "";
  std::string body(frame_length(prefix), '\0');
  if (::recv(fd, body.data(), body.size(), MSG_WAITALL) != static_cast<ssize_t>(body.size())) {
    return "";
  }
  return body;
}

int key_counter = 0;
std::string fresh(const std::string& base) { return base + std::to_string(++key_counter); }

TEST_P(StoreContract, SetThenGetReturnsTheValue) {
  const std::string key = fresh("k");
  store_->set(key, std::string("bytes\0with zero", 15));
  EXPECT_EQ(store_->get(key), std::string("bytes\0with zero", 15));
  store_->set(key, "replaced");
  EXPECT_EQ(store_->get(key, milliseconds(10)), "replaced");
}

TEST_P(StoreContract, GetWaitsForAKeySetByAnotherThread) {
  const std::string key = fresh("later");
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(30));
    store_->set(key, "arrived");
  });
  EXPECT_EQ(store_->get(key, milliseconds(5000)), "arrived");
  setter.join();
}

TEST_P(StoreContract, WaitReturnsOnceEveryKeyIsSet) {
  const std::string a = fresh("a");
  const std::string b = fresh("b");
  std::thread setter([&] {
    store_->set(a, "1");
    std::this_thread::sleep_for(milliseconds(20));
    store_->set(b, "2");
  });
  store_->wait({a, b}, milliseconds(5000));
  EXPECT_TRUE(store_->check({a, b}));
  setter.join();
}

TEST_P(StoreContract, WaitTimeoutNamesTheMissingKeys) {
  const std::string present = fresh("present");
  const std::string absent = fresh("absent");
  store_->set(present, "x");
  const auto start = Clock::now();
  try {
    store_->wait({present, absent}, milliseconds(100));
    ADD_FAILURE() << "wait returned";
  } catch (const TimeoutError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, store_->description())) << what;
    EXPECT_TRUE(contains(what, "missing: ['" + absent + "']")) << what;
    EXPECT_TRUE(contains(what, "timed out after")) << what;
  }
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(95));
  EXPECT_LT(waited, milliseconds(2000));
  EXPECT_THROW((void)store_->get(absent, milliseconds(20)), TimeoutError);
}

TEST_P(StoreContract, AddCountsAtomicallyAcrossThreads) {
  const std::string key = fresh("counter");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) store_->add(key, 1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->add(key, 0), 200);
  EXPECT_EQ(store_->get(key), "200");
  EXPECT_EQ(store_->add(key, -201), -1);
  const std::string text = fresh("text");
  store_->set(text, "not a number");
  EXPECT_THROW(store_->add(text, 1), ValueError);
}

TEST_P(StoreContract, CompareSetSwapsOnlyTheExpectedValue) {
  const std::string key = fresh("cas");
  EXPECT_EQ(store_->compare_set(key, "", "first"), "first");  // absent counts as ""
  EXPECT_EQ(store_->compare_set(key, "wrong", "second"), "first");
  EXPECT_EQ(store_->compare_set(key, "first", "second"), "second");
  EXPECT_EQ(store_->get(key), "second");
}

TEST_P(StoreContract, RemoveAndCheck) {
  const std::string key = fresh("gone");
  EXPECT_FALSE(store_->check({key}));
  EXPECT_FALSE(store_->remove(key));
  store_->set(key, "v");
  EXPECT_TRUE(store_->check({key}));
  EXPECT_TRUE(store_->remove(key));
  EXPECT_FALSE(store_->check({key}));
}

TEST_P(StoreContract, PrefixStoreKeepsItsKeysApart) {
  auto a = std::make_shared<PrefixStore>("attempt1", store_);
  auto b = std::make_shared<PrefixStore>("attempt2", store_);
  const std::string key = fresh("shared-name");
  a->set(key, "one");
  b->set(key, "two");
  EXPECT_EQ(a->get(key), "one");
  EXPECT_EQ(b->get(key), "two");
  EXPECT_EQ(store_->get("attempt1/" + key), "one");
  EXPECT_FALSE(store_->check({key}));
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreContract,
    ::testing::Values(StoreFactory{"HashStore", [] { return std::make_shared<HashStore>(); }},
                      StoreFactory{"TcpStore",
                                   [] {
                                     return std::make_shared<TcpStore>(
                                         TcpStoreOptions{.port = shared_server().port(),
                                                         .token = "contract-token"});
                                   }}),
    [](const auto& info) { return info.param.name; });

TEST(TcpStore, ServerListensOnLoopbackByDefaultOnAChosenPort) {
  TcpStoreServer server(TcpStoreServerOptions{.token = "t"});
  EXPECT_EQ(server.host(), "127.0.0.1");
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.address(), "127.0.0.1:" + std::to_string(server.port()));
}

TEST(TcpStore, ServerNeedsAToken) {
  EXPECT_THROW(TcpStoreServer(TcpStoreServerOptions{.token = ""}), ValueError);
}

TEST(TcpStore, ManyClientsShareOneServer) {
  TcpStoreServer server(TcpStoreServerOptions{.token = "job"});
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      TcpStore store(TcpStoreOptions{.port = server.port(), .token = "job"});
      store.set("client" + std::to_string(c), "here");
      store.add("arrived", 1);
      std::vector<std::string> all;
      for (int o = 0; o < 6; ++o) all.push_back("client" + std::to_string(o));
      store.wait(all, milliseconds(5000));
    });
  }
  for (auto& t : clients) t.join();
  TcpStore observer(TcpStoreOptions{.port = server.port(), .token = "job"});
  EXPECT_EQ(observer.get("arrived"), "6");
}

TEST(TcpStore, AWrongOrMissingTokenIsRefusedAndLogged) {
  for (const std::string token : {"wrong-token", ""}) {
    // A server each: refusals are logged once per interval.
    TcpStoreServer server(TcpStoreServerOptions{.token = "right-token"});
    ::testing::internal::CaptureStderr();
    try {
      TcpStore store(TcpStoreOptions{.port = server.port(), .token = token});
      ADD_FAILURE() << "connected with token '" << token << "'";
    } catch (const CommError& e) {
      EXPECT_EQ(std::string(e.what()),
                "store at " + server.address() + " refused the connection: bad job token");
    }
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(contains(log, "refused a connection from 127.0.0.1:")) << log;
    EXPECT_TRUE(contains(log, "bad job token")) << log;
    EXPECT_FALSE(contains(log, "right-token")) << "the log must not leak the token: " << log;
    // The server still serves clients that have the token.
    TcpStore good(TcpStoreOptions{.port = server.port(), .token = "right-token"});
    good.set("k", "v");
    EXPECT_EQ(good.get("k"), "v");
  }
}

TEST(TcpStore, AStrangerSpeakingAnotherProtocolIsRefused) {
  TcpStoreServer server(TcpStoreServerOptions{.token = "tok"});
  ::testing::internal::CaptureStderr();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  char buffer[64];
  ssize_t n = 0;
  // The server answers with a refusal and closes: read until EOF.
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) {
  }
  EXPECT_EQ(n, 0);
  ::close(fd);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "refused a connection from 127.0.0.1:")) << log;
  TcpStore good(TcpStoreOptions{.port = server.port(), .token = "tok"});
  good.set("still", "serving");
}

TEST(TcpStore, ConnectingWhereNothingListensTimesOutNamingTheAddress) {
  // A port that was free a moment ago: bind an ephemeral one, then release it.
  int port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  const auto start = Clock::now();
  try {
    TcpStore store(
        TcpStoreOptions{.port = port, .token = "t", .connect_timeout = milliseconds(300)});
    ADD_FAILURE() << "connected to a closed port";
  } catch (const TimeoutError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(
        contains(what, "could not connect to the store at 127.0.0.1:" + std::to_string(port)))
        << what;
    EXPECT_TRUE(contains(what, "tried for")) << what;
    EXPECT_TRUE(contains(what, "Connection refused")) << what;
  }
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(290));
  EXPECT_LT(waited, milliseconds(3000));
}

TEST(TcpStore, AClientStartedBeforeTheServerConnectsOnceItListens) {
  // Reserve a port, start the client, then bring the server up on that port.
  int port = 0;
  {
    TcpStoreServer probe(TcpStoreServerOptions{.token = "t"});
    port = probe.port();
  }
  std::thread late_server;
  std::unique_ptr<TcpStoreServer> server;
  late_server = std::thread([&] {
    std::this_thread::sleep_for(milliseconds(100));
    server = std::make_unique<TcpStoreServer>(TcpStoreServerOptions{.port = port, .token = "t"});
  });
  TcpStore store(
      TcpStoreOptions{.port = port, .token = "t", .connect_timeout = milliseconds(5000)});
  late_server.join();
  store.set("k", "v");
  EXPECT_EQ(store.get("k"), "v");
}

TEST(TcpStore, RequestsToAStoppedServerFailWithinTheirDeadline) {
  auto server = std::make_unique<TcpStoreServer>(TcpStoreServerOptions{.token = "t"});
  TcpStore store(TcpStoreOptions{
      .port = server->port(), .token = "t", .connect_timeout = std::chrono::seconds(30)});
  store.set("k", "v");
  server->stop();
  // The pooled connection is closed by the server: an error, not a hang.
  EXPECT_THROW(store.set("k", "w"), CommError);
  // A new connection is retried, but only until the request's own deadline.
  const auto start = Clock::now();
  EXPECT_THROW((void)store.get("k", milliseconds(100)), TimeoutError);
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
}

TEST(TcpStore, GlooGroupsMeetThroughIt) {
  TcpStoreServer server(TcpStoreServerOptions{.token = "job-token"});
  testing::run_threads(3, [&](int rank) {
    auto store =
        std::make_shared<TcpStore>(TcpStoreOptions{.port = server.port(), .token = "job-token"});
    auto group = make_gloo_group(store, rank, 3, testing::test_options());
    double x = rank;
    group->allreduce(&x, 1, DataType::kFloat64, ReduceOp::kSum)->wait();
    EXPECT_EQ(x, 3.0);
    group->shutdown();
  });
}

TEST(TcpStore, AClientWithoutTheTokenCanNeitherSetNorGetNorWait) {
  const std::string token = make_job_token();
  TcpStoreServer server(TcpStoreServerOptions{.token = token});
  TcpStore rank(TcpStoreOptions{.port = server.port(), .token = token});
  rank.set("job/address", "rank 0's");
  ::testing::internal::CaptureStderr();
  for (const std::string& guess : {std::string("not-the-token-0123456789"), std::string()}) {
    const int fd = raw_connect(server.port());
    const std::string hello = read_frame(fd);
    FrameReader challenge(hello);
    ASSERT_EQ(challenge.u8(), static_cast<std::uint8_t>(StoreStatus::kChallenge));
    ASSERT_EQ(challenge.str(), std::string(kStoreMagic));
    const std::string server_nonce = challenge.str().value();
    const std::string client_nonce = random_nonce();
    // The handshake and, without waiting for the verdict, requests for the job's keys.
    send_bytes(fd, FrameWriter()
                           .u8(static_cast<std::uint8_t>(StoreCommand::kHandshake))
                           .str(kStoreMagic)
                           .str(client_nonce)
                           .str(client_proof(guess, server_nonce, client_nonce))
                           .finish() +
                       FrameWriter()
                           .u8(static_cast<std::uint8_t>(StoreCommand::kSet))
                           .str("job/address")
                           .str("the stranger's")
                           .finish() +
                       FrameWriter()
                           .u8(static_cast<std::uint8_t>(StoreCommand::kGet))
                           .str("job/address")
                           .i64(0)
                           .finish() +
                       FrameWriter()
                           .u8(static_cast<std::uint8_t>(StoreCommand::kWait))
                           .strs({"job/address"})
                           .i64(0)
                           .finish());
    const std::string answer = read_until_closed(fd);
    ::close(fd);
    EXPECT_EQ(answer, FrameWriter().u8(static_cast<std::uint8_t>(StoreStatus::kRefused)).finish())
        << "the stranger got more than a refusal";
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "bad job token")) << log;
  EXPECT_FALSE(contains(log, token)) << log;
  EXPECT_EQ(rank.get("job/address"), "rank 0's");
}

TEST(TcpStore, AServerThatCannotProveTheTokenIsNotTrustedAndLearnsNothing) {
  const std::string token = make_job_token();
  int port = 0;
  Socket listener = listen_tcp("127.0.0.1", 0, &port);
  std::string heard;
  std::thread impostor([&] {
    pollfd incoming{.fd = listener.fd(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(::poll(&incoming, 1, 10000), 1) << "the client never connected";
    Socket connection(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(connection.valid());
    const timeval limit{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(connection.fd(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    const std::string hello = FrameWriter()
                                  .u8(static_cast<std::uint8_t>(StoreStatus::kChallenge))
                                  .str(kStoreMagic)
                                  .str(random_nonce())
                                  .finish();
    send_bytes(connection.fd(), hello);
    heard = read_frame(connection.fd());
    send_bytes(connection.fd(), FrameWriter()
                                    .u8(static_cast<std::uint8_t>(StoreStatus::kOk))
                                    .str(std::string(kProofBytes, 'x'))
                                    .finish());
  });
  try {
    TcpStore store(TcpStoreOptions{.port = port, .token = token});
    ADD_FAILURE() << "the client trusted a server without the token";
  } catch (const CommError& e) {
    EXPECT_TRUE(contains(e.what(), "could not prove that it holds the job token")) << e.what();
  }
  impostor.join();
  EXPECT_FALSE(heard.empty());
  EXPECT_FALSE(contains(heard, token)) << "the token crossed the wire";
}

TEST(TcpStore, TimeoutsBelowZeroZeroAndHugeAreClamped) {
  TcpStoreServer server(TcpStoreServerOptions{.token = "t"});
  TcpStore store(TcpStoreOptions{.port = server.port(), .token = "t"});
  for (const milliseconds timeout : {milliseconds(-1), milliseconds(0), milliseconds::min()}) {
    const auto start = Clock::now();
    EXPECT_THROW((void)store.get("absent", timeout), TimeoutError) << timeout.count();
    EXPECT_THROW(store.wait({"absent"}, timeout), TimeoutError) << timeout.count();
    EXPECT_LT(Clock::now() - start, milliseconds(1000)) << timeout.count();
  }
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(50));
    TcpStore other(TcpStoreOptions{.port = server.port(), .token = "t"});
    other.set("late", "here");
  });
  EXPECT_EQ(store.get("late", milliseconds::max()), "here");
  store.wait({"late"}, milliseconds::max());
  setter.join();
}

// Strangers' connections that never speak: the job's ranks still meet. The server keeps only so
// many of them and closes the oldest.
TEST(TcpStore, FiveHundredIdleConnectionsDoNotLockTheRanksOut) {
  const std::string token = make_job_token();
  TcpStoreServer server(TcpStoreServerOptions{.token = token});
  ::testing::internal::CaptureStderr();
  std::vector<int> idle;
  for (int i = 0; i < 500; ++i) idle.push_back(raw_connect(server.port()));
  testing::run_threads(3, [&](int rank) {
    auto store = std::make_shared<TcpStore>(TcpStoreOptions{.port = server.port(), .token = token});
    auto group = make_gloo_group(store, rank, 3, testing::test_options());
    double x = rank;
    group->allreduce(&x, 1, DataType::kFloat64, ReduceOp::kSum)->wait();
    EXPECT_EQ(x, 3.0);
    group->shutdown();
  });
  int closed = 0;
  for (int fd : idle) {
    (void)read_frame(fd);  // the challenge
    const timeval brief{.tv_sec = 0, .tv_usec = 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &brief, sizeof(brief));
    char byte = 0;
    if (::recv(fd, &byte, 1, 0) == 0) ++closed;
    ::close(fd);
  }
  EXPECT_GE(closed, 500 - static_cast<int>(StoreService::kMaxUnauthenticated));
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, "it had not authenticated when a newer connection came")) << log;
  EXPECT_LE(count_lines(log), 3) << "the evictions flooded the log:\n" << log;
}

// CPU seconds `pid` has used, from /proc.
double cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name, which ends with the last ')': utime and stime are the 12th and
  // 13th of them.
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 1; i <= 13 && fields >> field; ++i) {
    if (i >= 12) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int highest_open_fd() {
  int highest = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  }
  return highest;
}

// A child process hosts the server with room for only a few more descriptors; the test fills
// them. accept() then fails with EMFILE while the listening socket stays readable: the server
// must rest instead of spinning, say so once, and serve again once descriptors are free.
TEST(TcpStore, KeepsServingWhenItsProcessRunsOutOfFileDescriptors) {
  const std::string token = make_job_token();
  const std::filesystem::path log_path =
      std::filesystem::temp_directory_path() /
      ("tessera-store-emfile-" + std::to_string(::getpid()) + ".log");
  int ready[2];
  int quit[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(quit, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child must not return into gtest, nor outlive it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(ready[0]);
    ::close(quit[1]);
    try {
      const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      ::dup2(log, STDERR_FILENO);
      TcpStoreServer server(TcpStoreServerOptions{.token = token});
      {
        // The serve thread must be running before descriptors run out: UBSan checks a new
        // thread's vptr through a pipe, and reports "invalid vptr" when it cannot open one.
        TcpStore warm(TcpStoreOptions{.port = server.port(), .token = token});
        warm.set("warm", "1");
      }
      // Every descriptor number up to the limit taken but a few, for the test's connections.
      const auto limit = static_cast<rlim_t>(highest_open_fd() + 1);
      const rlimit lower{.rlim_cur = limit, .rlim_max = limit};
      if (::setrlimit(RLIMIT_NOFILE, &lower) != 0) ::_exit(2);
      std::vector<int> taken;
      for (int fd; (fd = ::dup(STDERR_FILENO)) >= 0;) taken.push_back(fd);
      for (int i = 0; i < 4 && !taken.empty(); ++i) {
        ::close(taken.back());
        taken.pop_back();
      }
      const int port = server.port();
      if (::write(ready[1], &port, sizeof(port)) != sizeof(port)) ::_exit(3);
      char byte = 0;
      [[maybe_unused]] const ssize_t n = ::read(quit[0], &byte, 1);  // until the test closes it
      server.stop();
      ::_exit(0);
    } catch (...) {
      ::_exit(4);
    }
  }
  ::close(ready[1]);
  ::close(quit[0]);
  int port = 0;
  ASSERT_EQ(::read(ready[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(ready[0]);

  std::vector<int> fillers;
  for (int i = 0; i < 16; ++i) fillers.push_back(raw_connect(port));
  std::string log;
  for (const auto start = Clock::now();
       !contains(log, "cannot accept connections") && Clock::now() - start < milliseconds(10000);
       std::this_thread::sleep_for(milliseconds(20))) {
    std::ifstream file(log_path);
    log.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  ASSERT_TRUE(contains(log, "cannot accept connections: Too many open files")) << log;

  const double before = cpu_seconds(child);
  std::this_thread::sleep_for(milliseconds(1000));
  const double used = cpu_seconds(child) - before;
  EXPECT_LT(used, 0.2) << "the server spun while out of descriptors";

  for (int fd : fillers) ::close(fd);
  {
    TcpStore store(
        TcpStoreOptions{.port = port, .token = token, .connect_timeout = milliseconds(10000)});
    store.set("served", "again");
    EXPECT_EQ(store.get("served"), "again");
  }
  ::close(quit[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream file(log_path);
  log.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  EXPECT_EQ(count_lines_with(log, "cannot accept connections"), 1) << log;
  std::filesystem::remove(log_path);
}

TEST(JobToken, IsFreshAndLongEnough) {
  const std::string a = make_job_token();
  const std::string b = make_job_token();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace tessera::comm
