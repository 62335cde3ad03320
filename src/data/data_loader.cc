#include "tessera/data/data_loader.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "tessera/core/error.h"

namespace tessera::data {

DataLoader::DataLoader(Dataset& dataset, DistributedSampler sampler,
                       const DataLoaderOptions& options)
    : dataset_(dataset), sampler_(std::move(sampler)), options_(options) {
  if (options_.batch_size < 1) {
    throw ValueError(
        detail::concat("DataLoader: batch_size is ", options_.batch_size, ", expected >= 1"));
  }
  if (options_.prefetch < 0) {
    throw ValueError(
        detail::concat("DataLoader: prefetch is ", options_.prefetch, ", expected >= 0"));
  }
  if (options_.timeout.count() <= 0) {
    throw ValueError(
        detail::concat("DataLoader: timeout is ", options_.timeout.count(), " ms, expected > 0"));
  }
  if (sampler_.dataset_size() != dataset_.size()) {
    throw ValueError(detail::concat("DataLoader: the sampler covers ", sampler_.dataset_size(),
                                    " samples, the dataset holds ", dataset_.size()));
  }
}

DataLoader::~DataLoader() { stop(); }

int64_t DataLoader::num_batches() const {
  const int64_t n = sampler_.num_samples();
  const int64_t b = options_.batch_size;
  return options_.drop_last_batch ? n / b : (n + b - 1) / b;
}

int64_t DataLoader::next_batch_size() const {
  const int64_t left = std::ssize(sampler_.indices()) - sampler_.position();
  if (left <= 0 || (options_.drop_last_batch && left < options_.batch_size)) return 0;
  return std::min(left, options_.batch_size);
}

void DataLoader::set_epoch(int64_t epoch) {
  stop();
  sampler_.set_epoch(epoch);
}

void DataLoader::set_state(const SamplerState& state) {
  stop();
  sampler_.set_state(state);
}

void DataLoader::start() {
  const std::span<const int64_t> all = sampler_.indices();
  std::vector<int64_t> rest(all.begin() + sampler_.position(), all.end());
  queue_.clear();
  error_ = nullptr;
  done_ = false;
  stop_ = false;
  thread_ = std::thread(&DataLoader::produce, this, std::move(rest));
}

void DataLoader::stop() noexcept {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  try {
    thread_.join();
  } catch (...) {
    // join throws only for a thread that is not joinable, checked above; nothing to undo.
  }
  queue_.clear();
  error_ = nullptr;
}

void DataLoader::produce(std::vector<int64_t> indices) {
  const auto total = static_cast<int64_t>(indices.size());
  try {
    for (int64_t begin = 0; begin < total; begin += options_.batch_size) {
      const int64_t count = std::min(options_.batch_size, total - begin);
      if (count < options_.batch_size && options_.drop_last_batch) break;
      {
        std::lock_guard lock(mutex_);
        if (stop_) return;
      }
      Batch batch = dataset_.get_batch(
          std::span<const int64_t>(indices.data() + begin, static_cast<size_t>(count)));
      std::unique_lock lock(mutex_);
      // Always woken: next() signals after each pop, stop() after setting stop_.
      space_.wait(lock, [&] { return stop_ || std::ssize(queue_) < options_.prefetch; });
      if (stop_) return;
      queue_.push_back(std::move(batch));
      lock.unlock();
      ready_.notify_one();
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  ready_.notify_one();
}

std::optional<Batch> DataLoader::next() {
  const int64_t size = next_batch_size();
  if (size == 0) {
    stop();
    return std::nullopt;
  }
  if (options_.prefetch == 0) {
    Batch batch = dataset_.get_batch(sampler_.indices().subspan(
        static_cast<size_t>(sampler_.position()), static_cast<size_t>(size)));
    (void)sampler_.next(size);
    return batch;
  }
  if (!thread_.joinable()) start();

  std::unique_lock lock(mutex_);
  if (!ready_.wait_for(lock, options_.timeout,
                       [&] { return !queue_.empty() || error_ != nullptr || done_; })) {
    throw Error(detail::concat("DataLoader::next: no batch from the background thread within ",
                               options_.timeout.count(), " ms (epoch ", sampler_.epoch(),
                               ", sample ", sampler_.position(), " of ", sampler_.indices().size(),
                               " on this rank): the dataset's read_into is stuck or far too slow"));
  }
  if (!queue_.empty()) {
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    space_.notify_one();
    (void)sampler_.next(batch.size());
    return batch;
  }
  std::exception_ptr error = error_;
  lock.unlock();
  // The thread has finished; join it so that the next call starts afresh (and retries the batch
  // that failed).
  stop();
  if (error != nullptr) std::rethrow_exception(error);
  // The producer ran out although next_batch_size() promised a batch: cannot happen while the
  // sampler and the producer agree.
  throw InternalError(detail::concat("DataLoader::next: background thread ended at sample ",
                                     sampler_.position(), " of ", sampler_.indices().size()));
}

}  // namespace tessera::data
