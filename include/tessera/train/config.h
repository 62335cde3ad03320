#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::train {

// One numeric or boolean setting of a layer, with the line it came from (for errors).
struct LayerParam {
  double value = 0.0;
  int64_t integer = 0;  // exact, when is_integer (value rounds integers beyond 2^53)
  bool is_integer = false;
  bool is_bool = false;
  int line = 0;
};

// One entry of [model] layers: `{ type = "linear", out = 512 }`.
struct LayerSpec {
  std::string type;
  int line = 0;
  std::map<std::string, LayerParam> params;
};

// [model] keys of "boosted_trees" and "random_forest" (XGBoost's names and defaults, a forest's
// those of XGBRFClassifier; docs/ml.md).
struct TreeConfig {
  std::string objective = "multiclass";  // or "binary", "regression"
  int64_t rounds = 100;
  double learning_rate = 0.3;
  int64_t max_depth = 6;
  std::string grow_policy = "depthwise";  // or "lossguide"
  int64_t max_leaves = 0;                 // 0: no limit
  int64_t max_bins = 255;
  double min_child_weight = 1.0;
  double reg_lambda = 1.0;
  double reg_alpha = 0.0;
  double min_split_loss = 0.0;
  double subsample = 1.0;            // random_forest: 0.8
  double colsample_bynode = 1.0;     // random_forest: 0.8
  int64_t trees = 100;               // random_forest: its trees (per class)
  double validation_fraction = 0.0;  // rows held out to watch (and stop early on)
  int64_t early_stopping_rounds = 0;
};

struct ModelConfig {
  // "layers": the network that `layers` lists. "logistic" | "fm": a model of binary labels over
  // sparse feature ids (LIBSVM data, [parallel] strategy "ps"; see docs/parameter-server.md):
  // logistic regression, or a factorization machine with `factors` factors per feature. Feature
  // ids are hashed into a table of `hash_rows` rows that only the servers hold; a row starts
  // uniform in [-init_scale, init_scale].
  //
  // "linear_regression" | "logistic_regression" | "linear_svm": a linear model of dense features
  // (least squares; binary or multinomial logistic regression; a squared-hinge SVM on labels 0
  // and 1) fitted by L-BFGS, every process passing over its share of the rows each iteration
  // (docs/ml.md). It minimises the mean loss plus l2 / 2 times the squared weights plus l1 times
  // their absolute values (OWL-QN); a regression's
  // target is the CSV column data.label_column.
  //
  // "kmeans": `clusters` centers from k-means|| (seeded by train.seed), then Lloyd iterations.
  // "pca": the `components` principal axes of the features (docs/ml.md).
  // "naive_bayes": scikit-learn's naive Bayes of `distribution` "gaussian", "multinomial" or
  // "bernoulli", smoothed by `alpha` (the last two) or `var_smoothing` (gaussian); bernoulli takes
  // a feature above `binarize` as present.
  // "boosted_trees": gradient-boosted trees on histograms, `trees` its keys (seeded by train.seed);
  // "random_forest": a forest of such trees, each on a sample of the rows (XGBoost's random
  // forest).
  // "als": matrix factorisation of ratings (columns user id, item id and the rating,
  // data.label_column) into `factors` factors per user and item by `max_iter` alternating
  // least-squares steps, l2 times each user's (item's) ratings penalising its factors; `implicit`:
  // ratings are implicit feedback of confidence 1 + alpha |r|, scored by precision at `top_k`.
  std::string type = "layers";
  std::vector<LayerSpec> layers;
  int64_t factors = 8;
  int64_t hash_rows = int64_t{1} << 24;
  double init_scale = 0.01;
  double l2 = 0.0;
  double l1 = 0.0;  // > 0: lasso or elastic net (with l2), by OWL-QN
  bool fit_intercept = true;
  bool standardize = false;  // fit on features scaled to mean 0, variance 1
  int64_t max_iter = 500;    // L-BFGS iterations at most (k-means: 300 Lloyd iterations)
  double tol = 1e-6;         // converged when no gradient component is larger (k-means: 1e-4)
  int64_t clusters = 8;
  int64_t components = 10;
  std::string distribution = "gaussian";
  double alpha = 1.0;
  double var_smoothing = 1e-9;
  double binarize = 0.0;
  bool implicit = false;
  int64_t top_k = 10;
  TreeConfig trees;
  int line = 0;
};

// Whether [model] type is one of the estimators of docs/ml.md (not a network, not a sparse model).
[[nodiscard]] bool is_estimator(const std::string& model_type);
// Whether the estimator predicts a value, its target a CSV column (data.label_column).
[[nodiscard]] bool is_regression(const ModelConfig& model);

struct DataConfig {
  // "fashion-mnist:train", "mnist:test", "idx:IMAGES,LABELS", "csv:PATH", "libsvm:PATH",
  // "text:PATH" or "text:PATH:FROM-TO" (a character-level language-modelling corpus, or the
  // fractions FROM to TO of it; train.loss = "next_token").
  std::string train = "fashion-mnist:train";
  // Empty: no evaluation. The default holds only with the default `train`; with another, none.
  std::string test = "fashion-mnist:test";
  int64_t batch_size = 64;  // the global batch, split over the processes
  // batch_size is each data-parallel process's batch instead, whatever their number (an elastic
  // job that shrinks or grows): the global batch is batch_size x processes, and the learning rate
  // (optimizer.lr, not min_lr) is multiplied by the processes too (the linear scaling rule).
  bool batch_per_worker = false;
  bool shuffle = true;
  bool drop_last = false;
  std::string label_column = "label";  // CSV: a column name, or its 0-based index as text
  int64_t num_features = 0;            // LIBSVM: 0 infers it from the file
  int64_t seq_len = 0;                 // text: tokens a sample feeds the model (0: not text)
  int64_t prefetch = 2;                // batches prepared ahead by a loader thread (0: none)
  // csv: read the file from disk a block of rows at a time, every pass, holding one block, for
  // files bigger than memory (estimators; networks only with shuffle = false). false: load it.
  bool stream = false;
};

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adam | adamw | adagrad
  double lr = 0.1;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // adagrad: the accumulator's starting value (PyTorch's initial_accumulator_value). Above 0 it
  // keeps the first steps of a rarely seen row (sparse models) from being full-size.
  double initial_accumulator = 0.0;
  double clip_grad_norm = 0.0;        // 0: no clipping
  std::string schedule = "constant";  // constant | step | cosine
  int64_t step_size = 1;              // step: epochs between decays
  double gamma = 0.1;                 // step: decay factor
  double min_lr = 0.0;                // cosine: final learning rate
  int64_t warmup_steps = 0;           // linear warm-up over this many steps first
};

