#include "tessera/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>

#include <nlohmann/json.hpp>

#include "resume.h"
#include "tessera/autograd/functions.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/comm/gloo/gloo_group.h"
#include "tessera/comm/hash_store.h"
#include "tessera/core/random.h"
#include "tessera/data/data_loader.h"
#include "tessera/nn/sequential.h"
#include "tessera/optim/adagrad.h"
#include "tessera/optim/adam.h"
#include "tessera/optim/adamw.h"
#include "tessera/optim/clip.h"
#include "tessera/optim/cosine_lr.h"
#include "tessera/optim/linear_warmup.h"
#include "tessera/optim/sgd.h"
#include "tessera/optim/step_lr.h"
#include "tessera/parallel/distributed_data_parallel.h"
#include "tessera/parallel/model_sync.h"
#include "tessera/parallel/sync_batch_norm.h"
#include "tessera/parallel/zero_optimizer.h"
#include "tessera/tensor/reduce.h"
#include "tessera/tensor/storage.h"
#include "tessera/tensor/threads.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/data_source.h"
#include "tessera/train/labels.h"
#include "tessera/train/loss.h"
#include "tessera/train/model_builder.h"
#include "tessera/train/progress.h"

namespace tessera::train {
namespace {

using autograd::Variable;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerConfig& o,
                                                 std::vector<Variable> params) {
  if (o.name == "sgd") {
    return std::make_unique<optim::Sgd>(std::move(params),
                                        optim::SgdOptions{.lr = o.lr,
                                                          .momentum = o.momentum,
                                                          .weight_decay = o.weight_decay,
                                                          .nesterov = o.nesterov});
  }
  if (o.name == "adam") {
    return std::make_unique<optim::Adam>(std::move(params),
                                         optim::AdamOptions{.lr = o.lr,
                                                            .beta1 = o.beta1,
                                                            .beta2 = o.beta2,
                                                            .eps = o.eps,
                                                            .weight_decay = o.weight_decay});
  }
  if (o.name == "adamw") {
    return std::make_unique<optim::AdamW>(std::move(params),
                                          optim::AdamWOptions{.lr = o.lr,
                                                              .beta1 = o.beta1,
                                                              .beta2 = o.beta2,
                                                              .eps = o.eps,
                                                              .weight_decay = o.weight_decay});
  }
  return std::make_unique<optim::Adagrad>(
      std::move(params), optim::AdagradOptions{.lr = o.lr, .weight_decay = o.weight_decay});
}

std::unique_ptr<optim::LrScheduler> make_schedule(const OptimizerConfig& o, optim::Optimizer& opt,
                                                  int64_t steps_per_epoch, int64_t total_steps) {
  std::unique_ptr<optim::LrScheduler> after;
  if (o.schedule == "step") {
    after = std::make_unique<optim::StepLr>(opt, o.step_size * steps_per_epoch, o.gamma);
  } else if (o.schedule == "cosine") {
    after = std::make_unique<optim::CosineLr>(
        opt, std::max<int64_t>(1, total_steps - o.warmup_steps), o.min_lr);
  }
  if (o.warmup_steps > 0) {
    return std::make_unique<optim::LinearWarmup>(opt, o.warmup_steps, std::move(after));
  }
  return after;
}

std::string to_bytes(const std::function<void(BinaryWriter&)>& write) {
  std::ostringstream out;
  BinaryWriter w(out);
  write(w);
  return out.str();
}

void from_bytes(const std::string& bytes, const std::string& what,
                const std::function<void(BinaryReader&)>& read) {
  std::istringstream in(bytes);
  BinaryReader r(in, what);
  read(r);
}

// Where the data stood when the checkpoint was taken. Checkpoints written before the position
// became global hold in "sampler" each rank's own count, which the world size they were written
// on turns into the global one.
data::SamplerState saved_data_position(const Checkpoint& c, int64_t dataset_size) {
  data::SamplerState at;
  const bool global = c.sections.count("data_position") > 0;
  from_bytes(c.section(global ? "data_position" : "sampler"), c.path, [&](BinaryReader& r) {
    at.epoch = r.read_i64();
    at.position = r.read_i64();
  });
  if (!global) {
    int64_t world = 0;
    try {
      world = nlohmann::json::parse(c.section("meta")).at("world_size").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("checkpoint " + c.path + ": bad meta section: " + e.what());
    }
    if (world < 1 || at.position < 0 || at.position > dataset_size) {
      throw FormatError(detail::concat("checkpoint ", c.path, ": sampler position ", at.position,
                                       " on ", world, " ranks does not fit ", dataset_size,
                                       " samples"));
    }
    at.position = std::min(dataset_size, at.position * world);
  }
  return at;
}

// Every rank's `mine`, in rank order (just `mine` without a group).
std::vector<double> from_every_rank(comm::ProcessGroup* group, const std::vector<double>& mine) {
  if (group == nullptr) return mine;
  std::vector<double> all(mine.size() * static_cast<size_t>(group->size()));
  group->allgather(mine.data(), all.data(), mine.size(), comm::DataType::kFloat64)->wait();
  return all;
}

// What a metrics or progress line reports of every rank. Every rank's batch is as large (the
// sampler pads), so the mean of their losses is the loss of the global batch.
struct RankReport {
  double mean_loss = 0.0;
  std::vector<int64_t> peak_bytes;  // peak_storage_bytes() of each rank
};

// Collective.
RankReport report_from_every_rank(comm::ProcessGroup* group, double loss) {
  const std::vector<double> all =
      from_every_rank(group, {loss, static_cast<double>(peak_storage_bytes())});
  RankReport report;
  const double ranks = static_cast<double>(all.size() / 2);
  for (size_t r = 0; r < all.size(); r += 2) {
    report.mean_loss += all[r] / ranks;
    report.peak_bytes.push_back(static_cast<int64_t>(all[r + 1]));
  }
  return report;
}

// Collective: the mean of `count` losses summing to `sum` on each rank, over all of them.
double mean_over_ranks(comm::ProcessGroup* group, double sum, int64_t count) {
  const std::vector<double> all = from_every_rank(group, {sum, static_cast<double>(count)});
  double sums = 0.0, counts = 0.0;
  for (size_t r = 0; r < all.size(); r += 2) {
    sums += all[r];
    counts += all[r + 1];
  }
  return counts > 0 ? sums / counts : 0.0;
}

// Timings and traffic of the steps since the last metrics line.
struct StepWindow {
  Clock::time_point start = Clock::now();
  int64_t samples = 0;
  double forward = 0, backward = 0, comm_wait = 0, optimizer = 0, bytes = 0, hidden = 0;
  int steps = 0;
};

// The metrics line of the steps in `window`, with what only the Trainer knows left to add.
nlohmann::json step_metrics(const StepWindow& window, int64_t step, int64_t epoch,
                            const RankReport& report, double samples_per_s) {
  const double steps = std::max(1, window.steps);
  return {{"step", step},
          {"epoch", epoch + 1},
          {"loss", report.mean_loss},
          {"peak_tensor_bytes", report.peak_bytes},
          {"samples_per_s", samples_per_s},
          {"forward_ms", 1e3 * window.forward / steps},
          {"backward_ms", 1e3 * window.backward / steps},
          {"comm_wait_ms", 1e3 * window.comm_wait / steps},
          {"optimizer_ms", 1e3 * window.optimizer / steps}};
}

nlohmann::json epoch_metrics(int64_t step, int64_t epoch, const TrainResult& result,
                             double wall_time) {
  nlohmann::json line{{"step", step},
                      {"epoch", epoch + 1},
                      {"train_loss", result.train_loss},
                      {"wall_time", wall_time}};
  if (result.test.count > 0) {
    line["test_loss"] = result.test.loss;
    line["test_accuracy"] = result.test.accuracy;
  }
  return line;
}

std::string epoch_summary(int64_t epoch, const TrainResult& result) {
  if (result.test.count == 0) return "";
  char text[160];
  std::snprintf(text, sizeof(text),
                "epoch %lld: train loss %.4f, test loss %.4f, test accuracy %.2f%%",
                static_cast<long long>(epoch + 1), result.train_loss, result.test.loss,
                100.0 * result.test.accuracy);
  return text;
}

// Loss and prediction counts over the samples a sampler deals to this rank.
struct EvalSums {
  double loss = 0.0;  // summed over the samples
  int64_t correct = 0;
  int64_t count = 0;
  std::vector<int64_t> confusion;  // [true * classes + predicted]
};

EvalSums eval_sums(nn::Module& model, data::Dataset& dataset, data::DistributedSampler sampler,
                   int64_t batch_size, int64_t classes) {
  EvalSums sums;
  sums.confusion.assign(static_cast<size_t>(classes * classes), 0);
  bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  data::DataLoader loader(dataset, std::move(sampler), {.batch_size = batch_size});
  while (auto batch = loader.next()) {
    Variable logits = model(Variable(batch->x));
    Variable loss = autograd::cross_entropy(logits, batch->y);
    int64_t n = batch->size();
    sums.loss += loss.data().item() * static_cast<double>(n);
    Tensor predicted = argmax(logits.data(), 1);
    const int64_t* p = predicted.data<int64_t>();
    const int64_t* y = batch->y.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      sums.correct += p[i] == y[i];
      ++sums.confusion[static_cast<size_t>(y[i] * classes + p[i])];
    }
    sums.count += n;
  }
  model.train(was_training);
  return sums;
}

