#include "tessera/train/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "tessera/core/error.h"

namespace tessera::train {
namespace {

int line_of(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = 3;
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  std::string known_list;
  for (const auto& k : known) known_list += (known_list.empty() ? "" : ", ") + k;
  return best.empty() ? " (known: " + known_list + ")" : " (did you mean '" + best + "'?)";
}

// Reads the keys of one table, checking types; finish() rejects keys nobody asked for.
class Section {
 public:
  Section(const toml::table* table, std::string name, std::string file)
      : table_(table), name_(std::move(name)), file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    throw ConfigError(file_, line(key), name_ + "." + key, message);
  }

  int line(const std::string& key) const {
    if (table_ == nullptr) return 0;
    const toml::node* node = table_->get(key);
    return node ? line_of(*node) : line_of(*table_);
  }

  void read(const std::string& key, int64_t& out) {
    if (const toml::node* n = find(key)) {
      auto v = n->value<int64_t>();
      if (!n->is_integer() || !v) fail(key, "expected an integer, got " + describe(*n));
      out = *v;
    }
  }
  void read(const std::string& key, uint64_t& out) {
    int64_t v = static_cast<int64_t>(out);
    read(key, v);
    if (v < 0) fail(key, "expected a non-negative integer, got " + std::to_string(v));
    out = static_cast<uint64_t>(v);
  }
  void read(const std::string& key, double& out) {
    if (const toml::node* n = find(key)) {
      if (!n->is_number()) fail(key, "expected a number, got " + describe(*n));
      out = *n->value<double>();
      if (!std::isfinite(out)) fail(key, "expected a finite number, got " + describe(*n));
    }
  }
  void read(const std::string& key, bool& out) {
    if (const toml::node* n = find(key)) {
      if (!n->is_boolean()) fail(key, "expected true or false, got " + describe(*n));
      out = *n->value<bool>();
    }
  }
  void read(const std::string& key, std::vector<int64_t>& out) {
    if (const toml::node* n = find(key)) {
      const toml::array* a = n->as_array();
      if (!a) fail(key, "expected an array of integers, got " + describe(*n));
      out.clear();
      for (const toml::node& e : *a) {
        if (!e.is_integer()) fail(key, "expected integers, got " + describe(e));
        out.push_back(*e.value<int64_t>());
      }
    }
  }
  void read(const std::string& key, std::string& out) {
    if (const toml::node* n = find(key)) {
      if (!n->is_string()) fail(key, "expected a string, got " + describe(*n));
      out = *n->value<std::string>();
    }
  }
  const toml::node* raw(const std::string& key) { return find(key); }

  void finish() const {
    if (table_ == nullptr) return;
    for (const auto& [k, node] : *table_) {
      std::string key(k.str());
      if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
        throw ConfigError(file_, line_of(node), name_ + "." + key,
                          "unknown key" + suggestion(key, known_));
      }
    }
  }

  static std::string describe(const toml::node& n) {
    std::ostringstream out;
    switch (n.type()) {
      case toml::node_type::string:
        out << "the string \"" << *n.value<std::string>() << "\"";
        break;
      case toml::node_type::integer:
        out << "the integer " << *n.value<int64_t>();
        break;
      case toml::node_type::floating_point:
        out << "the number " << *n.value<double>();
        break;
      case toml::node_type::boolean:
        out << "the boolean " << (*n.value<bool>() ? "true" : "false");
        break;
      case toml::node_type::array:
        out << "an array";
        break;
      case toml::node_type::table:
        out << "a table";
        break;
      default:
        out << "a date/time";
        break;
    }
    return out.str();
  }

 private:
  const toml::node* find(const std::string& key) {
    known_.push_back(key);
    return table_ ? table_->get(key) : nullptr;
  }

  const toml::table* table_;
  std::string name_;
  std::string file_;
  std::vector<std::string> known_;
};

// Bound of counts (epochs, steps) that multiply each other: their products stay far from 2^63.
constexpr int64_t kMaxCount = 1'000'000'000;

void require(Section& s, bool ok, const std::string& key, const std::string& message) {
  if (!ok) s.fail(key, message);
}

void one_of(Section& s, const std::string& key, const std::string& value,
            const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  s.fail(key, "'" + value + "' is not one of: " + list);
}