struct TrainConfig {
  int64_t epochs = 10;
  int64_t max_steps = 0;  // 0: no limit; else stop after this many optimizer steps
  uint64_t seed = 0;
  std::string run_dir;           // default: runs/<config file stem>
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0: at each epoch's end only
  int64_t keep_checkpoints = 3;
  // Write checkpoints on a thread of their own: training waits only for the snapshot in memory.
  bool async_checkpoint = true;
  // In an elastic job: every worker keeps a copy of the whole training state in memory, refreshed
  // every this many steps, from which the survivors of a failure go on without reading storage
  // (0: no copies; a failure restarts every worker from the newest checkpoint).
  int64_t memory_copy_every = 10;
  int64_t log_every = 50;  // steps between metric lines
  double label_smoothing = 0.0;
  // cross_entropy | mse | bce | next_token (text: each position's logits against the next token)
  std::string loss = "cross_entropy";
  int64_t threads = 0;  // 0: cores / local ranks
  // This process's tensor memory cap in MiB (0: none): the model is checked against it as it is
  // built, and any allocation past it fails naming the cap.
  double memory_cap_mb = 0;
};

struct ParallelConfig {
  // auto: none on one process, ddp on several | none | ddp | zero | ps | pipeline | hybrid | tensor
  std::string strategy = "auto";
  int64_t nproc = 1;
  std::string backend = "auto";  // auto | gloo | mpi | shm
  // zero: 1 shards optimizer state, 2 also gradients, 3 also the parameters (each layer gathered
  // only while it computes)
  int64_t zero_stage = 1;
  double bucket_mb = 25.0;              // ddp: gradient bucket size
  std::string compression = "none";     // ddp: none | bf16 | fp16 gradients on the wire
  bool find_unused_parameters = false;  // ddp: parameters without gradient count as zero
  // BatchNorm layers normalise over the global batch (statistics allreduced), not each rank's.
  bool sync_batchnorm = false;
  // ps: the last `servers` processes are parameter servers, the others workers. consistency:
  // bsp (every step waits for every worker's gradient: the same as one process on the global
  // batch) | asp (no waiting) | ssp (a worker runs at most `staleness` steps ahead of the slowest).
  int64_t servers = 1;
  std::string consistency = "bsp";
  int64_t staleness = 2;
  // ps: a worker silent this long (no request, no heartbeat) is declared lost.
  double heartbeat_timeout_s = 10.0;
  // ps: seconds between the servers' checkpoints (<run_dir>/ps/server-<i>.ckpt), from which a
  // server the launcher restarts (--max-restarts; asp and ssp) goes on. 0: none.
  double server_checkpoint_s = 30.0;
  // pipeline: the model's layers cut into `pp` stages (0: one per process), each on its own
  // process; every batch streams through them in `micro_batches` micro-batches under `schedule`
  // (1f1b | gpipe), with `recompute` running each stage's forward again before its backward
  // instead of keeping its activations. `stage_cuts`: the layer each stage after the first
  // begins with; empty: cut where each stage's measured time is most even.
  // hybrid: `dp` pipelines of `pp` stages, each stage's layers split over `tp` processes
  // (dp x pp x tp processes; pp 0: the processes / tp, dp 0: what pp and tp leave), data parallel
  // across the pipelines.
  // tensor: the layers split over `tp` processes (0: every process).
  int64_t dp = 0;
  int64_t tp = 0;
  int64_t pp = 0;
  int64_t micro_batches = 4;
  std::string schedule = "1f1b";
  bool recompute = false;
  std::vector<int64_t> stage_cuts;
  // Deadline of every collective and of the rendezvous; a rank that does not arrive in time is
  // named in the error. TESSERA_COMM_TIMEOUT_S in the environment overrides it.
  double timeout_s = 300.0;
};

// The whole configuration of a training run, as `tessera train` reads it from TOML.
struct Config {
  ModelConfig model;
  DataConfig data;
  OptimizerConfig optimizer;
  TrainConfig train;
  ParallelConfig parallel;
  std::string source;  // the file it was read from
};

// Reads a TOML config and applies overrides ("table.key=value", value in TOML syntax, e.g.
// "optimizer.lr=0.05", "data.train=\"csv:x.csv\""). Unknown tables or keys, wrong types and bad
// values throw ConfigError naming the file, line and key (with a suggestion for a misspelt key).
[[nodiscard]] Config load_config(const std::string& path,
                                 const std::vector<std::string>& overrides = {});
// As load_config, from TOML text (`source` names it in errors).
[[nodiscard]] Config parse_config(const std::string& text, const std::string& source,
                                  const std::vector<std::string>& overrides = {});

// The fully resolved config as TOML (every setting, defaults included); parse_config reads it back
// to an equal Config.
[[nodiscard]] std::string to_toml(const Config& config);

}  // namespace tessera::train
