#include "tessera/train/sparse_trainer.h"

#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "auc.h"
#include "ps_setup.h"
#include "sparse_model.h"
#include "tessera/core/error.h"
#include "tessera/data/libsvm_stream.h"
#include "tessera/parallel/ps/worker.h"
#include "tessera/train/progress.h"

namespace tessera::train {
namespace {

using Clock = std::chrono::steady_clock;

// The path of a "libsvm:PATH" data set; ConfigError for any other kind.
std::string libsvm_path(const Config& config, const std::string& spec, const char* key) {
  if (!spec.starts_with("libsvm:") || spec.size() == 7) {
    throw ConfigError(config.source, 0, key,
                      "\"" + spec + "\": a sparse model reads \"libsvm:PATH\" (ids up to 2^63-1)");
  }
  return spec.substr(7);
}

void check_config(const Config& config, int workers) {
  const OptimizerConfig& o = config.optimizer;
  if (o.schedule != "constant" || o.warmup_steps != 0) {
    throw ConfigError(config.source, 0, "optimizer.schedule",
                      "a sparse model's learning rate is constant (schedule = \"constant\", no "
                      "warmup_steps)");
  }
  if (config.data.batch_size % workers != 0) {
    throw ConfigError(config.source, 0, "data.batch_size",
                      detail::concat(config.data.batch_size, " does not split over ", workers,
                                     " workers: make it a multiple of ", workers));
  }
}

// The records of one worker's share of a batch, each as its keys (bias first) and feature values.
struct Batch {
  std::vector<uint64_t> keys;
  std::vector<float> values;
  std::vector<float> labels;
  std::vector<size_t> starts{0};  // record r's keys are [starts[r], starts[r + 1])

  void clear() {
    keys.clear();
    values.clear();
    labels.clear();
    starts.assign(1, 0);
  }
  [[nodiscard]] size_t size() const { return labels.size(); }
};

float binary_label(const data::LibsvmStream& stream) {
  const int64_t label = stream.label();
  if (label == 1) return 1.0f;
  if (label == 0 || label == -1) return 0.0f;
  throw FormatError(detail::concat(stream.path(), ":", stream.line(), ": label ", label,
                                   ": a binary model reads 0/1 or -1/+1"));
}

void add_record(const data::LibsvmStream& stream, const SparseModel& model, Batch& batch) {
  batch.keys.push_back(model.bias_key());
  for (const int64_t feature : stream.indices()) batch.keys.push_back(model.key_of(feature));
  const auto values = stream.values();
  batch.values.insert(batch.values.end(), values.begin(), values.end());
  batch.labels.push_back(binary_label(stream));
  batch.starts.push_back(batch.keys.size());
}

// Reads the next global batch of `size` records, keeping those in [first, last) of it. Returns
// how many records the global batch had (0: the file is done).
int64_t read_batch(data::LibsvmStream& stream, const SparseModel& model, int64_t size,
                   int64_t first, int64_t last, Batch& batch) {
  batch.clear();
  for (int64_t i = 0; i < size; ++i) {
    const bool mine = i >= first && i < last;
    if (!(mine ? stream.next() : stream.skip())) return i;
    if (mine) add_record(stream, model, batch);
  }
  return size;
}

// The rows of record r within rows pulled for the whole batch.
std::span<const float> record_rows(const Batch& batch, const std::vector<float>& rows, size_t r,
                                   int64_t dim) {
  return std::span(rows).subspan(batch.starts[r] * dim,
                                 (batch.starts[r + 1] - batch.starts[r]) * dim);
}

std::span<const float> record_values(const Batch& batch, size_t r) {
  // values hold one entry per feature key, i.e. per key but the bias.
  return std::span(batch.values)
      .subspan(batch.starts[r] - r, batch.starts[r + 1] - batch.starts[r] - 1);
}

struct Evaluation {
  int64_t count = 0;
  double auc = 0.0;
  double logloss = 0.0;
};

class SparseWorker {
 public:
  SparseWorker(const Config& config, comm::ProcessGroup& world, const SparseTrainOptions& options)
      : config_(config),
        model_(config.model),
        index_(world.rank()),
        workers_(ps_workers(config, world.size())),
        progress_(index_ == 0 ? options.progress : nullptr, config.train.log_every) {
    check_config(config, workers_);
    train_ =
        std::make_unique<data::LibsvmStream>(libsvm_path(config, config.data.train, "data.train"));
    if (index_ == 0 && !config.data.test.empty()) {
      test_ =
          std::make_unique<data::LibsvmStream>(libsvm_path(config, config.data.test, "data.test"));
    }
    const std::string token = agree_token(world, options.job_token);
    ps_ = std::make_unique<parallel::ps::Worker>(
        worker_options(config, index_, exchange_addresses(world, ""), token),
        std::vector{feature_table(config, model_.dim())});
  }

  SparseResult run();

 private:
  // One step on this worker's share of the batch; returns the sum of its records' losses.
  double step(const Batch& batch);
  [[nodiscard]] Evaluation evaluate();
  void write_metrics(int64_t epoch, double train_loss, const Evaluation& test, double wall);