// [model] of a sparse model: its own keys, no layers.
void read_sparse_model(Section& s, ModelConfig& m) {
  if (s.raw("layers") != nullptr)
    s.fail("layers", "is for type = \"layers\", not \"" + m.type + "\"");
  s.read("factors", m.factors);
  s.read("hash_rows", m.hash_rows);
  s.read("init_scale", m.init_scale);
  require(s, m.factors >= 1 && m.factors <= 1024, "factors", "must lie in [1, 1024]");
  require(s, m.hash_rows >= 1 && m.hash_rows <= (int64_t{1} << 40), "hash_rows",
          "must lie in [1, 2^40]");
  require(s, m.init_scale >= 0 && m.init_scale <= 1, "init_scale", "must lie in [0, 1]");
}

// Boosted trees' keys; a random forest's are the same less the rounds, the learning rate (1) and
// early stopping, plus `trees`.
void read_trees(Section& s, const std::string& type, TreeConfig& t) {
  const bool forest = type == "random_forest";
  s.read("objective", t.objective);
  one_of(s, "objective", t.objective, {"multiclass", "binary", "regression"});
  if (forest) {
    t.rounds = 1;
    t.learning_rate = 1.0;
    t.reg_lambda = 1e-5;
    t.subsample = 0.8;
    t.colsample_bynode = 0.8;
    s.read("trees", t.trees);
    require(s, t.trees >= 1 && t.trees <= 100000, "trees", "must lie in [1, 1e5]");
  } else {
    s.read("rounds", t.rounds);
    s.read("learning_rate", t.learning_rate);
    s.read("validation_fraction", t.validation_fraction);
    s.read("early_stopping_rounds", t.early_stopping_rounds);
  }
  s.read("subsample", t.subsample);
  s.read("colsample_bynode", t.colsample_bynode);
  require(s, t.subsample > 0 && t.subsample <= 1, "subsample", "must lie in (0, 1]");
  require(s, t.colsample_bynode > 0 && t.colsample_bynode <= 1, "colsample_bynode",
          "must lie in (0, 1]");
  s.read("max_depth", t.max_depth);
  s.read("grow_policy", t.grow_policy);
  one_of(s, "grow_policy", t.grow_policy, {"depthwise", "lossguide"});
  s.read("max_leaves", t.max_leaves);
  s.read("max_bins", t.max_bins);
  s.read("min_child_weight", t.min_child_weight);
  s.read("reg_lambda", t.reg_lambda);
  s.read("reg_alpha", t.reg_alpha);
  s.read("min_split_loss", t.min_split_loss);
  require(s, t.rounds >= 1 && t.rounds <= 1000000, "rounds", "must lie in [1, 1e6]");
  require(s, t.learning_rate > 0 && t.learning_rate <= 1, "learning_rate", "must lie in (0, 1]");
  require(s, t.max_depth >= (t.grow_policy == "depthwise" ? 1 : 0) && t.max_depth <= 64,
          "max_depth", "must lie in [1, 64] (lossguide: 0 is no limit)");
  require(s, t.max_leaves == 0 || (t.max_leaves >= 2 && t.max_leaves <= (int64_t{1} << 30)),
          "max_leaves", "must be 0 (no limit) or lie in [2, 2^30]");
  require(s, t.max_bins >= 2 && t.max_bins <= 255, "max_bins", "must lie in [2, 255]");
  for (const auto& [key, value] :
       {std::pair{"min_child_weight", t.min_child_weight}, std::pair{"reg_lambda", t.reg_lambda},
        std::pair{"reg_alpha", t.reg_alpha}, std::pair{"min_split_loss", t.min_split_loss}}) {
    require(s, value >= 0 && value <= 1e12, key, "must lie in [0, 1e12]");
  }
  require(s, t.validation_fraction >= 0 && t.validation_fraction < 1, "validation_fraction",
          "must lie in [0, 1)");
  require(s, t.early_stopping_rounds >= 0 && t.early_stopping_rounds <= 1000000,
          "early_stopping_rounds", "must lie in [0, 1e6]");
  require(s, t.early_stopping_rounds == 0 || t.validation_fraction > 0, "early_stopping_rounds",
          "needs validation_fraction > 0: the held-out rows it watches");
}

