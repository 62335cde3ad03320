#include "tessera/comm/elastic_rendezvous.h"

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/comm/errors.h"
#include "tessera/comm/hash_store.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

using std::chrono::milliseconds;

ElasticOptions options(int min_nodes, int max_nodes) {
  return ElasticOptions{.min_nodes = min_nodes,
                        .max_nodes = max_nodes,
                        .last_call = milliseconds(300),
                        .timeout = milliseconds(3000),
                        .max_restarts = 3,
                        .poll = milliseconds(5)};
}

// Each agent joins its next round on its own thread, as the agents of several hosts would.
std::vector<ElasticRound> join_all(std::vector<ElasticRendezvous*> agents,
                                   std::vector<int> nproc = {}) {
  nproc.resize(agents.size(), 1);
  std::vector<std::future<std::optional<ElasticRound>>> rounds;
  for (std::size_t i = 0; i < agents.size(); ++i) {
    rounds.push_back(
        std::async(std::launch::async, [a = agents[i], n = nproc[i]] { return a->join(n); }));
  }
  std::vector<ElasticRound> out;
  for (auto& r : rounds) {
    std::optional<ElasticRound> round = r.get();
    EXPECT_TRUE(round.has_value());
    if (round) out.push_back(*round);
  }
  return out;
}

TEST(ElasticRendezvous, NodesGetRanksInTheOrderTheyCameAndWorkersConsecutiveRanks) {
  HashStore store;
  ElasticRendezvous a(store, options(2, 3));
  ElasticRendezvous b(store, options(2, 3));
  ElasticRendezvous c(store, options(2, 3));
  std::vector<ElasticRound> rounds = join_all({&a, &b, &c}, {2, 1, 3});
  ASSERT_EQ(rounds.size(), 3u);
  std::vector<int> first(3, -1);
  for (const ElasticRound& r : rounds) {
    EXPECT_EQ(r.number, 0);
    EXPECT_EQ(r.nnodes, 3);
    EXPECT_EQ(r.world_size, 6);
    first[static_cast<std::size_t>(r.node_rank)] = r.first_rank;
  }
  // Node ranks are a permutation of 0..2, and the first ranks are the sums of the ones before.
  int sum = 0;
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(first[static_cast<std::size_t>(n)], sum);
    for (const ElasticRound& r : rounds) {
      if (r.node_rank == n) sum += r.nproc;
    }
  }
  EXPECT_EQ(sum, 6);
}

TEST(ElasticRendezvous, AFailureEndsTheRoundAndTheSurvivorsCloseTheNextWithoutWaiting) {
  HashStore store;
  ElasticRendezvous a(store, options(1, 3));
  ElasticRendezvous b(store, options(1, 3));
  ElasticRendezvous c(store, options(1, 3));
  std::vector<ElasticRound> first = join_all({&a, &b, &c});
  ASSERT_EQ(first.size(), 3u);
  EXPECT_FALSE(a.should_end(first[0]).has_value());
  b.report_failure(first[1], "rank 1 was killed by SIGKILL", false);
  std::optional<RoundEnd> end = a.should_end(first[0]);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->kind, RoundEnd::Kind::kFailed);
  EXPECT_EQ(end->reason, "rank 1 was killed by SIGKILL");
  // c's host died: a and b wait for it until last_call, then go on as two.
  const auto start = std::chrono::steady_clock::now();
  std::vector<ElasticRound> second = join_all({&a, &b});
  ASSERT_EQ(second.size(), 2u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(300));
  for (const ElasticRound& r : second) {
    EXPECT_EQ(r.number, 1);
    EXPECT_EQ(r.nnodes, 2);
    EXPECT_EQ(r.world_size, 2);
    EXPECT_EQ(r.restarts, 1);
  }
}

