#include "tessera/estimators/row_source.h"

#include <algorithm>
#include <span>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/core/thread_pool.h"
#include "tessera/data/in_memory_dataset.h"

namespace tessera::estimators {
namespace {

class DatasetRows final : public RowSource {
 public:
  DatasetRows(std::shared_ptr<data::Dataset> data, const ShardOptions& options)
      : data_(std::move(data)), options_(options) {
    const int64_t n = data_->size();
    begin_ = n * options_.rank / options_.ranks;
    end_ = n * (options_.rank + 1) / options_.ranks;
    columns_ = data_->sample_numel();
    features_ = options_.target_feature >= 0 ? columns_ - 1 : columns_;
    if (options_.target_feature < 0) in_memory_ = dynamic_cast<data::InMemoryDataset*>(data_.get());
    // A data set read through one handle (a streamed file) may still give each thread its own.
    if (!data_->concurrent_reads()) {
      if (auto reader = data_->another_reader()) readers_.push_back(std::move(reader));
    }
  }

  [[nodiscard]] int64_t num_features() const override { return features_; }
  [[nodiscard]] int64_t num_rows() const override { return end_ - begin_; }
  [[nodiscard]] int64_t first_row() const override { return begin_; }
  [[nodiscard]] std::string origin(int64_t index) const override { return data_->origin(index); }

  void for_each_block(const std::function<void(const RowBlock&)>& visit) override {
    if (buffers_.empty()) buffers_.resize(1);
    visit_stretch(*data_, begin_, end_, buffers_[0], visit);
  }

  [[nodiscard]] int parts() const override {
    if (!data_->concurrent_reads() && readers_.empty()) return 1;
    const int64_t blocks = (num_rows() + options_.block_rows - 1) / options_.block_rows;
    return static_cast<int>(std::clamp<int64_t>(blocks, 1, num_threads()));
  }

  void for_each_block_in_parts(
      const std::function<void(const RowBlock&, int part)>& visit) override {
    const int parts = this->parts();
    if (static_cast<int>(buffers_.size()) < parts) buffers_.resize(static_cast<size_t>(parts));
    if (!readers_.empty()) {
      while (static_cast<int>(readers_.size()) < parts - 1) {
        readers_.push_back(data_->another_reader());
      }
    }
    const int64_t n = num_rows();
    parallel_for(parts, 1, [&](int64_t first_part, int64_t end_part) {
      for (int64_t p = first_part; p < end_part; ++p) {
        data::Dataset& from =
            p == 0 || readers_.empty() ? *data_ : *readers_[static_cast<size_t>(p - 1)];
        visit_stretch(from, begin_ + n * p / parts, begin_ + n * (p + 1) / parts,
                      buffers_[static_cast<size_t>(p)],
                      [&](const RowBlock& block) { visit(block, static_cast<int>(p)); });
      }
    });
  }

 private:
  // Rows [first, end) of the table in blocks, read from `from` (the data set or another reader
  // of it); `buffer` holds a block read (kept from pass to pass).
  void visit_stretch(data::Dataset& from, int64_t first, int64_t end, Tensor& buffer,
                     const std::function<void(const RowBlock&)>& visit) const {
    if (in_memory_ != nullptr) {
      view_blocks(first, end, visit);
      return;
    }
    const int64_t capacity = std::min(options_.block_rows, std::max<int64_t>(1, num_rows()));
    if (!buffer.defined()) buffer = Tensor::empty({capacity, features_});
    std::vector<float> row(static_cast<size_t>(columns_));
    RowBlock block;
    for (; first < end; first += capacity) {
      const int64_t rows = std::min(capacity, end - first);
      float* x = buffer.data<float>();
      block.y.resize(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        float* out = x + r * features_;
        if (options_.target_feature < 0) {
          block.y[static_cast<size_t>(r)] =
              static_cast<double>(from.read_into(first + r, std::span<float>(out, features_)));
          continue;
        }
        from.read_into(first + r, row);
        const auto t = static_cast<size_t>(options_.target_feature);
        block.y[static_cast<size_t>(r)] = row[t];
        std::copy(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(t), out);
        std::copy(row.begin() + static_cast<std::ptrdiff_t>(t) + 1, row.end(),
                  out + options_.target_feature);
      }
      block.x = rows == capacity ? buffer : buffer.slice(0, 0, rows);
      block.first = first;
      visit(block);
    }
  }

  // Rows already in memory as float32 with their labels apart: blocks are views, nothing copied.
  void view_blocks(int64_t first, int64_t end,
                   const std::function<void(const RowBlock&)>& visit) const {
    const Tensor features = in_memory_->features().reshape({in_memory_->size(), features_});
    const int64_t* labels = in_memory_->labels().data<int64_t>();
    RowBlock block;
    for (; first < end; first += options_.block_rows) {
      const int64_t rows = std::min(options_.block_rows, end - first);
      block.x = features.slice(0, first, first + rows);
      block.y.assign(labels + first, labels + first + rows);
      block.first = first;
      visit(block);
    }
  }

  std::shared_ptr<data::Dataset> data_;
  const data::InMemoryDataset* in_memory_ = nullptr;
  ShardOptions options_;
  int64_t begin_ = 0;
  int64_t end_ = 0;
  int64_t columns_ = 0;
  int64_t features_ = 0;
  std::vector<Tensor> buffers_;                          // one per part
  std::vector<std::unique_ptr<data::Dataset>> readers_;  // parts 1 on's, when data_ gives them
};

}  // namespace

std::unique_ptr<RowSource> dataset_rows(std::shared_ptr<data::Dataset> data,
                                        const ShardOptions& options) {
  if (data == nullptr) throw ValueError("dataset_rows: no data set");
  if (options.ranks < 1 || options.rank < 0 || options.rank >= options.ranks) {
    throw ValueError(detail::concat("dataset_rows: rank ", options.rank, " of ", options.ranks));
  }
  if (options.block_rows < 1) {
    throw ValueError(detail::concat("dataset_rows: block_rows ", options.block_rows, " < 1"));
  }
  if (options.target_feature >= data->sample_numel()) {
    throw ValueError(detail::concat("dataset_rows: target feature ", options.target_feature,
                                    " of a table of ", data->sample_numel(), " columns"));
  }
  return std::make_unique<DatasetRows>(std::move(data), options);
}

std::vector<double> sum_blocks(
    RowSource& rows, size_t size,
    const std::function<void(const RowBlock&, std::vector<double>&)>& add) {
  std::vector<std::vector<double>> sums(static_cast<size_t>(rows.parts()),
                                        std::vector<double>(size, 0.0));
  rows.for_each_block_in_parts(
      [&](const RowBlock& block, int part) { add(block, sums[static_cast<size_t>(part)]); });
  for (size_t p = 1; p < sums.size(); ++p) {
    for (size_t e = 0; e < size; ++e) sums[0][e] += sums[p][e];
  }
  return std::move(sums[0]);
}

}  // namespace tessera::estimators