// ALS's keys (Spark's defaults: rank 10, regParam 0.1, maxIter 10, alpha 1).
void read_als(Section& s, ModelConfig& m) {
  m.factors = 10;
  m.l2 = 0.1;
  m.max_iter = 10;
  s.read("factors", m.factors);
  s.read("l2", m.l2);
  s.read("max_iter", m.max_iter);
  s.read("implicit", m.implicit);
  s.read("alpha", m.alpha);
  s.read("top_k", m.top_k);
  require(s, m.factors >= 1 && m.factors <= 1024, "factors", "must lie in [1, 1024]");
  require(s, m.l2 > 0 && m.l2 <= 1e6, "l2", "must lie in (0, 1e6]");
  require(s, m.max_iter >= 1 && m.max_iter <= 100000, "max_iter", "must lie in [1, 1e5]");
  require(s, m.alpha >= 0 && m.alpha <= 1e9, "alpha", "must lie in [0, 1e9]");
  require(s, m.top_k >= 1 && m.top_k <= 100000, "top_k", "must lie in [1, 1e5]");
}

// [model] of an estimator: its own keys, no layers.
void read_estimator(Section& s, ModelConfig& m) {
  if (s.raw("layers") != nullptr)
    s.fail("layers", "is for type = \"layers\", not \"" + m.type + "\"");
  if (m.type == "pca") {  // one pass: no iterations
    s.read("components", m.components);
    require(s, m.components >= 1 && m.components <= (int64_t{1} << 15), "components",
            "must lie in [1, 32768]");
    return;
  }
  if (m.type == "naive_bayes") {  // one pass: no iterations
    s.read("distribution", m.distribution);
    one_of(s, "distribution", m.distribution, {"gaussian", "multinomial", "bernoulli"});
    s.read("alpha", m.alpha);
    s.read("var_smoothing", m.var_smoothing);
    s.read("binarize", m.binarize);
    require(s, m.alpha >= 0 && m.alpha <= 1e9, "alpha", "must lie in [0, 1e9]");
    require(s, m.var_smoothing >= 0 && m.var_smoothing <= 1, "var_smoothing", "must lie in [0, 1]");
    require(s, std::isfinite(m.binarize), "binarize", "must be a number");
    return;
  }
  if (m.type == "boosted_trees" || m.type == "random_forest") return read_trees(s, m.type, m.trees);
  if (m.type == "als") return read_als(s, m);
  if (m.type == "kmeans") {
    m.max_iter = 300;
    m.tol = 1e-4;
    s.read("clusters", m.clusters);
    require(s, m.clusters >= 1 && m.clusters <= (int64_t{1} << 20), "clusters",
            "must lie in [1, 2^20]");
  } else {
    s.read("l2", m.l2);
    s.read("l1", m.l1);
    s.read("fit_intercept", m.fit_intercept);
    s.read("standardize", m.standardize);
    require(s, m.l2 >= 0 && m.l2 <= 1e6, "l2", "must lie in [0, 1e6]");
    require(s, m.l1 >= 0 && m.l1 <= 1e6, "l1", "must lie in [0, 1e6]");
  }
  s.read("max_iter", m.max_iter);
  s.read("tol", m.tol);
  require(s, m.max_iter >= 1 && m.max_iter <= 1000000, "max_iter", "must lie in [1, 1e6]");
  require(s, m.tol > 0 && m.tol <= 1, "tol", "must lie in (0, 1]");
}

