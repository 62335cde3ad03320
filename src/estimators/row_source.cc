#include "tessera/estimators/row_source.h"

#include <algorithm>
#include <span>
#include <utility>

#include "tessera/core/error.h"
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
  }

  [[nodiscard]] int64_t num_features() const override { return features_; }
  [[nodiscard]] int64_t num_rows() const override { return end_ - begin_; }
  [[nodiscard]] std::string origin(int64_t index) const override { return data_->origin(index); }

  void for_each_block(const std::function<void(const RowBlock&)>& visit) override {
    if (in_memory_ != nullptr) {
      view_blocks(visit);
      return;
    }
    const int64_t capacity = std::min(options_.block_rows, std::max<int64_t>(1, num_rows()));
    if (!buffer_.defined()) buffer_ = Tensor::empty({capacity, features_});
    std::vector<float> row(static_cast<size_t>(columns_));
    RowBlock block;
    for (int64_t first = begin_; first < end_; first += capacity) {
      const int64_t rows = std::min(capacity, end_ - first);
      float* x = buffer_.data<float>();
      block.y.resize(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        float* out = x + r * features_;
        if (options_.target_feature < 0) {
          block.y[static_cast<size_t>(r)] =
              static_cast<double>(data_->read_into(first + r, std::span<float>(out, features_)));
          continue;
        }
        data_->read_into(first + r, row);
        const auto t = static_cast<size_t>(options_.target_feature);
        block.y[static_cast<size_t>(r)] = row[t];
        std::copy(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(t), out);
        std::copy(row.begin() + static_cast<std::ptrdiff_t>(t) + 1, row.end(),
                  out + options_.target_feature);
      }
      block.x = rows == capacity ? buffer_ : buffer_.slice(0, 0, rows);
      block.first = first;
      visit(block);
    }
  }

 private:
  // Rows already in memory as float32 with their labels apart: blocks are views, nothing copied.
  void view_blocks(const std::function<void(const RowBlock&)>& visit) const {
    const Tensor features = in_memory_->features().reshape({in_memory_->size(), features_});
    const int64_t* labels = in_memory_->labels().data<int64_t>();
    RowBlock block;
    for (int64_t first = begin_; first < end_; first += options_.block_rows) {
      const int64_t rows = std::min(options_.block_rows, end_ - first);
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
  Tensor buffer_;
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

}  // namespace tessera::estimators
