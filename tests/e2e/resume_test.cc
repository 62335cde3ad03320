// `tessera train --resume` on ranks that are separate processes, each with a run directory of its
// own (as on separate machines): every rank resumes from rank 0's checkpoint, or every rank stops
// with an error naming the rank that could not load it.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "process.h"

namespace tessera::e2e {
namespace {

using namespace std::chrono_literals;

// Two `tessera train` ranks started as mpirun starts them; rank r trains with
// train.run_dir=<dir>/<run>/rank<r> and the overrides in extra[r]. Returns their exit codes (-1
// for a rank that did not finish within the deadline) after printing what a failed one said.
std::vector<int> train_two_ranks(const TrainingJob& job, const std::string& run,
                                 const std::vector<std::vector<std::string>>& extra,
                                 bool resume = false) {
  const std::string config = job.config(3, 5).string();
  const int port = free_port();
  std::vector<std::unique_ptr<Process>> ranks(2);
  for (int rank = 1; rank >= 0; --rank) {  // rank 1 first: it must wait for rank 0's store
    const std::string r = std::to_string(rank);
    std::vector<std::string> args{
        tessera_binary(),
        "train",
        config,
        "--set",
        "train.run_dir=\"" + (job.dir() / run / ("rank" + r)).string() + "\"",
        "--set",
        "optimizer.momentum=0.9"};
    for (const auto& o : extra[static_cast<size_t>(rank)]) args.insert(args.end(), {"--set", o});
    if (resume) args.push_back("--resume");
    ranks[static_cast<size_t>(rank)] = std::make_unique<Process>(
        args,
        std::vector<std::string>{"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port),
                                 "TESSERA_JOB_TOKEN=resume0123456789abcdef", "TESSERA_BACKEND=gloo",
                                 "TESSERA_COMM_TIMEOUT_S=20", "OMPI_COMM_WORLD_RANK=" + r,
                                 "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=" + r,
                                 "OMPI_COMM_WORLD_LOCAL_SIZE=2"},
        job.dir() / (run + "_rank" + r + (resume ? "_resume" : "")));
  }
  std::vector<int> codes;
  for (int rank = 0; rank < 2; ++rank) {
    Process& p = *ranks[static_cast<size_t>(rank)];
    codes.push_back(p.wait(60s).value_or(-1));
    if (codes.back() != 0)
      std::printf("rank %d said:\n%s%s\n", rank, p.out().c_str(), p.err().c_str());
  }
  return codes;
}

TEST(Resume, RanksWithRunDirectoriesOfTheirOwnResumeFromRankZerosCheckpoint) {
  TrainingJob job("resume_own_dirs");
  // 240 samples in global batches of 48: 5 steps per epoch, 15 in all.
  ASSERT_EQ(train_two_ranks(job, "full", {{}, {}}), (std::vector<int>{0, 0}));
  ASSERT_EQ(train_two_ranks(job, "split", {{"train.max_steps=7"}, {"train.max_steps=7"}}),
            (std::vector<int>{0, 0}));
  ASSERT_TRUE(fs::exists(job.dir() / "split/rank0/checkpoints/step-0000000007.ckpt"));
  ASSERT_FALSE(fs::exists(job.dir() / "split/rank1/checkpoints")) << "only rank 0 writes";
  ASSERT_EQ(train_two_ranks(job, "split", {{}, {}}, true), (std::vector<int>{0, 0}));
  EXPECT_NE(read_file(job.dir() / "split_rank0_resume.err")
                .find("resumed from " +
                      (job.dir() / "split/rank0/checkpoints/step-0000000007.ckpt").string()),
            std::string::npos);
  // Rank 1 trained from the same step, optimizer and random state as rank 0: the model ends as
  // the uninterrupted run's, bit for bit.
  EXPECT_EQ(model_of(job.dir() / "split/rank0/checkpoints/step-0000000015.ckpt"),
            model_of(job.dir() / "full/rank0/checkpoints/step-0000000015.ckpt"));
}

TEST(Resume, ARankThatCannotLoadTheCheckpointStopsEveryRankNamingItAndTheFile) {
  TrainingJob job("resume_load_fails");
  ASSERT_EQ(train_two_ranks(job, "run", {{"train.max_steps=7"}, {"train.max_steps=7"}}),
            (std::vector<int>{0, 0}));
  // Rank 1 builds Adam, which cannot take the SGD state in the checkpoint.
  EXPECT_EQ(train_two_ranks(job, "run", {{}, {"optimizer.name=\"adam\""}}, true),
            (std::vector<int>{1, 1}));
  const std::string file = (job.dir() / "run/rank0/checkpoints/step-0000000007.ckpt").string();
  for (int rank = 0; rank < 2; ++rank) {
    const std::string err =
        read_file(job.dir() / ("run_rank" + std::to_string(rank) + "_resume.err"));
    EXPECT_NE(err.find("rank 1 could not load it"), std::string::npos) << err;
    EXPECT_NE(err.find(file), std::string::npos) << err;
    EXPECT_NE(err.find("expected 'adam'"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace tessera::e2e