ModelConfig read_model(Section& s, const std::string& file) {
  ModelConfig m;
  s.read("type", m.type);
  one_of(s, "type", m.type,
         {"layers", "logistic", "fm", "linear_regression", "logistic_regression", "linear_svm",
          "kmeans", "naive_bayes", "pca", "boosted_trees", "random_forest", "als"});
  if (is_estimator(m.type)) {
    m.line = s.line("type");
    read_estimator(s, m);
    return m;
  }
  if (m.type != "layers") {
    m.line = s.line("type");
    read_sparse_model(s, m);
    return m;
  }
  m.line = s.line("layers");
  const toml::node* layers = s.raw("layers");
  if (layers == nullptr)
    s.fail("layers",
           "missing: list the model's layers, e.g. layers = [{ type = \"linear\", out = 10 }]");
  const toml::array* arr = layers->as_array();
  if (arr == nullptr || arr->empty()) s.fail("layers", "expected a non-empty array of tables");
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* t = (*arr)[i].as_table();
    std::string where = "model.layers[" + std::to_string(i) + "]";
    if (t == nullptr) {
      throw ConfigError(file, line_of((*arr)[i]), where,
                        "expected a table like { type = \"relu\" }");
    }
    LayerSpec spec;
    spec.line = line_of(*t);
    for (const auto& [k, node] : *t) {
      std::string key(k.str());
      if (key == "type") {
        auto type = node.value<std::string>();
        if (!type) throw ConfigError(file, line_of(node), where + ".type", "expected a string");
        spec.type = *type;
        continue;
      }
      LayerParam p;
      p.line = line_of(node);
      if (node.is_boolean()) {
        p.is_bool = true;
        p.value = *node.value<bool>() ? 1.0 : 0.0;
      } else if (node.is_integer()) {
        p.is_integer = true;
        p.integer = *node.value<int64_t>();
        p.value = static_cast<double>(*node.value<int64_t>());
      } else if (node.is_floating_point()) {
        p.value = *node.value<double>();
        if (!std::isfinite(p.value)) {
          throw ConfigError(file, line_of(node), where + "." + key,
                            "expected a finite number, got " + Section::describe(node));
        }
      } else {
        throw ConfigError(file, line_of(node), where + "." + key,
                          "expected a number or boolean, got " + Section::describe(node));
      }
      spec.params[key] = p;
    }
    if (spec.type.empty())
      throw ConfigError(file, spec.line, where + ".type", "missing layer type");
    m.layers.push_back(std::move(spec));
  }
  return m;
}

void apply_override(toml::table& root, const std::string& item) {
  auto eq = item.find('=');
  std::string path = item.substr(0, eq);
  auto dot = path.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == path.size()) {
    throw ConfigError("--set", 0, path, "expected table.key=value, got '" + item + "'");
  }
  std::string table = path.substr(0, dot);
  std::string key = path.substr(dot + 1);
  std::string value = item.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    // A bare word is taken as a string, so --set data.train=csv:x.csv works unquoted.
    try {
      parsed = toml::parse("v = \"" + value + "\"");
    } catch (const toml::parse_error& e) {
      throw ConfigError("--set", 0, path, "cannot parse value '" + value + "'");
    }
  }
  toml::table* target = root[table].as_table();
  if (target == nullptr) {
    root.insert_or_assign(table, toml::table{});
    target = root[table].as_table();
  }
  target->insert_or_assign(key, *parsed.get("v"));
}

