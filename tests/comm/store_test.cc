#include "tessera/comm/store.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "run_ranks.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/comm/prefix_store.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/comm/tcp_store_server.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
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

TEST(TcpStore, AWrongTokenIsRefusedAndLogged) {
  TcpStoreServer server(TcpStoreServerOptions{.token = "right-token"});
  for (const std::string token : {"wrong-token", ""}) {
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
    EXPECT_TRUE(contains(log, token.empty() ? "missing job token" : "bad job token")) << log;
    EXPECT_FALSE(contains(log, "right-token")) << "the log must not leak the token: " << log;
  }
  // The server still serves clients that have the token.
  TcpStore good(TcpStoreOptions{.port = server.port(), .token = "right-token"});
  good.set("k", "v");
  EXPECT_EQ(good.get("k"), "v");
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

TEST(JobToken, IsFreshAndLongEnough) {
  const std::string a = make_job_token();
  const std::string b = make_job_token();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace tessera::comm
