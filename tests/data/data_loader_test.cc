#include "tessera/data/data_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"
#include "tessera/data/dataset.h"
#include "tessera/data/in_memory_dataset.h"

namespace tessera::data {
namespace {

using namespace std::chrono_literals;

// Sample i is [i, -i] with label i. Can throw at one index and sleep in every read.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  const Shape& sample_shape() const override { return shape_; }
  int64_t read_into(int64_t index, std::span<float> out) override {
    check_read(index, out, "CountingDataset");
    reads.fetch_add(1);
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (index == fail_at) throw FormatError("counting.bin: record " + std::to_string(index));
    out[0] = static_cast<float>(index);
    out[1] = static_cast<float>(-index);
    return index;
  }
  int64_t fail_at = -1;
  std::chrono::milliseconds delay{0};
  std::atomic<int64_t> reads{0};

 private:
  int64_t n_;
  Shape shape_{2};
};

// Every batch's labels, one vector per batch.
std::vector<std::vector<int64_t>> drain(DataLoader& loader) {
  std::vector<std::vector<int64_t>> out;
  while (std::optional<Batch> b = loader.next()) {
    EXPECT_EQ(b->x.shape(), (Shape{b->size(), 2}));
    const auto labels = b->y.to_vector<int64_t>();
    // Features belong to the same sample as the label.
    for (int64_t i = 0; i < b->size(); ++i) {
      EXPECT_EQ(b->x.at({i, 0}), static_cast<double>(labels[i]));
      EXPECT_EQ(b->x.at({i, 1}), -static_cast<double>(labels[i]));
    }
    out.push_back(labels);
  }
  return out;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(DataLoader, BatchesCoverTheRanksIndicesInOrderWithAPartialLastBatch) {
  for (int prefetch : {0, 1, 2, 5}) {
    SCOPED_TRACE(::testing::Message() << "prefetch " << prefetch);
    CountingDataset data(23);
    DistributedSampler sampler(23, 1, 2, {.seed = 3});
    sampler.set_epoch(2);
    const std::vector<int64_t> expected(sampler.indices().begin(), sampler.indices().end());
    DataLoader loader(data, sampler, {.batch_size = 5, .prefetch = prefetch});
    loader.set_epoch(2);
    EXPECT_EQ(loader.num_batches(), 3);  // 12 indices: 5 + 5 + 2
    const auto batches = drain(loader);
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_EQ(batches[2].size(), 2u);
    EXPECT_EQ(flatten(batches), expected);
    // The epoch is over until the next set_epoch.
    EXPECT_FALSE(loader.next().has_value());
    EXPECT_EQ(loader.state(), (SamplerState{2, 23})) << "all 23 positions, with the padding";
  }
}

TEST(DataLoader, DropLastBatchDropsThePartialBatch) {
  CountingDataset data(23);
  DataLoader loader(data, DistributedSampler(23, 0, 1, {.shuffle = false}),
                    {.batch_size = 5, .drop_last_batch = true});
  EXPECT_EQ(loader.num_batches(), 4);
  const auto batches = drain(loader);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches.back(), (std::vector<int64_t>{15, 16, 17, 18, 19}));
}

TEST(DataLoader, EpochsGiveDifferentOrdersOfTheSameSamples) {
  CountingDataset data(40);
  DataLoader loader(data, DistributedSampler(40, 0, 1, {.seed = 11}), {.batch_size = 8});
  loader.set_epoch(0);
  auto first = flatten(drain(loader));
  loader.set_epoch(1);
  auto second = flatten(drain(loader));
  EXPECT_NE(first, second);
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  EXPECT_EQ(first, second);
}

TEST(DataLoader, BackgroundExceptionIsRethrownInPlaceOfTheFailingBatch) {
  CountingDataset data(30);
  data.fail_at = 13;  // in the third batch of 5
  DataLoader loader(data, DistributedSampler(30, 0, 1, {.shuffle = false}),
                    {.batch_size = 5, .prefetch = 2});
  ASSERT_TRUE(loader.next().has_value());
  ASSERT_TRUE(loader.next().has_value());
  EXPECT_THROW_WITH(loader.next(), FormatError, "counting.bin: record 13");
  // Not counted as consumed: a retry meets the same batch.
  EXPECT_EQ(loader.state().position, 10);
  EXPECT_THROW_WITH(loader.next(), FormatError, "record 13");
  data.fail_at = -1;
  const auto rest = flatten(drain(loader));
  EXPECT_EQ(rest.front(), 10);
  EXPECT_EQ(rest.size(), 20u);
}

TEST(DataLoader, ExceptionWithoutPrefetchPropagatesToo) {
  CountingDataset data(10);
  data.fail_at = 0;
  DataLoader loader(data, DistributedSampler(10, 0, 1, {.shuffle = false}), {.prefetch = 0});
  EXPECT_THROW_WITH(loader.next(), FormatError, "record 0");
}

TEST(DataLoader, DestructionMidEpochDoesNotHang) {
  CountingDataset data(10000);
  data.delay = 2ms;
  const auto start = std::chrono::steady_clock::now();
  {
    DataLoader loader(data, DistributedSampler(10000, 0, 1), {.batch_size = 16, .prefetch = 4});
    ASSERT_TRUE(loader.next().has_value());
    // Leaves the producer mid-batch or waiting on a full queue.
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // The first batch takes ~32 ms; stopping waits for at most one more batch.
  EXPECT_LT(elapsed, 2s);
  // It stopped: no more than the queue plus the batch in progress was read.
  const int64_t reads = data.reads.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(data.reads.load(), reads);
  EXPECT_LE(reads, 16 * 6);
}

TEST(DataLoader, PrefetchIsBoundedByTheQueueDepth) {
  CountingDataset data(1000);
  DataLoader loader(data, DistributedSampler(1000, 0, 1), {.batch_size = 10, .prefetch = 2});
  ASSERT_TRUE(loader.next().has_value());
  std::this_thread::sleep_for(100ms);
  // One batch returned, two queued, one more built and waiting for room.
  EXPECT_LE(data.reads.load(), 10 * 4);
  EXPECT_GE(data.reads.load(), 10 * 3);
}

TEST(DataLoader, StateResumesWithExactlyTheBatchesNotYetReturned) {
  CountingDataset data(97);
  const DistributedSampler sampler(97, 1, 3, {.seed = 5});
  DataLoader run(data, sampler, {.batch_size = 4, .prefetch = 3});
  run.set_epoch(7);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(run.next().has_value());
  std::this_thread::sleep_for(20ms);  // let the producer run ahead
  const SamplerState saved = run.state();
  // 12 indices on each of 3 ranks; prefetched batches are not counted.
  EXPECT_EQ(saved, (SamplerState{7, 36}));
  const auto rest = drain(run);

  CountingDataset other(97);
  DataLoader resumed(other, sampler, {.batch_size = 4, .prefetch = 3});
  resumed.set_state(saved);
  EXPECT_EQ(drain(resumed), rest);
}

// Loaders of `world` ranks with a global batch of `global_batch`, all at `state`.
std::vector<std::unique_ptr<DataLoader>> loaders(Dataset& data, int world, int64_t global_batch,
                                                 bool drop_last, SamplerState state) {
  std::vector<std::unique_ptr<DataLoader>> out;
  for (int rank = 0; rank < world; ++rank) {
    out.push_back(std::make_unique<DataLoader>(
        data, DistributedSampler(data.size(), rank, world, {.seed = 8, .drop_last = drop_last}),
        DataLoaderOptions{
            .batch_size = global_batch / world, .drop_last_batch = drop_last, .prefetch = 2}));
    out.back()->set_state(state);
  }
  return out;
}

TEST(DataLoader, LoadersOnAnotherWorldSizeGoOnWithTheRestOfTheEpoch) {
  // The first `steps` global batches on `before` ranks, the rest of the epoch on `after`.
  struct Case {
    int64_t n;
    int before, after;
    int64_t global_batch, steps;
  };
  for (const Case& c : {Case{24, 2, 3, 6, 2}, Case{25, 2, 3, 6, 2}, Case{24, 4, 2, 4, 3},
                        Case{23, 4, 2, 4, 3}, Case{23, 1, 4, 4, 1}}) {
    for (bool drop_last : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "N=" << c.n << " " << c.before << " -> " << c.after
                                        << " ranks, drop_last=" << drop_last);
      CountingDataset data(c.n);
      std::vector<int64_t> seen;
      auto first = loaders(data, c.before, c.global_batch, drop_last, {1, 0});
      for (int64_t step = 0; step < c.steps; ++step) {
        for (auto& loader : first) {
          const std::optional<Batch> b = loader->next();
          ASSERT_TRUE(b.has_value());
          for (int64_t label : b->y.to_vector<int64_t>()) seen.push_back(label);
        }
      }
      const SamplerState saved = first[0]->state();
      for (auto& loader : first) ASSERT_EQ(loader->state(), saved) << "the ranks agree";
      EXPECT_EQ(saved, (SamplerState{1, c.steps * c.global_batch}));
      first.clear();
      for (auto& loader : loaders(data, c.after, c.global_batch, drop_last, saved)) {
        for (const auto& batch : drain(*loader))
          seen.insert(seen.end(), batch.begin(), batch.end());
      }
      // The epoch's order, and what of it one epoch on `after` ranks from `saved` deals.
      DistributedSampler one(c.n, 0, 1, {.seed = 8});
      one.set_epoch(1);
      const std::vector<int64_t> order(one.indices().begin(), one.indices().end());
      const int64_t left = c.n - saved.position;
      std::vector<int64_t> expected;
      if (drop_last) {
        // Whole global batches only; a rank's partial last batch is dropped too.
        expected.assign(order.begin(),
                        order.begin() + saved.position + left / c.global_batch * c.global_batch);
      } else {
        // Every sample once, then the padding: the first positions of the order again.
        expected = order;
        const int64_t padding = (left + c.after - 1) / c.after * c.after - left;
        expected.insert(expected.end(), order.begin(), order.begin() + padding);
      }
      std::sort(seen.begin(), seen.end());
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(seen, expected);
    }
  }
}

TEST(DataLoader, TimesOutWithAnErrorNamingThePosition) {
  CountingDataset data(10);
  data.delay = 300ms;
  DataLoader loader(data, DistributedSampler(10, 0, 1, {.shuffle = false}),
                    {.batch_size = 2, .timeout = 20ms});
  EXPECT_THROW_WITH(loader.next(), Error, "no batch", "20 ms", "epoch 0", "sample 0 of 10");
}

TEST(DataLoader, WorksWithAnInMemoryDatasetAndRejectsBadOptions) {
  InMemoryDataset data(Tensor::arange(12).reshape({6, 2}),
                       Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5}, {6}));
  DataLoader loader(data, DistributedSampler(6, 0, 1, {.shuffle = false}), {.batch_size = 4});
  const std::optional<Batch> b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->x.shape(), (Shape{4, 2}));
  EXPECT_EQ(b->x.at({3, 1}), 7.0);

  EXPECT_THROW_WITH(DataLoader(data, DistributedSampler(7, 0, 1)), ValueError, "covers 7",
                    "holds 6");
  EXPECT_THROW_WITH(DataLoader(data, DistributedSampler(6, 0, 1), {.batch_size = 0}), ValueError,
                    "batch_size is 0");
  EXPECT_THROW_WITH(DataLoader(data, DistributedSampler(6, 0, 1), {.prefetch = -1}), ValueError,
                    "prefetch is -1");
}

}  // namespace
}  // namespace tessera::data