Config build(const toml::table& root, const std::string& file) {
  const std::vector<std::string> tables{"model", "data", "optimizer", "train", "parallel"};
  for (const auto& [k, node] : root) {
    std::string key(k.str());
    if (std::find(tables.begin(), tables.end(), key) == tables.end()) {
      throw ConfigError(file, line_of(node), key, "unknown table" + suggestion(key, tables));
    }
    if (!node.is_table())
      throw ConfigError(file, line_of(node), key, "expected a [" + key + "] table");
  }
  Config c;
  c.source = file;
  Section model(root["model"].as_table(), "model", file);
  if (root["model"].as_table() == nullptr) {
    throw ConfigError(file, 0, "model", "missing [model] table with a layers list");
  }
  c.model = read_model(model, file);
  model.finish();

  Section data(root["data"].as_table(), "data", file);
  DataConfig& d = c.data;
  data.read("train", d.train);
  // The default test set goes with the default training set: a model of another data set would
  // otherwise be evaluated on Fashion-MNIST.
  if (d.train != DataConfig{}.train) d.test.clear();
  data.read("test", d.test);
  data.read("batch_size", d.batch_size);
  data.read("batch_per_worker", d.batch_per_worker);
  data.read("shuffle", d.shuffle);
  data.read("drop_last", d.drop_last);
  data.read("label_column", d.label_column);
  data.read("num_features", d.num_features);
  data.read("seq_len", d.seq_len);
  data.read("prefetch", d.prefetch);
  data.read("stream", d.stream);
  data.finish();
  require(data, !d.stream || is_estimator(c.model.type) || !d.shuffle, "stream",
          "reads the file in order, a block at a time: set data.shuffle = false");
  require(data, !d.train.empty(), "train", "must name a data set");
  require(data, d.batch_size >= 1, "batch_size",
          "must be >= 1, got " + std::to_string(d.batch_size));
  require(data, d.num_features >= 0, "num_features", "must be >= 0");
  require(data, d.seq_len >= 0 && d.seq_len <= (int64_t{1} << 20), "seq_len",
          "must lie in [0, 2^20] (0: the data is not text)");
  require(data, d.prefetch >= 0 && d.prefetch <= 1024, "prefetch",
          "must lie in [0, 1024] (0: batches are read on the training thread)");

  Section opt(root["optimizer"].as_table(), "optimizer", file);
  OptimizerConfig& o = c.optimizer;
  opt.read("name", o.name);
  opt.read("lr", o.lr);
  opt.read("momentum", o.momentum);
  opt.read("nesterov", o.nesterov);
  opt.read("weight_decay", o.weight_decay);
  opt.read("beta1", o.beta1);
  opt.read("beta2", o.beta2);
  opt.read("eps", o.eps);
  opt.read("initial_accumulator", o.initial_accumulator);
  opt.read("clip_grad_norm", o.clip_grad_norm);
  opt.read("schedule", o.schedule);
  opt.read("step_size", o.step_size);
  opt.read("gamma", o.gamma);
  opt.read("min_lr", o.min_lr);
  opt.read("warmup_steps", o.warmup_steps);
  opt.finish();
  one_of(opt, "name", o.name, {"sgd", "adam", "adamw", "adagrad"});
  one_of(opt, "schedule", o.schedule, {"constant", "step", "cosine"});
  require(opt, o.lr > 0, "lr", "must be > 0");
  require(opt, o.momentum >= 0 && o.momentum < 1, "momentum", "must lie in [0, 1)");
  require(opt, !o.nesterov || o.momentum > 0, "nesterov", "needs momentum > 0");
  require(opt, o.weight_decay >= 0, "weight_decay", "must be >= 0");
  require(opt, o.beta1 >= 0 && o.beta1 < 1, "beta1", "must lie in [0, 1)");
  require(opt, o.beta2 >= 0 && o.beta2 < 1, "beta2", "must lie in [0, 1)");
  require(opt, o.eps > 0, "eps", "must be > 0");
  require(opt, o.initial_accumulator >= 0, "initial_accumulator", "must be >= 0");
  require(opt, o.clip_grad_norm >= 0, "clip_grad_norm", "must be >= 0 (0 turns clipping off)");
  require(opt, o.step_size >= 1 && o.step_size <= kMaxCount, "step_size", "must lie in [1, 1e9]");
  require(opt, o.gamma > 0, "gamma", "must be > 0");
  require(opt, o.min_lr >= 0, "min_lr", "must be >= 0");
  require(opt, o.warmup_steps >= 0, "warmup_steps", "must be >= 0");

  Section tr(root["train"].as_table(), "train", file);
  TrainConfig& t = c.train;
  tr.read("epochs", t.epochs);
  tr.read("max_steps", t.max_steps);
  tr.read("seed", t.seed);
  tr.read("run_dir", t.run_dir);
  tr.read("checkpoint_every", t.checkpoint_every);
  tr.read("keep_checkpoints", t.keep_checkpoints);
  tr.read("async_checkpoint", t.async_checkpoint);
  tr.read("memory_copy_every", t.memory_copy_every);
  tr.read("log_every", t.log_every);
  tr.read("label_smoothing", t.label_smoothing);
  tr.read("loss", t.loss);
  tr.read("threads", t.threads);
  tr.read("memory_cap_mb", t.memory_cap_mb);
  tr.finish();
  require(tr, t.epochs >= 1 && t.epochs <= kMaxCount, "epochs", "must lie in [1, 1e9]");
  require(tr, t.max_steps >= 0 && t.max_steps <= kMaxCount, "max_steps",
          "must lie in [0, 1e9] (0: no limit)");
  require(tr, t.checkpoint_every >= 0, "checkpoint_every", "must be >= 0");
  require(tr, t.memory_copy_every >= 0, "memory_copy_every", "must be >= 0");
  require(tr, t.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
  require(tr, t.log_every >= 1, "log_every", "must be >= 1");
  require(tr, t.label_smoothing >= 0 && t.label_smoothing <= 1, "label_smoothing",
          "must lie in [0, 1]");
  require(tr, t.memory_cap_mb >= 0 && t.memory_cap_mb <= 1e9, "memory_cap_mb",
          "must lie in [0, 1e9] (0: no cap)");
  require(tr, t.threads >= 0 && t.threads <= 4096, "threads",
          "must lie in [0, 4096] (0: automatic)");
  one_of(tr, "loss", t.loss, {"cross_entropy", "mse", "bce", "next_token"});
  require(tr, (t.loss == "next_token") == (c.data.seq_len > 0), "loss",
          "next_token is the loss of text data (data.seq_len > 0), and the only one");
  if (t.run_dir.empty()) {
    std::string stem = file;
    if (auto slash = stem.find_last_of('/'); slash != std::string::npos)
      stem = stem.substr(slash + 1);
    if (auto dot = stem.find_last_of('.'); dot != std::string::npos && dot > 0)
      stem = stem.substr(0, dot);
    t.run_dir = "runs/" + stem;
  }

  Section par(root["parallel"].as_table(), "parallel", file);
  ParallelConfig& p = c.parallel;
  par.read("strategy", p.strategy);
  par.read("nproc", p.nproc);
  par.read("backend", p.backend);
  par.read("zero_stage", p.zero_stage);
  par.read("bucket_mb", p.bucket_mb);
  par.read("compression", p.compression);
  par.read("find_unused_parameters", p.find_unused_parameters);
  par.read("sync_batchnorm", p.sync_batchnorm);
  par.read("timeout_s", p.timeout_s);
  par.read("servers", p.servers);
  par.read("consistency", p.consistency);
  par.read("staleness", p.staleness);
  par.read("heartbeat_timeout_s", p.heartbeat_timeout_s);
  par.read("server_checkpoint_s", p.server_checkpoint_s);
  par.read("dp", p.dp);
  par.read("tp", p.tp);
  par.read("pp", p.pp);
  par.read("micro_batches", p.micro_batches);
  par.read("schedule", p.schedule);
  par.read("recompute", p.recompute);
  par.read("stage_cuts", p.stage_cuts);
  par.finish();
  require(par, p.timeout_s > 0 && p.timeout_s <= 1e7, "timeout_s", "must lie in (0, 1e7]");
  require(par, p.zero_stage >= 1 && p.zero_stage <= 3, "zero_stage", "must be 1, 2 or 3");
  require(par, p.bucket_mb > 0 && p.bucket_mb <= 1 << 20, "bucket_mb", "must lie in (0, 1048576]");
  one_of(par, "compression", p.compression, {"none", "bf16", "fp16"});
  one_of(par, "strategy", p.strategy,
         {"auto", "none", "ddp", "zero", "ps", "pipeline", "hybrid", "tensor"});
  require(par, p.pp >= 0 && p.pp <= 65536, "pp", "must lie in [0, 65536] (0: every process)");
  require(par, p.dp >= 0 && p.dp <= 65536, "dp", "must lie in [0, 65536] (0: what pp leaves)");
  require(par, p.tp >= 0 && p.tp <= 65536, "tp", "must lie in [0, 65536] (0: every process)");
  require(par, p.micro_batches >= 1 && p.micro_batches <= 65536, "micro_batches",
          "must lie in [1, 65536]");
  one_of(par, "schedule", p.schedule, {"1f1b", "gpipe"});
  require(par, !is_estimator(c.model.type) || p.strategy == "auto", "strategy",
          "is not for [model] type \"" + c.model.type +
              "\": an estimator sums every process's share of each step by allreduce; "
              "leave it out");
  require(par, c.model.type == "layers" || is_estimator(c.model.type) || p.strategy == "ps",
          "strategy",
          "must be \"ps\" for [model] type \"" + c.model.type +
              "\": its feature table lives on parameter servers");
  one_of(par, "consistency", p.consistency, {"bsp", "asp", "ssp"});
  require(par, p.servers >= 1 && p.servers <= 4096, "servers", "must lie in [1, 4096]");
  require(par, p.staleness >= 0 && p.staleness <= 1000000, "staleness", "must lie in [0, 1e6]");
  require(par, p.heartbeat_timeout_s > 0 && p.heartbeat_timeout_s <= 1e6, "heartbeat_timeout_s",
          "must lie in (0, 1e6]");
  require(par, p.server_checkpoint_s >= 0 && p.server_checkpoint_s <= 1e6, "server_checkpoint_s",
          "must lie in [0, 1e6] (0: servers do not checkpoint)");
  one_of(par, "backend", p.backend, {"auto", "gloo", "mpi", "shm"});
  require(par, p.nproc >= 1 && p.nproc <= 65536, "nproc", "must lie in [1, 65536]");
  return c;
}

}  // namespace