  Config config_;
  SparseModel model_;
  int index_;
  int workers_;
  Progress progress_;
  std::unique_ptr<data::LibsvmStream> train_;
  std::unique_ptr<data::LibsvmStream> test_;
  std::unique_ptr<parallel::ps::Worker> ps_;
  std::ofstream metrics_;
  std::vector<float> rows_;
  std::vector<float> grads_;
  int64_t clock_ = 0;
};

double SparseWorker::step(const Batch& batch) {
  const int64_t dim = model_.dim();
  rows_.resize(batch.keys.size() * dim);
  ps_->pull_sparse(kModelTable, clock_, batch.keys, rows_);
  grads_.assign(rows_.size(), 0.0f);
  // The gradient of the mean over the global batch: the servers weigh each worker's push 1/W.
  const float scale = static_cast<float>(workers_) / static_cast<float>(config_.data.batch_size);
  double loss = 0.0;
  for (size_t r = 0; r < batch.size(); ++r) {
    const size_t at = batch.starts[r] * dim;
    loss += model_.backward(
        record_rows(batch, rows_, r, dim), record_values(batch, r), batch.labels[r], scale,
        std::span(grads_).subspan(at, (batch.starts[r + 1] - batch.starts[r]) * dim));
  }
  ps_->push_sparse(kModelTable, clock_, batch.keys, grads_,
                   static_cast<float>(config_.optimizer.lr));
  ++clock_;
  return loss;
}

Evaluation SparseWorker::evaluate() {
  Evaluation e;
  if (!test_) return e;
  test_->rewind();
  const int64_t dim = model_.dim();
  std::vector<float> scores;
  std::vector<float> labels;
  Batch batch;
  const int64_t size = config_.data.batch_size;
  while (read_batch(*test_, model_, size, 0, size, batch) > 0) {
    rows_.resize(batch.keys.size() * dim);
    ps_->pull_sparse(kModelTable, clock_, batch.keys, rows_);
    for (size_t r = 0; r < batch.size(); ++r) {
      const double z = model_.logit(record_rows(batch, rows_, r, dim), record_values(batch, r));
      scores.push_back(static_cast<float>(z));
      labels.push_back(batch.labels[r]);
      e.logloss += log_loss(z, batch.labels[r]);
    }
  }
  e.count = static_cast<int64_t>(labels.size());
  if (e.count > 0) {
    e.logloss /= static_cast<double>(e.count);
    e.auc = roc_auc(scores, labels);
  }
  return e;
}

void SparseWorker::write_metrics(int64_t epoch, double train_loss, const Evaluation& test,
                                 double wall) {
  if (index_ != 0) return;
  if (!metrics_.is_open()) {
    std::filesystem::create_directories(config_.train.run_dir);
    const auto path = std::filesystem::path(config_.train.run_dir) / "metrics.jsonl";
    metrics_.open(path, std::ios::trunc);
    if (!metrics_) throw Error("cannot write " + path.string());
  }
  nlohmann::json line{{"epoch", epoch},
                      {"step", clock_},
                      {"wall_s", wall},
                      {"train_loss", train_loss},
                      {"model", config_.model.type},
                      {"ps_consistency", config_.parallel.consistency}};
  if (test.count > 0) {
    line["test_auc"] = test.auc;
    line["test_logloss"] = test.logloss;
    line["test_count"] = test.count;
  }
  metrics_ << line.dump() << "\n" << std::flush;
}

SparseResult SparseWorker::run() {
  const int64_t size = config_.data.batch_size;
  const int64_t share = size / workers_;
  const auto start = Clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  SparseResult result;
  int64_t records = 0;
  int64_t steps_per_epoch = 0;
  Batch batch;
  for (int64_t epoch = 0; epoch < config_.train.epochs; ++epoch) {
    train_->rewind();
    progress_.start_epoch(epoch, config_.train.epochs, steps_per_epoch);
    double loss = 0.0;
    int64_t seen = 0;
    int64_t steps = 0;
    while (read_batch(*train_, model_, size, index_ * share, (index_ + 1) * share, batch) > 0) {
      loss += step(batch);
      seen += static_cast<int64_t>(batch.size());
      ++steps;
      progress_.update(steps, seen ? loss / static_cast<double>(seen) : 0.0,
                       static_cast<double>(records + seen) / seconds());
      if (config_.train.max_steps > 0 && clock_ >= config_.train.max_steps) break;
    }
    records += seen;
    steps_per_epoch = steps;
    result.train_loss = seen ? loss / static_cast<double>(seen) : 0.0;
    const Evaluation test = evaluate();
    write_metrics(epoch + 1, result.train_loss, test, seconds());
    result.test_count = test.count;
    result.test_auc = test.auc;
    result.test_logloss = test.logloss;
    progress_.end_epoch(test.count > 0 ? detail::concat("test AUC ", test.auc, ", log loss ",
                                                        test.logloss, " (", test.count, " records)")
                                       : std::string());
    if (config_.train.max_steps > 0 && clock_ >= config_.train.max_steps) break;
  }
  ps_->finish();
  result.steps = clock_;
  result.wall_seconds = seconds();
  result.samples_per_s = static_cast<double>(records) / result.wall_seconds;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  result.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return result;
}

}  // namespace

SparseResult train_sparse(const Config& config, const SparseTrainOptions& options) {
  if (options.group == nullptr) {
    throw ConfigError(config.source, 0, "parallel.strategy",
                      "a sparse model trains on parameter servers: start the job with --nproc "
                      "(servers + workers), mpirun or srun");
  }
  return SparseWorker(config, *options.group, options).run();
}

}  // namespace tessera::train