TEST(ElasticRendezvous, ANewNodeEndsTheRunningRoundAndJoinsTheNext) {
  HashStore store;
  ElasticRendezvous a(store, options(1, 3));
  ElasticRendezvous b(store, options(1, 3));
  std::vector<ElasticRound> first = join_all({&a, &b});
  ASSERT_EQ(first.size(), 2u);
  ElasticRendezvous late(store, options(1, 3));
  auto joined = std::async(std::launch::async, [&] { return late.join(1); });
  // The newcomer cannot start a round alone while the others run.
  std::optional<RoundEnd> end;
  for (int i = 0; i < 400 && !end; ++i) {
    end = a.should_end(first[0]);
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->kind, RoundEnd::Kind::kJoin);
  std::vector<ElasticRound> second = join_all({&a, &b});
  std::optional<ElasticRound> third = joined.get();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->number, 1);
  EXPECT_EQ(third->nnodes, 3);
  EXPECT_EQ(third->restarts, 0);  // growing is not a failure
  for (const ElasticRound& r : second) EXPECT_EQ(r.nnodes, 3);
}

TEST(ElasticRendezvous, TooFewNodesTimeOutNamingHowManyCame) {
  HashStore store;
  ElasticOptions o = options(2, 2);
  o.timeout = milliseconds(200);
  ElasticRendezvous alone(store, o);
  try {
    (void)alone.join(1);
    FAIL() << "expected a timeout";
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("1 of at least 2 node(s)"), std::string::npos) << e.what();
  }
}

TEST(ElasticRendezvous, MoreFailuresThanMaxRestartsEndTheJob) {
  HashStore store;
  ElasticOptions o = options(1, 1);
  o.max_restarts = 1;
  ElasticRendezvous a(store, o);
  for (int failure = 0; failure < 2; ++failure) {
    std::optional<ElasticRound> r = a.join(1);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->restarts, failure);
    a.report_failure(*r, "rank 0 exited with code 1", false);
  }
  try {
    (void)a.join(1);
    FAIL() << "expected the job to end";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than --max-restarts 1"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 0 exited with code 1"), std::string::npos);
  }
}

TEST(ElasticRendezvous, AFatalFailureAndTheEndOfTheJobReachEveryAgent) {
  HashStore store;
  ElasticRendezvous a(store, options(1, 2));
  ElasticRendezvous b(store, options(1, 2));
  std::vector<ElasticRound> first = join_all({&a, &b});
  a.report_failure(first[0], "rank 0: config error", true);
  std::optional<RoundEnd> end = b.should_end(first[1]);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->kind, RoundEnd::Kind::kFatal);
  EXPECT_THROW((void)b.join(1), Error);

  HashStore done_store;
  ElasticRendezvous c(done_store, options(1, 1));
  std::optional<ElasticRound> r = c.join(1);
  ASSERT_TRUE(r.has_value());
  c.report_done();
  EXPECT_EQ(c.should_end(*r)->kind, RoundEnd::Kind::kDone);
  EXPECT_FALSE(c.join(1).has_value());
}

TEST(ElasticRendezvous, StepsPublishedByWorkersReachTheAgents) {
  HashStore store;
  ElasticRendezvous a(store, options(1, 1));
  EXPECT_EQ(a.last_step(1), -1);
  ElasticRendezvous::publish_step(store, 1, 0, 42);
  EXPECT_EQ(a.last_step(1), 42);
  // The newest of the reporters': rank 0's report stops where it died, rank 1's goes on.
  ElasticRendezvous::publish_step(store, 1, 1, 43);
  EXPECT_EQ(a.last_step(1), 43);
  ElasticRendezvous::publish_step(store, 1, 0, 44);
  EXPECT_EQ(a.last_step(1), 44);
  // Each round has its own: a round that resumed further back is not credited with the last's.
  EXPECT_EQ(a.last_step(2), -1);
  ElasticRendezvous::publish_step(store, 2, 0, 30);
  EXPECT_EQ(a.last_step(2), 30);
  EXPECT_FALSE(a.resumed_step(1).has_value());
  ElasticRendezvous::publish_resumed(store, 1, 40);
  EXPECT_EQ(a.resumed_step(1), 40);
}

}  // namespace
}  // namespace tessera::comm