bool is_estimator(const std::string& model_type) {
  return model_type == "linear_regression" || model_type == "logistic_regression" ||
         model_type == "linear_svm" || model_type == "kmeans" || model_type == "naive_bayes" ||
         model_type == "pca" || model_type == "boosted_trees" || model_type == "random_forest" ||
         model_type == "als";
}

bool is_regression(const ModelConfig& model) {
  return model.type == "linear_regression" || model.type == "als" ||
         ((model.type == "boosted_trees" || model.type == "random_forest") &&
          model.trees.objective == "regression");
}

namespace {

// A TOML basic string: quotes, backslashes and control characters (which TOML refuses raw)
// escaped, so that what to_toml writes always reads back.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto byte = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
      out += escaped;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, end);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // TOML floats need a dot
  return s;
}

std::string boolean(bool b) { return b ? "true" : "false"; }

}  // namespace

Config parse_config(const std::string& text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError(source, static_cast<int>(e.source().begin.line), "",
                      std::string(e.description()));
  }
  for (const auto& item : overrides) apply_override(root, item);
  return build(root, source);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, 0, "", "cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

std::string to_toml(const Config& c) {
  std::ostringstream out;
  out << "[model]\ntype = " << quote(c.model.type) << "\n";
  if (c.model.type == "pca") {
    out << "components = " << c.model.components << "\n";
  } else if (c.model.type == "naive_bayes") {
    out << "distribution = " << quote(c.model.distribution) << "\nalpha = " << number(c.model.alpha)
        << "\nvar_smoothing = " << number(c.model.var_smoothing)
        << "\nbinarize = " << number(c.model.binarize) << "\n";
  } else if (c.model.type == "boosted_trees" || c.model.type == "random_forest") {
    const TreeConfig& t = c.model.trees;
    out << "objective = " << quote(t.objective);
    if (c.model.type == "random_forest") {
      out << "\ntrees = " << t.trees;
    } else {
      out << "\nrounds = " << t.rounds << "\nlearning_rate = " << number(t.learning_rate)
          << "\nvalidation_fraction = " << number(t.validation_fraction)
          << "\nearly_stopping_rounds = " << t.early_stopping_rounds;
    }
    out << "\nsubsample = " << number(t.subsample)
        << "\ncolsample_bynode = " << number(t.colsample_bynode) << "\nmax_depth = " << t.max_depth
        << "\ngrow_policy = " << quote(t.grow_policy) << "\nmax_leaves = " << t.max_leaves
        << "\nmax_bins = " << t.max_bins << "\nmin_child_weight = " << number(t.min_child_weight)
        << "\nreg_lambda = " << number(t.reg_lambda) << "\nreg_alpha = " << number(t.reg_alpha)
        << "\nmin_split_loss = " << number(t.min_split_loss) << "\n";
  } else if (c.model.type == "als") {
    out << "factors = " << c.model.factors << "\nl2 = " << number(c.model.l2)
        << "\nmax_iter = " << c.model.max_iter << "\nimplicit = " << boolean(c.model.implicit)
        << "\nalpha = " << number(c.model.alpha) << "\ntop_k = " << c.model.top_k << "\n";
  } else if (c.model.type == "kmeans") {
    out << "clusters = " << c.model.clusters << "\nmax_iter = " << c.model.max_iter
        << "\ntol = " << number(c.model.tol) << "\n";
  } else if (is_estimator(c.model.type)) {
    out << "l2 = " << number(c.model.l2) << "\nl1 = " << number(c.model.l1)
        << "\nfit_intercept = " << boolean(c.model.fit_intercept)
        << "\nstandardize = " << boolean(c.model.standardize) << "\nmax_iter = " << c.model.max_iter
        << "\ntol = " << number(c.model.tol) << "\n";
  } else if (c.model.type != "layers") {
    out << "factors = " << c.model.factors << "\nhash_rows = " << c.model.hash_rows
        << "\ninit_scale = " << number(c.model.init_scale) << "\n";
  } else {
    out << "layers = [\n";
  }
  for (const auto& layer : c.model.layers) {
    out << "  { type = " << quote(layer.type);
    for (const auto& [key, p] : layer.params) {
      out << ", " << key << " = ";
      if (p.is_bool) {
        out << boolean(p.value != 0);
      } else if (p.is_integer) {
        out << p.integer;
      } else {
        out << number(p.value);
      }
    }
    out << " },\n";
  }
  out << (c.model.type == "layers" ? "]\n" : "") << "\n[data]\n";
  const DataConfig& d = c.data;
  out << "train = " << quote(d.train) << "\ntest = " << quote(d.test)
      << "\nbatch_size = " << d.batch_size << "\nbatch_per_worker = " << boolean(d.batch_per_worker)
      << "\nshuffle = " << boolean(d.shuffle) << "\ndrop_last = " << boolean(d.drop_last)
      << "\nlabel_column = " << quote(d.label_column) << "\nnum_features = " << d.num_features
      << "\nseq_len = " << d.seq_len << "\nprefetch = " << d.prefetch
      << "\nstream = " << boolean(d.stream) << "\n\n";
  const OptimizerConfig& o = c.optimizer;
  out << "[optimizer]\nname = " << quote(o.name) << "\nlr = " << number(o.lr)
      << "\nmomentum = " << number(o.momentum) << "\nnesterov = " << boolean(o.nesterov)
      << "\nweight_decay = " << number(o.weight_decay) << "\nbeta1 = " << number(o.beta1)
      << "\nbeta2 = " << number(o.beta2) << "\neps = " << number(o.eps)
      << "\ninitial_accumulator = " << number(o.initial_accumulator)
      << "\nclip_grad_norm = " << number(o.clip_grad_norm) << "\nschedule = " << quote(o.schedule)
      << "\nstep_size = " << o.step_size << "\ngamma = " << number(o.gamma)
      << "\nmin_lr = " << number(o.min_lr) << "\nwarmup_steps = " << o.warmup_steps << "\n\n";
  const TrainConfig& t = c.train;
  out << "[train]\nepochs = " << t.epochs << "\nmax_steps = " << t.max_steps
      << "\nseed = " << t.seed << "\nrun_dir = " << quote(t.run_dir)
      << "\ncheckpoint_every = " << t.checkpoint_every
      << "\nkeep_checkpoints = " << t.keep_checkpoints
      << "\nasync_checkpoint = " << (t.async_checkpoint ? "true" : "false")
      << "\nmemory_copy_every = " << t.memory_copy_every << "\nlog_every = " << t.log_every
      << "\nlabel_smoothing = " << number(t.label_smoothing) << "\nloss = " << quote(t.loss)
      << "\nthreads = " << t.threads << "\nmemory_cap_mb = " << number(t.memory_cap_mb) << "\n\n";
  const ParallelConfig& p = c.parallel;
  out << "[parallel]\nstrategy = " << quote(p.strategy) << "\nnproc = " << p.nproc
      << "\nbackend = " << quote(p.backend) << "\nzero_stage = " << p.zero_stage
      << "\nbucket_mb = " << number(p.bucket_mb) << "\ncompression = " << quote(p.compression)
      << "\nfind_unused_parameters = " << boolean(p.find_unused_parameters)
      << "\nsync_batchnorm = " << boolean(p.sync_batchnorm)
      << "\ntimeout_s = " << number(p.timeout_s) << "\nservers = " << p.servers
      << "\nconsistency = " << quote(p.consistency) << "\nstaleness = " << p.staleness
      << "\nheartbeat_timeout_s = " << number(p.heartbeat_timeout_s)
      << "\nserver_checkpoint_s = " << number(p.server_checkpoint_s) << "\ndp = " << p.dp
      << "\ntp = " << p.tp << "\npp = " << p.pp << "\nmicro_batches = " << p.micro_batches
      << "\nschedule = " << quote(p.schedule) << "\nrecompute = " << boolean(p.recompute)
      << "\nstage_cuts = [";
  for (size_t i = 0; i < p.stage_cuts.size(); ++i) out << (i ? ", " : "") << p.stage_cuts[i];
  out << "]\n";
  return out.str();
}

}  // namespace tessera::train
