#include "tessera/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>

#include <nlohmann/json.hpp>

#include "checkpoint_writer.h"
#include "layer_costs.h"
#include "memory_pieces.h"
#include "optimizer_factory.h"
#include "resume.h"
#include "section_bytes.h"
#include "strategy.h"
#include "tessera/autograd/functions.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/core/random.h"
#include "tessera/data/data_loader.h"
#include "tessera/nn/sequential.h"
#include "tessera/parallel/model_sync.h"
#include "tessera/parallel/sync_batch_norm.h"
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
  std::vector<int64_t> peak_bytes;       // peak_storage_bytes() of each rank
  std::vector<int64_t> parameter_bytes;  // the parameters each rank holds
};

// Collective.
RankReport report_from_every_rank(comm::ProcessGroup* group, double loss, int64_t parameter_bytes) {
  const std::vector<double> all = from_every_rank(
      group,
      {loss, static_cast<double>(peak_storage_bytes()), static_cast<double>(parameter_bytes)});
  RankReport report;
  const double ranks = static_cast<double>(all.size() / 3);
  for (size_t r = 0; r < all.size(); r += 3) {
    report.mean_loss += all[r] / ranks;
    report.peak_bytes.push_back(static_cast<int64_t>(all[r + 1]));
    report.parameter_bytes.push_back(static_cast<int64_t>(all[r + 2]));
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

// The metrics line of the steps in `window`, with what only the Trainer knows left to add.
nlohmann::json step_metrics(const StepWindow& window, int64_t step, int64_t epoch,
                            const RankReport& report, double samples_per_s) {
  const double steps = std::max(1, window.steps);
  return {{"step", step},
          {"epoch", epoch + 1},
          {"loss", report.mean_loss},
          {"peak_tensor_bytes", report.peak_bytes},
          {"parameter_bytes", report.parameter_bytes},
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

// A sample as the model reads it: a text window less its last token (the last target).
Shape model_input_shape(const data::Dataset& dataset, bool next_token) {
  Shape shape = dataset.sample_shape();
  if (next_token) shape[0] -= 1;
  return shape;
}

// The classes the model's output scores: one row of scores per sample (or per position of a text
// window, next_token), which must cover every class (token) of the data.
int64_t output_classes(const Config& config, const Shape& out, const data::Dataset& train,
                       bool next_token) {
  if (out.size() != (next_token ? 2u : 1u)) {
    throw ConfigError(config.source, config.model.line, "model.layers",
                      detail::concat("the last layer must give one score per class",
                                     next_token ? " at each position ([tokens, vocab])" : "",
                                     ", but gives ", shape_str(out), " per sample"));
  }
  const int64_t classes = out.back();
  const auto tokens = static_cast<int64_t>(train.class_labels().size());
  if (next_token && tokens > classes) {
    throw ConfigError(config.source, config.model.line, "model.layers",
                      detail::concat("the last layer gives ", classes, " scores per position, but ",
                                     config.data.train, " has ", tokens, " distinct bytes"));
  }
  return classes;
}

// Loss and prediction counts over the samples a sampler deals to this rank.
struct EvalSums {
  double loss = 0.0;  // summed over the samples
  int64_t correct = 0;
  int64_t count = 0;
  std::vector<int64_t> confusion;  // [true * classes + predicted]
};

// The model's output for a batch of inputs: the model itself, or a strategy's predict().
using Forward = std::function<Tensor(const Tensor& input)>;

EvalSums eval_sums(nn::Module& model, const Forward& forward, data::Dataset& dataset,
                   data::DistributedSampler sampler, int64_t batch_size, int64_t classes,
                   bool next_token) {
  EvalSums sums;
  sums.confusion.assign(static_cast<size_t>(classes * classes), 0);
  bool was_training = model.is_training();
  model.eval();
  autograd::NoGradGuard no_grad;
  data::DataLoader loader(dataset, std::move(sampler), {.batch_size = batch_size});
  while (auto batch = loader.next()) {
    const ModelIO io = model_io(*batch, next_token);
    Variable logits = score_rows(Variable(forward(io.input)));
    Variable loss = autograd::cross_entropy(logits, io.targets);
    int64_t n = io.targets.size(0);
    sums.loss += loss.data().item() * static_cast<double>(n);
    Tensor predicted = argmax(logits.data(), 1);
    const int64_t* p = predicted.data<int64_t>();
    const int64_t* y = io.targets.data<int64_t>();
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

// One optimizer step on `batch`, its phases timed into `window`; the batch's loss.
double train_step(Strategy& strategy, nn::Module& model, optim::LrScheduler* schedule,
                  const TrainConfig& train, const data::Batch& batch, StepWindow& window) {
  strategy.zero_grad();
  const ModelIO io = model_io(batch, train.loss == "next_token");
  const double loss = strategy.forward_backward(
      model, io,
      [&train](const Variable& output, const Tensor& targets) {
        return training_loss(train, score_rows(output), targets);
      },
      window);
  const auto t2 = Clock::now();
  strategy.finish_backward(window);
  const auto t3 = Clock::now();
  strategy.step();
  if (schedule) schedule->step();
  const auto t4 = Clock::now();
  window.comm_wait += std::chrono::duration<double>(t3 - t2).count();
  window.optimizer += std::chrono::duration<double>(t4 - t3).count();
  ++window.steps;
  window.samples += batch.size();
  return loss;
}

}  // namespace

namespace {

// The samples of data shard `shard` of `shards` (each sample in exactly one shard), evaluated here
// and, with a group, summed over its processes: every process returns the whole result. Processes
// of one shard (a pipeline's stages) evaluate the same samples, counted once.
EvalResult evaluate_shard(nn::Module& model, const Forward& forward, data::Dataset& dataset,
                          int64_t batch_size, int64_t classes, comm::ProcessGroup* group, int shard,
                          int shards, bool next_token) {
  EvalSums sums = eval_sums(
      model, forward, dataset,
      data::DistributedSampler(dataset.size(), shard, shards, {.shuffle = false, .pad = false}),
      batch_size, classes, next_token);
  if (group == nullptr) return eval_result(std::move(sums), classes);
  const int64_t replicas = group->size() / shards;
  group->allreduce(&sums.loss, 1, comm::DataType::kFloat64, comm::ReduceOp::kSum)->wait();
  sums.loss /= static_cast<double>(replicas);
  std::vector<int64_t> counts{sums.correct, sums.count};
  counts.insert(counts.end(), sums.confusion.begin(), sums.confusion.end());
  group->allreduce(std::span<int64_t>(counts), comm::ReduceOp::kSum)->wait();
  for (int64_t& c : counts) c /= replicas;
  sums.correct = counts[0];
  sums.count = counts[1];
  std::copy(counts.begin() + 2, counts.end(), sums.confusion.begin());
  return eval_result(std::move(sums), classes);
}

Forward forward_of(nn::Module& model) {
  return [&model](const Tensor& input) { return model(Variable(input)).data(); };
}

}  // namespace

EvalResult evaluate(nn::Module& model, data::Dataset& dataset, int64_t batch_size, int64_t classes,
                    bool next_token) {
  return evaluate_shard(model, forward_of(model), dataset, batch_size, classes, nullptr, 0, 1,
                        next_token);
}

EvalResult evaluate_sharded(nn::Module& model, data::Dataset& dataset, int64_t batch_size,
                            int64_t classes, comm::ProcessGroup& group, bool next_token) {
  return evaluate_shard(model, forward_of(model), dataset, batch_size, classes, &group,
                        group.rank(), group.size(), next_token);
}

struct Trainer::State {
  explicit State(uint64_t seed) : dropout_rng(seed) {}
  Generator dropout_rng;
  // Before the model: it holds the group that sync BatchNorm layers borrow.
  std::unique_ptr<Strategy> strategy;
  std::shared_ptr<data::Dataset> train_data;
  std::shared_ptr<data::Dataset> test_data;
  std::shared_ptr<nn::Sequential> model;
  int64_t classes = 0;
  std::unique_ptr<optim::LrScheduler> schedule;
  std::unique_ptr<data::DataLoader> loader;
  std::unique_ptr<CheckpointDir> checkpoints;
  std::unique_ptr<CheckpointWriter> writer;  // after `checkpoints`, which it writes into
  int64_t step = 0;
  double checkpoint_seconds = 0.0;   // training's time in save_checkpoint
  double memory_copy_seconds = 0.0;  // ... and in keep_memory_copy
};

Trainer::Trainer(Config config, TrainerOptions options)
    : config_(std::move(config)),
      options_(options),
      state_(std::make_unique<State>(config_.train.seed)) {
  if (config_.train.threads > 0) set_num_threads(static_cast<int>(config_.train.threads));
  if (config_.train.memory_cap_mb > 0) {
    set_storage_limit(static_cast<size_t>(config_.train.memory_cap_mb * (1 << 20)),
                      "train.memory_cap_mb in " + config_.source);
  }
  State& s = *state_;
  config_.parallel.strategy = resolve_strategy(config_.parallel.strategy, options_.group);
  s.strategy = make_strategy(config_, options_);
  const int rank = s.strategy->data_rank();
  const int ranks = s.strategy->data_ranks();
  written_config_ = to_toml(config_);
  if (config_.data.batch_per_worker) {
    config_.data.batch_size *= ranks;
    config_.optimizer.lr *= ranks;
  }
  // data.batch_size is the global batch: N processes take 1/N of it each, so a run gives the same
  // result whatever the number of processes.
  if (config_.data.batch_size % ranks != 0) {
    throw ConfigError(
        config_.source, 0, "data.batch_size",
        detail::concat(config_.data.batch_size, " is the global batch and must divide by the ",
                       ranks, " processes"));
  }
  open_data_sets();
  Generator init(config_.train.seed);
  Shape out_shape;
  // Every rank draws the global batch's dropout masks and keeps its rows: DDP then trains exactly
  // as one process would on the global batch.
  const bool next_token = config_.train.loss == "next_token";
  const Shape input_shape = model_input_shape(*s.train_data, next_token);
  const LayerRange part = s.strategy->layers(config_.model.layers.size(), [&] {
    const int64_t micro_batch = config_.data.batch_size / ranks / config_.parallel.micro_batches;
    return measure_layer_costs(config_, input_shape, std::max<int64_t>(1, micro_batch));
  });
  s.model = build_model(config_, input_shape, init, s.dropout_rng, &out_shape,
                        {.index = rank, .count = ranks}, 0, part, {}, s.strategy->layer_split());
  s.classes = output_classes(config_, out_shape, *s.train_data, next_token);
  check_labels(*s.train_data, s.classes, "data.train");
  if (s.test_data) check_labels(*s.test_data, s.classes, "data.test");
  if (const std::string map = describe_label_map(s.train_data->class_labels());
      !map.empty() && !next_token && s.strategy->reports() && options_.progress) {
    std::fprintf(options_.progress, "data.train: file labels are classes: %s\n", map.c_str());
  }
  if (config_.parallel.sync_batchnorm && s.strategy->group()) {
    parallel::convert_sync_batchnorm(*s.model, *s.strategy->group());
  }
  s.strategy->attach(*s.model);
  // The strategy's optimizer has the lr as written.
  if (config_.data.batch_per_worker) s.strategy->optimizer().set_lr(config_.optimizer.lr);
  s.loader = std::make_unique<data::DataLoader>(
      *s.train_data,
      data::DistributedSampler(s.train_data->size(), rank, ranks,
                               {.seed = config_.train.seed,
                                .shuffle = config_.data.shuffle,
                                .drop_last = config_.data.drop_last}),
      data::DataLoaderOptions{.batch_size = config_.data.batch_size / ranks,
                              .drop_last_batch = config_.data.drop_last,
                              .prefetch = static_cast<int>(config_.data.prefetch)});
  int64_t per_epoch = s.loader->num_batches();
  int64_t total = per_epoch * config_.train.epochs;
  if (config_.train.max_steps > 0) total = std::min(total, config_.train.max_steps);
  s.schedule = make_schedule(config_.optimizer, s.strategy->optimizer(), per_epoch, total);
  s.checkpoints = std::make_unique<CheckpointDir>(
      (std::filesystem::path(config_.train.run_dir) / "checkpoints").string(),
      config_.train.keep_checkpoints);
  s.writer = std::make_unique<CheckpointWriter>(*s.checkpoints, config_.train.async_checkpoint);
}

Trainer::~Trainer() = default;

void open_data_sets(const Config& config, MemoryCopy& memory) {
  if (memory.train_data) return;
  memory.train_data = open_dataset(config.data.train, config, "data.train");
  const DataLayout layout{memory.train_data->sample_shape(), memory.train_data->class_labels()};
  if (!config.data.test.empty())
    memory.test_data = open_dataset(config.data.test, config, "data.test", &layout);
}

void Trainer::open_data_sets() {
  State& s = *state_;
  MemoryCopy opened;
  MemoryCopy& memory = options_.memory ? *options_.memory : opened;
  train::open_data_sets(config_, memory);
  s.train_data = memory.train_data;
  s.test_data = memory.test_data;
}

nn::Module& Trainer::model() { return *state_->model; }

int64_t Trainer::first_step() const { return state_->strategy->first_step(); }

data::SamplerState Trainer::resume() {
  State& s = *state_;
  comm::ProcessGroup* group = s.strategy->group();
  std::FILE* out = s.strategy->reports() ? options_.progress : nullptr;
  NewestCopy copy;
  if (options_.memory) copy = newest_memory_copy();
  if (copy.step >= 0 && copy.step >= copy.on_disk) return resume_from_memory(copy);
  std::vector<std::string> skipped;
  std::optional<Checkpoint> ckpt = checkpoint_of_rank_zero(*s.checkpoints, group, &skipped);
  for (const auto& why : skipped) {
    if (out) std::fprintf(out, "resume: skipped %s\n", why.c_str());
  }
  // The newer files did not verify: the copy is newer than what storage has.
  if (copy.step >= 0 && (!ckpt || ckpt->step < copy.step)) return resume_from_memory(copy);
  if (!ckpt) {
    if (out) {
      std::fprintf(out, "resume: no valid checkpoint in %s, starting afresh\n",
                   s.checkpoints->dir().c_str());
    }
    return {0, 0};
  }
  data::SamplerState start;
  load_on_every_rank(group, ckpt->path, [&] { start = load_checkpoint(*ckpt); });
  if (out) {
    std::fprintf(out, "resumed from %s (step %lld, epoch %lld)\n", ckpt->path.c_str(),
                 static_cast<long long>(s.step), static_cast<long long>(start.epoch + 1));
  }
  return start;
}

data::SamplerState Trainer::rejoin_at(int64_t step) {
  State& s = *state_;
  s.step = step;
  if (s.schedule) {
    for (int64_t i = 0; i < step; ++i) s.schedule->step();
  }
  const int64_t per_epoch = std::max<int64_t>(1, s.loader->num_batches());
  return {step / per_epoch, (step % per_epoch) * config_.data.batch_size};
}

data::SamplerState Trainer::load_checkpoint(const Checkpoint& ckpt) {
  State& s = *state_;
  s.strategy->load_model_state(*s.model, ckpt.section("model"), ckpt.path);
  s.strategy->load(ckpt);
  if (s.schedule) {
    from_bytes(ckpt.section("schedule"), ckpt.path,
               [&](BinaryReader& r) { s.schedule->load_state(r); });
  }
  // Scaled for this number of processes, whatever the checkpoint's was.
  if (config_.data.batch_per_worker) {
    if (s.schedule) {
      s.schedule->set_base_lr(config_.optimizer.lr);
    } else {
      s.strategy->optimizer().set_lr(config_.optimizer.lr);
    }
  }
  const data::SamplerState at = saved_data_position(ckpt, s.train_data->size());
  s.dropout_rng.set_state(ckpt.section("rng"));
  s.step = ckpt.step;
  return at;
}

Trainer::NewestCopy Trainer::newest_memory_copy() {
  State& s = *state_;
  comm::ProcessGroup* group = s.strategy->group();
  double on_disk = -1.0;
  if (group == nullptr || group->rank() == 0) {
    on_disk = static_cast<double>(s.checkpoints->newest_step());
  }
  const MemoryCopy& memory = *options_.memory;
  // A copy kept whole is one piece.
  const StatePieces& p = memory.pieces;
  const PiecesHeld mine =
      p.count > 0 ? PiecesHeld{memory.step, p.count, p.index} : PiecesHeld{memory.step, 1, {0, -1}};
  const std::vector<double> all = from_every_rank(
      group, {static_cast<double>(mine.step), on_disk, static_cast<double>(mine.count),
              static_cast<double>(mine.index[0]), static_cast<double>(mine.index[1])});
  constexpr size_t kFields = 5;
  std::vector<PiecesHeld> held;
  for (size_t r = 0; r < all.size(); r += kFields) {
    held.push_back({static_cast<int64_t>(all[r]),
                    static_cast<int>(all[r + 2]),
                    {static_cast<int>(all[r + 3]), static_cast<int>(all[r + 4])}});
  }
  WholeCopy whole = newest_whole_copy(held);
  return {.step = whole.step,
          .on_disk = static_cast<int64_t>(all[1]),
          .senders = std::move(whole.senders)};
}

namespace {

// "rank 1's memory copy of step 12", or of a copy in pieces "the memory copy of step 12 in 4
// pieces, from ranks 0, 2"
std::string copy_name(const std::vector<int>& senders, int64_t step) {
  if (senders.size() == 1)
    return detail::concat("rank ", senders[0], "'s memory copy of step ", step);
  std::vector<int> ranks = senders;
  std::ranges::sort(ranks);
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::string from;
  for (int r : ranks) from += (from.empty() ? "" : ", ") + std::to_string(r);
  return detail::concat("the memory copy of step ", step, " in ", senders.size(),
                        " pieces, from rank", ranks.size() > 1 ? "s " : " ", from);
}

}  // namespace

data::SamplerState Trainer::resume_from_memory(const NewestCopy& copy) {
  State& s = *state_;
  comm::ProcessGroup* group = s.strategy->group();
  const std::string name = copy_name(copy.senders, copy.step);
  MemoryCopy& memory = *options_.memory;
  if (copy.senders.size() > 1) {
    memory.state = decode_checkpoint(
        join_pieces(group, memory.pieces, {.step = copy.step, .senders = copy.senders}), name);
    memory.pieces = {};
  } else if (group != nullptr && group->size() > 1) {
    const int holder = copy.senders[0];
    const bool mine = group->rank() == holder;
    const std::string bytes = parallel::broadcast_bytes(
        *group, mine ? encode_checkpoint(memory.state) : std::string(), holder);
    if (!mine) memory.state = decode_checkpoint(bytes, name);
  }
  memory.state.path = name;
  data::SamplerState start;
  load_on_every_rank(group, name, [&] { start = load_checkpoint(memory.state); });
  memory.step = s.step;
  if (s.strategy->reports() && options_.progress) {
    std::fprintf(options_.progress, "resumed from %s (epoch %lld)%s\n", name.c_str(),
                 static_cast<long long>(start.epoch + 1),
                 copy.step >= copy.on_disk ? ", without reading storage" : "");
  }
  return start;
}

void Trainer::keep_memory_copy(data::SamplerState at) {
  State& s = *state_;
  const auto start = Clock::now();
  Checkpoint c = snapshot(at);
  comm::ProcessGroup* group = s.strategy->group();
  MemoryCopy& memory = *options_.memory;
  // Replaced only once whole: a rank whose group broke mid-copy keeps the one before.
  if (s.strategy->holds_whole_state() || group == nullptr || group->size() == 1) {
    memory.state = std::move(c);
    memory.pieces = {};
  } else {
    std::string whole = s.strategy->reports() ? encode_checkpoint(c) : std::string();
    c = {};  // the encoding holds it now
    memory.pieces = keep_pieces(*group, std::move(whole), memory.ranks_per_host);
    memory.state = {};
  }
  memory.step = s.step;
  s.memory_copy_seconds += seconds_since(start);
}

Checkpoint Trainer::snapshot(data::SamplerState at) {
  State& s = *state_;
  Checkpoint c;
  s.strategy->save(c);
  std::string model = s.strategy->model_state(*s.model);
  if (!s.strategy->reports() && !s.strategy->holds_whole_state()) return c;
  c.step = s.step;
  c.sections["model"] = std::move(model);
  if (s.schedule)
    c.sections["schedule"] = to_bytes([&](BinaryWriter& w) { s.schedule->save_state(w); });
  c.sections["data_position"] = to_bytes([&](BinaryWriter& w) {
    w.write_i64(at.epoch);
    w.write_i64(at.position);
  });
  c.sections["rng"] = s.dropout_rng.state();
  c.sections["config"] = written_config_;
  nlohmann::json meta{{"step", s.step},
                      {"epoch", at.epoch},
                      {"sample_shape", s.train_data->sample_shape()},
                      {"classes", s.classes},
                      {"class_labels", s.train_data->class_labels()},
                      {"world_size", s.strategy->data_ranks()}};
  c.sections["meta"] = meta.dump();
  return c;
}

std::string Trainer::save_checkpoint(data::SamplerState at) {
  State& s = *state_;
  const auto start = Clock::now();
  Checkpoint c = snapshot(at);
  std::string path = s.strategy->reports() ? s.writer->save(std::move(c)) : std::string();
  s.checkpoint_seconds += seconds_since(start);
  return path;
}

TrainResult Trainer::run() {
  State& s = *state_;
  const bool lead = s.strategy->reports();
  const int ranks = s.strategy->data_ranks();
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
  data::SamplerState start = options_.resume ? resume() : data::SamplerState{0, 0};
  if (s.strategy->first_step() > 0) start = rejoin_at(s.strategy->first_step());
  if (options_.on_step) options_.on_step(s.step);

  TrainResult result;
  Progress progress(lead ? options_.progress : nullptr, config_.train.log_every);
  const auto run_start = Clock::now();
  int64_t trained_samples = 0;
  double train_seconds = 0.0;
  const int64_t max_steps = config_.train.max_steps;
  const int64_t log_every = config_.train.log_every;
  const int64_t copy_every = options_.memory ? config_.train.memory_copy_every : 0;
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
      const double l =
          train_step(*s.strategy, *s.model, s.schedule.get(), config_.train, *batch, window);
      ++s.step;
      ++done;
      if (options_.on_step) options_.on_step(s.step);
      loss_sum += l;
      ++loss_count;
      trained_samples += batch->size();
      train_seconds += seconds_since(batch_start);
      double rate = ranks * window.samples / std::max(1e-9, seconds_since(window.start));
      const bool log_now = s.step % log_every == 0;
      // Lines show the mean over the ranks (what one process on the global batch reports): one
      // small collective where a metrics or progress line is due, the same steps on every rank.
      if (log_now || done % log_every == 0 || done == per_epoch) {
        const RankReport report =
            report_from_every_rank(s.strategy->group(), l, s.strategy->parameter_bytes(*s.model));
        shown_loss = report.mean_loss;
        if (log_now) {
          nlohmann::json line = step_metrics(window, s.step, epoch, report, rate);
          line["lr"] = s.strategy->optimizer().lr();
          line["wall_time"] = seconds_since(run_start);
          line["optimizer_state_bytes"] = s.strategy->optimizer_state_bytes();
          line["checkpoint_seconds"] = s.checkpoint_seconds;
          if (copy_every > 0) line["memory_copy_seconds"] = s.memory_copy_seconds;
          s.strategy->add_metrics(window, line);
          log(line);
          window = {};
        }
      }
      progress.update(done, shown_loss, rate);
      if (config_.train.checkpoint_every > 0 && s.step % config_.train.checkpoint_every == 0) {
        save_checkpoint(s.loader->state());
      }
      if (copy_every > 0 && s.step % copy_every == 0) keep_memory_copy(s.loader->state());
    }
    comm::ProcessGroup* group = s.strategy->group();
    result.train_loss = mean_over_ranks(group, loss_sum, loss_count);
    if (s.test_data) {
      // Evaluation keeps no activations for backward, so it takes bigger batches; not under a
      // memory cap, which the training batch was chosen to fit.
      const int64_t batch = config_.train.memory_cap_mb > 0
                                ? config_.data.batch_size
                                : std::max<int64_t>(config_.data.batch_size, 256);
      const bool next_token = config_.train.loss == "next_token";
      Strategy& strategy = *s.strategy;
      result.test = evaluate_shard(
          *s.model, [&](const Tensor& x) { return strategy.predict(*s.model, x); }, *s.test_data,
          batch, s.classes, group, group ? strategy.data_rank() : 0,
          group ? strategy.data_ranks() : 1, next_token);
    }
    log(epoch_metrics(s.step, epoch, result, seconds_since(run_start)));
    progress.end_epoch(epoch_summary(epoch, result));
    result.epochs = epoch + 1;
    // At an epoch's end the next position is the following epoch's start.
    data::SamplerState next = stop ? s.loader->state() : data::SamplerState{epoch + 1, 0};
    std::string path = save_checkpoint(next);
    if (!path.empty()) result.last_checkpoint = path;
  }
  s.writer->wait();
  result.steps = s.step;
  result.checkpoint_seconds = s.checkpoint_seconds;
  result.memory_copy_seconds = s.memory_copy_seconds;
  result.wall_seconds = seconds_since(run_start);
  result.world_size = ranks;
  result.samples_per_s = train_seconds > 0 ? ranks * trained_samples / train_seconds : 0.0;
  return result;
}

}  // namespace tessera::train
