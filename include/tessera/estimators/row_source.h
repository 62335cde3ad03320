#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/data/dataset.h"
#include "tessera/tensor/tensor.h"

namespace tessera::estimators {

// Consecutive rows of a table: their features and one target each (a class index, or a value).
struct RowBlock {
  Tensor x;               // float32 [rows, num_features]
  std::vector<double> y;  // rows targets
  int64_t first = 0;      // the index of the block's first row in the whole table
  [[nodiscard]] int64_t rows() const { return static_cast<int64_t>(y.size()); }
};

// A process's rows of a table, read in blocks, one pass at a time and in the same order every
// pass: an estimator holds a block at a time, never the rows, so a table bigger than memory
// trains in passes.
class RowSource {
 public:
  virtual ~RowSource() = default;
  RowSource() = default;
  RowSource(const RowSource&) = delete;
  RowSource& operator=(const RowSource&) = delete;

  [[nodiscard]] virtual int64_t num_features() const = 0;
  [[nodiscard]] virtual int64_t num_rows() const = 0;  // this process's
  // The table index of this process's first row: a block's row r is the process's row
  // block.first + r - first_row().
  [[nodiscard]] virtual int64_t first_row() const = 0;
  // Where row `index` of the whole table was read from ("train.csv:17"), for errors.
  [[nodiscard]] virtual std::string origin(int64_t index) const = 0;
  // Calls visit once per block, in order. The block is valid during the call only.
  virtual void for_each_block(const std::function<void(const RowBlock&)>& visit) = 0;
  // The same pass with the rows split into parts() consecutive stretches, visited at once on the
  // process's threads (tessera::num_threads(); the products inside a visit then run on one):
  // visit(block, p) gets part p's blocks in order. One part when the data set cannot be read
  // from several threads.
  [[nodiscard]] virtual int parts() const = 0;
  virtual void for_each_block_in_parts(
      const std::function<void(const RowBlock&, int part)>& visit) = 0;
};

// The rows of every process of `group` (nullptr: this one's).
[[nodiscard]] int64_t count_rows(const RowSource& rows, comm::ProcessGroup* group);

// Sums a pass over the rows into `size` doubles: add(block, sums) for each block, the parts'
// sums (RowSource::parts) added in part order, so a pass gives the same sums every time.
[[nodiscard]] std::vector<double> sum_blocks(
    RowSource& rows, size_t size,
    const std::function<void(const RowBlock&, std::vector<double>&)>& add);

struct ShardOptions {
  int rank = 0;
  int ranks = 1;
  int64_t block_rows = 4096;
  // >= 0: the target is this feature (a value to regress on, e.g. a CSV column) and the features
  // are the others; < 0: the target is the sample's label.
  int64_t target_feature = -1;
};

// Process `rank`'s part of `data`: rows [rank * N / ranks, (rank + 1) * N / ranks), read in order
// (which streamed data sets read cheaply). Throws ValueError for a bad rank, block size or target
// feature.
[[nodiscard]] std::unique_ptr<RowSource> dataset_rows(std::shared_ptr<data::Dataset> data,
                                                      const ShardOptions& options);

}  // namespace tessera::estimators