EvalResult eval_result(EvalSums sums, int64_t classes) {
  EvalResult result;
  result.classes = classes;
  result.count = sums.count;
  result.confusion = std::move(sums.confusion);
  if (sums.count > 0) {
    result.loss = sums.loss / static_cast<double>(sums.count);
    result.accuracy = static_cast<double>(sums.correct) / static_cast<double>(sums.count);
  }
  return result;
}

}  // namespace

EvalResult evaluate(nn::Module& model, data::Dataset& dataset, int64_t batch_size,
                    int64_t classes) {
  return eval_result(
      eval_sums(model, dataset, data::DistributedSampler(dataset.size(), 0, 1, {.shuffle = false}),
                batch_size, classes),
      classes);
}

EvalResult evaluate_sharded(nn::Module& model, data::Dataset& dataset, int64_t batch_size,
                            int64_t classes, comm::ProcessGroup& group) {
  // Unpadded: each sample is evaluated by exactly one rank.
  EvalSums sums = eval_sums(model, dataset,
                            data::DistributedSampler(dataset.size(), group.rank(), group.size(),
                                                     {.shuffle = false, .pad = false}),
                            batch_size, classes);
  group.allreduce(&sums.loss, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
  std::vector<int64_t> counts{sums.correct, sums.count};
  counts.insert(counts.end(), sums.confusion.begin(), sums.confusion.end());
  group.allreduce(std::span<int64_t>(counts), comm::ReduceOp::kSum)->wait();
  sums.correct = counts[0];
  sums.count = counts[1];
  std::copy(counts.begin() + 2, counts.end(), sums.confusion.begin());
  return eval_result(std::move(sums), classes);
}

struct Trainer::State {
  explicit State(uint64_t seed) : dropout_rng(seed) {}
  Generator dropout_rng;
  int rank = 0;
  int world_size = 1;
  int64_t local_batch = 0;
  std::unique_ptr<comm::ProcessGroup> own_group;  // one rank, when a strategy runs alone
  comm::ProcessGroup* group = nullptr;
  std::unique_ptr<parallel::DistributedDataParallel> ddp;
  std::unique_ptr<parallel::ZeroOptimizer> zero;
  std::unique_ptr<data::Dataset> train_data;
  std::unique_ptr<data::Dataset> test_data;
  std::shared_ptr<nn::Sequential> model;
  int64_t classes = 0;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LrScheduler> schedule;
  std::unique_ptr<data::DataLoader> loader;
  std::unique_ptr<CheckpointDir> checkpoints;
  int64_t step = 0;
};

Trainer::Trainer(Config config, TrainerOptions options)
    : config_(std::move(config)),
      options_(options),
      state_(std::make_unique<State>(config_.train.seed)) {
  if (config_.train.threads > 0) set_num_threads(static_cast<int>(config_.train.threads));
  State& s = *state_;
  if (options_.group) {
    s.rank = options_.group->rank();
    s.world_size = options_.group->size();
  }
  if (config_.parallel.strategy == "auto") {
    config_.parallel.strategy = s.world_size > 1 ? "ddp" : "none";
  }
  if (s.world_size > 1 && config_.parallel.strategy == "none") {
    throw ConfigError(config_.source, 0, "parallel.strategy",
                      detail::concat("is \"none\" but ", s.world_size,
                                     " processes are training: set it to \"ddp\""));
  }
  // data.batch_size is the global batch: N processes take 1/N of it each, so a run gives the same
  // result whatever the number of processes.
  if (config_.data.batch_size % s.world_size != 0) {
    throw ConfigError(
        config_.source, 0, "data.batch_size",
        detail::concat(config_.data.batch_size, " is the global batch and must divide by the ",
                       s.world_size, " processes"));
  }
  s.local_batch = config_.data.batch_size / s.world_size;
  s.train_data = open_dataset(config_.data.train, config_, "data.train");
  const DataLayout layout{s.train_data->sample_shape(), s.train_data->class_labels()};
  if (!config_.data.test.empty())
    s.test_data = open_dataset(config_.data.test, config_, "data.test", &layout);
  Generator init(config_.train.seed);
  Shape out_shape;
  // Every rank draws the global batch's dropout masks and keeps its rows: DDP then trains exactly
  // as one process would on the global batch.
  s.model = build_model(config_, s.train_data->sample_shape(), init, s.dropout_rng, &out_shape,
                        {.index = s.rank, .count = s.world_size});
  if (out_shape.size() != 1) {
    throw ConfigError(config_.source, config_.model.line, "model.layers",
                      "the last layer must give one score per class, but gives " +
                          shape_str(out_shape) + " per sample");
  }
  s.classes = out_shape[0];
  check_labels(*s.train_data, s.classes, "data.train");
  if (s.test_data) check_labels(*s.test_data, s.classes, "data.test");
  if (const std::string map = describe_label_map(layout.class_labels);
      !map.empty() && s.rank == 0 && options_.progress) {
    std::fprintf(options_.progress, "data.train: file labels are classes: %s\n", map.c_str());
  }
  const ParallelConfig& par = config_.parallel;
  s.group = options_.group;
  if (par.strategy != "none" && s.group == nullptr) {
    // A strategy on one process runs over a group of one, so its checkpoints are the same.
    s.own_group = comm::make_gloo_group(std::make_shared<comm::HashStore>(), 0, 1);
    s.group = s.own_group.get();
  }
  if (par.sync_batchnorm && s.group) parallel::convert_sync_batchnorm(*s.model, *s.group);
  if (par.strategy == "ddp") {
    parallel::GradCompression compression =
        par.compression == "bf16"   ? parallel::GradCompression::kBFloat16
        : par.compression == "fp16" ? parallel::GradCompression::kFloat16
                                    : parallel::GradCompression::kNone;
    s.ddp = std::make_unique<parallel::DistributedDataParallel>(
        *s.model, *s.group,
        parallel::DdpOptions{.bucket_bytes = static_cast<size_t>(par.bucket_mb * (1 << 20)),
                             .find_unused_parameters = par.find_unused_parameters,
                             .compression = compression});
  }
  if (par.strategy == "zero") {
    const OptimizerConfig& o = config_.optimizer;
    s.zero = std::make_unique<parallel::ZeroOptimizer>(
        *s.model, *s.group,
        [&o](std::vector<Variable> params) { return make_optimizer(o, std::move(params)); },
        parallel::ZeroOptions{.stage = static_cast<int>(par.zero_stage),
                              .max_grad_norm = o.clip_grad_norm,
                              .bucket_bytes = static_cast<size_t>(par.bucket_mb * (1 << 20))});
  } else {
    s.optimizer = make_optimizer(config_.optimizer, s.model->parameters());
  }
  s.loader = std::make_unique<data::DataLoader>(
      *s.train_data,
      data::DistributedSampler(s.train_data->size(), s.rank, s.world_size,
                               {.seed = config_.train.seed,
                                .shuffle = config_.data.shuffle,
                                .drop_last = config_.data.drop_last}),
      data::DataLoaderOptions{.batch_size = s.local_batch,
                              .drop_last_batch = config_.data.drop_last,
                              .prefetch = static_cast<int>(config_.data.prefetch)});
  int64_t per_epoch = s.loader->num_batches();
  int64_t total = per_epoch * config_.train.epochs;
  if (config_.train.max_steps > 0) total = std::min(total, config_.train.max_steps);
  s.schedule = make_schedule(config_.optimizer, optimizer(), per_epoch, total);
  s.checkpoints = std::make_unique<CheckpointDir>(
      (std::filesystem::path(config_.train.run_dir) / "checkpoints").string(),
      config_.train.keep_checkpoints);
}

Trainer::~Trainer() = default;

int64_t Trainer::optimizer_state_bytes() {
  optim::Optimizer& opt = optimizer();
  int64_t bytes = 0;
  for (size_t i = 0; i < opt.params().size(); ++i) {
    for (const auto& b : opt.state(i).buffers) bytes += static_cast<int64_t>(b.nbytes());
  }
  return bytes;
}

optim::Optimizer& Trainer::optimizer() {
  return state_->zero ? state_->zero->inner() : *state_->optimizer;
}

nn::Module& Trainer::model() { return *state_->model; }

data::SamplerState Trainer::resume() {
  State& s = *state_;
  std::FILE* out = s.rank == 0 ? options_.progress : nullptr;
  std::vector<std::string> skipped;
  std::optional<Checkpoint> ckpt = checkpoint_of_rank_zero(*s.checkpoints, s.group, &skipped);
  for (const auto& why : skipped) {
    if (out) std::fprintf(out, "resume: skipped %s\n", why.c_str());
  }
  if (!ckpt) {
    if (out) {
      std::fprintf(out, "resume: no valid checkpoint in %s, starting afresh\n",
                   s.checkpoints->dir().c_str());
    }
    return {0, 0};
  }
  data::SamplerState start;
  load_on_every_rank(s.group, ckpt->path, [&] { start = load_checkpoint(*ckpt); });
  if (out) {
    std::fprintf(out, "resumed from %s (step %lld, epoch %lld)\n", ckpt->path.c_str(),
                 static_cast<long long>(s.step), static_cast<long long>(start.epoch + 1));
  }
  return start;
}

data::SamplerState Trainer::load_checkpoint(const Checkpoint& ckpt) {
  State& s = *state_;
  from_bytes(ckpt.section("model"), ckpt.path, [&](BinaryReader& r) { s.model->load_state(r); });
  if (s.zero) {
    nlohmann::json manifest = nlohmann::json::parse(ckpt.section("zero_manifest"));
    std::vector<std::string> shards;
    for (int r = 0; r < manifest.at("world_size").get<int>(); ++r) {
      shards.push_back(ckpt.section("zero_shard_" + std::to_string(r)));
    }
    s.zero->load_shards(shards);
  } else {
    if (!ckpt.sections.count("optimizer")) {
      throw FormatError("checkpoint " + ckpt.path +
                        " holds ZeRO-sharded optimizer state: resume it with "
                        "[parallel] strategy = \"zero\" (any number of processes)");
    }
    from_bytes(ckpt.section("optimizer"), ckpt.path,
               [&](BinaryReader& r) { s.optimizer->load_state(r); });
  }
  if (s.schedule) {
    from_bytes(ckpt.section("schedule"), ckpt.path,
               [&](BinaryReader& r) { s.schedule->load_state(r); });
  }
  const data::SamplerState at = saved_data_position(ckpt, s.train_data->size());
  s.dropout_rng.set_state(ckpt.section("rng"));
  s.step = ckpt.step;
  return at;
}

std::string Trainer::save_checkpoint(data::SamplerState at) {
  State& s = *state_;
  // ZeRO's state is spread over the ranks: gather it (a collective) before rank 0 writes.
  std::vector<std::string> shards;
  if (s.zero) shards = parallel::allgather_bytes(*s.group, s.zero->save_shard());
  if (s.rank != 0) return "";
  Checkpoint c;
  c.step = s.step;
  c.sections["model"] = to_bytes([&](BinaryWriter& w) { s.model->save_state(w); });
  if (s.zero) {
    c.sections["zero_manifest"] = nlohmann::json{
        {"world_size", shards.size()},
        {"stage", config_.parallel.zero_stage},
        {"parameters",
         s.zero->total_size()}}.dump();
    for (size_t r = 0; r < shards.size(); ++r) {
      c.sections["zero_shard_" + std::to_string(r)] = std::move(shards[r]);
    }
  } else {
    c.sections["optimizer"] = to_bytes([&](BinaryWriter& w) { s.optimizer->save_state(w); });
  }
  if (s.schedule)
    c.sections["schedule"] = to_bytes([&](BinaryWriter& w) { s.schedule->save_state(w); });
  c.sections["data_position"] = to_bytes([&](BinaryWriter& w) {
    w.write_i64(at.epoch);
    w.write_i64(at.position);
  });
  c.sections["rng"] = s.dropout_rng.state();
  c.sections["config"] = to_toml(config_);
  nlohmann::json meta{{"step", s.step},
                      {"epoch", at.epoch},
                      {"sample_shape", s.train_data->sample_shape()},
                      {"classes", s.classes},
                      {"class_labels", s.train_data->class_labels()},
                      {"world_size", s.world_size}};
  c.sections["meta"] = meta.dump();
  return s.checkpoints->save(c);
}

TrainResult Trainer::run() {
  State& s = *state_;
  const bool lead = s.rank == 0;
  std::filesystem::create_directories(config_.train.run_dir);
  std::ofstream metrics;
  if (lead) {
    metrics.open(std::filesystem::path(config_.train.run_dir) / "metrics.jsonl", std::ios::app);
    if (!metrics) throw Error("cannot write " + config_.train.run_dir + "/metrics.jsonl");
  }
  auto log = [&](const nlohmann::json& line) {
    if (lead) metrics << line.dump() << "\n" << std::flush;
  };
  reset_peak_storage_bytes();
  const data::SamplerState start = options_.resume ? resume() : data::SamplerState{0, 0};

  TrainResult result;
  Progress progress(lead ? options_.progress : nullptr, config_.train.log_every);
  const auto run_start = Clock::now();
  int64_t trained_samples = 0;
  double train_seconds = 0.0;
  const int64_t max_steps = config_.train.max_steps;
  const int64_t log_every = config_.train.log_every;
  bool stop = false;
  s.model->train();
  for (int64_t epoch = start.epoch; epoch < config_.train.epochs && !stop; ++epoch) {
    if (epoch == start.epoch && start.position > 0) {
      s.loader->set_state(start);
    } else {
      s.loader->set_epoch(epoch);
    }
    const int64_t per_epoch = s.loader->num_batches();
    progress.start_epoch(epoch, config_.train.epochs, per_epoch);
    int64_t done = s.loader->state().position / config_.data.batch_size;
    double loss_sum = 0.0;
    int64_t loss_count = 0;
    double shown_loss = 0.0;
    StepWindow window;
    while (true) {
      if (max_steps > 0 && s.step >= max_steps) {
        stop = true;
        break;
      }
      auto batch_start = Clock::now();
      std::optional<data::Batch> batch = s.loader->next();
      if (!batch) break;
      if (options_.on_batch) options_.on_batch(*batch);
      auto t0 = Clock::now();
      if (s.zero) {
        s.zero->zero_grad();
      } else {
        s.optimizer->zero_grad();
      }
      Variable logits = (*s.model)(Variable(batch->x));
      Variable loss = training_loss(config_.train, logits, batch->y);
      auto t1 = Clock::now();
      loss.backward();
      auto t2 = Clock::now();
      if (s.ddp) {
        s.ddp->synchronize();
        window.bytes += static_cast<double>(s.ddp->stats().bytes_sent);
        window.hidden += s.ddp->stats().hidden_fraction;
      }
      auto t3 = Clock::now();
      if (s.zero) {
        s.zero->step();  // averages, clips and allgathers itself
      } else {
        if (config_.optimizer.clip_grad_norm > 0) {
          optim::clip_grad_norm(s.model->parameters(), config_.optimizer.clip_grad_norm);
        }
        s.optimizer->step();
      }
      if (s.schedule) s.schedule->step();
      auto t4 = Clock::now();
      window.forward += std::chrono::duration<double>(t1 - t0).count();
      window.backward += std::chrono::duration<double>(t2 - t1).count();
      window.comm_wait += std::chrono::duration<double>(t3 - t2).count();
      window.optimizer += std::chrono::duration<double>(t4 - t3).count();
      ++window.steps;
      ++s.step;
      ++done;
      double l = loss.data().item();
      loss_sum += l;
      ++loss_count;
      trained_samples += batch->size();
      window.samples += batch->size();
      train_seconds += seconds_since(batch_start);
      double rate = s.world_size * window.samples / std::max(1e-9, seconds_since(window.start));
      const bool log_now = s.step % log_every == 0;
      // Lines show the mean over the ranks (what one process on the global batch reports): one
      // small collective where a metrics or progress line is due, the same steps on every rank.
      if (log_now || done % log_every == 0 || done == per_epoch) {
        const RankReport report = report_from_every_rank(s.group, l);
        shown_loss = report.mean_loss;
        if (log_now) {
          nlohmann::json line = step_metrics(window, s.step, epoch, report, rate);
          line["lr"] = optimizer().lr();
          line["wall_time"] = seconds_since(run_start);
          line["optimizer_state_bytes"] = optimizer_state_bytes();
          if (s.ddp) {
            line["bytes_communicated_per_step"] = window.bytes / window.steps;
            line["comm_hidden_fraction"] = window.hidden / window.steps;
          }
          log(line);
          window = {};
        }
      }
      progress.update(done, shown_loss, rate);
      if (config_.train.checkpoint_every > 0 && s.step % config_.train.checkpoint_every == 0) {
        save_checkpoint(s.loader->state());
      }
    }
    result.train_loss = mean_over_ranks(s.group, loss_sum, loss_count);
    if (s.test_data) {
      const int64_t batch = std::max<int64_t>(config_.data.batch_size, 256);
      result.test = s.group ? evaluate_sharded(*s.model, *s.test_data, batch, s.classes, *s.group)
                            : evaluate(*s.model, *s.test_data, batch, s.classes);
    }
    log(epoch_metrics(s.step, epoch, result, seconds_since(run_start)));
    progress.end_epoch(epoch_summary(epoch, result));
    result.epochs = epoch + 1;
    // At an epoch's end the next position is the following epoch's start.
    data::SamplerState next = stop ? s.loader->state() : data::SamplerState{epoch + 1, 0};
    std::string path = save_checkpoint(next);
    if (!path.empty()) result.last_checkpoint = path;
  }
  result.steps = s.step;
  result.wall_seconds = seconds_since(run_start);
  result.world_size = s.world_size;
  result.samples_per_s = train_seconds > 0 ? s.world_size * trained_samples / train_seconds : 0.0;
  return result;
}

}  // namespace tessera::train
