// The elastic job of the acceptance: the Fashion-MNIST MLP (examples/) starts on 4 workers,
// loses two of them one after the other, gains one on a new host, and still reaches the accuracy
// bar of an uninterrupted run.
#include <gtest/gtest.h>

#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

TEST(ElasticFashionMnist, FourWorkersKilledDownToTwoAndOneJoiningBackReachTheAccuracyBar) {
  const fs::path dir =
      fs::temp_directory_path() / ("tessera_e2e_elastic_mnist_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string rdzv = "127.0.0.1:" + std::to_string(free_port());
  // 120 samples a step divide among 2, 3 and 4 workers: every round trains on the same global
  // batch.
  const auto agent = [&](const std::string& nproc) {
    return std::vector<std::string>{tessera_binary(),
                                    "train",
                                    std::string(TESSERA_EXAMPLES) + "/fashion_mnist_mlp.toml",
                                    "--set",
                                    "parallel.strategy=\"ddp\"",
                                    "--set",
                                    "data.batch_size=120",
                                    "--set",
                                    "train.checkpoint_every=100",
                                    "--set",
                                    "train.threads=1",
                                    "--set",
                                    "train.run_dir=\"" + (dir / "run").string() + "\"",
                                    "--nproc",
                                    nproc,
                                    "--nnodes",
                                    "1:2",
                                    "--rdzv",
                                    rdzv,
                                    "--max-restarts",
                                    "3",
                                    "--rdzv-wait",
                                    "1",
                                    "--grace",
                                    "2"};
  };
  // Round 0 (4 workers) loses rank 3 at step 1000, round 1 (3) rank 2 at step 2000; in round 2 (2)
  // rank 0 pauses at step 2600 while the new host comes.
  const std::vector<std::string> env{
      "TESSERA_JOB_TOKEN=elasticmnist0123456789",
      "TESSERA_FAULTS=sigkill:rank=3:step=1000,sigkill:rank=2:step=2000:attempt=1,"
      "slow:rank=0:step=2600:attempt=2:ms=5000"};
  Process first(agent("2:4"), env, dir / "first");
  ASSERT_TRUE(first.wait_for_output("round 2 resumed", 170s)) << first.err();
  Process second(agent("1"), env, dir / "second");
  ASSERT_EQ(first.wait(170s), 0) << first.err();
  ASSERT_EQ(second.wait(30s), 0) << second.err();
  const std::string err = first.err() + second.err();
  EXPECT_NE(err.find("round 1: node 0 of 1, world size 3"), std::string::npos) << err;
  EXPECT_NE(err.find("round 2: node 0 of 1, world size 2"), std::string::npos) << err;
  EXPECT_NE(second.err().find("round 3: node "), std::string::npos) << err;  // the new host
  EXPECT_NE(second.err().find(", world size 3, "), std::string::npos) << err;
  const std::string out = first.out() + second.out();
  std::smatch accuracy;
  ASSERT_TRUE(std::regex_search(out, accuracy, std::regex("test accuracy ([0-9.]+)%"))) << out;
  EXPECT_GE(std::stod(accuracy[1]), 88.5) << out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera::e2e
