#include "tessera/train/model_builder.h"

#include <optional>
#include <set>

#include "tessera/core/error.h"
#include "tessera/core/memory.h"
#include "tessera/nn/activation.h"
#include "tessera/nn/conv2d.h"
#include "tessera/nn/embedding.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/normalization.h"
#include "tessera/nn/transformer.h"

namespace tessera::train {
namespace {

// The largest size, channel count, kernel or padding a layer setting may have: far beyond any
// real model, and small enough that the shape arithmetic below cannot overflow.
constexpr int64_t kMaxSize = int64_t{1} << 31;

// Reads a layer's settings, checking names and types; unknown keys are errors.
class LayerReader {
 public:
  LayerReader(const LayerSpec& spec, size_t index, const std::string& file)
      : spec_(spec), where_("model.layers[" + std::to_string(index) + "]"), file_(file) {}

  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    auto it = spec_.params.find(key);
    int line = it == spec_.params.end() ? spec_.line : it->second.line;
    throw ConfigError(file_, line, where_ + (key.empty() ? "" : "." + key),
                      spec_.type + ": " + message);
  }

  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt) {
    known_.insert(key);
    auto it = spec_.params.find(key);
    if (it == spec_.params.end()) {
      if (!fallback) fail(key, "missing required setting '" + key + "'");
      return *fallback;
    }
    if (!it->second.is_integer) fail(key, "expected an integer");
    return it->second.integer;
  }

  double real(const std::string& key, double fallback) {
    known_.insert(key);
    auto it = spec_.params.find(key);
    if (it == spec_.params.end()) return fallback;
    if (it->second.is_bool) fail(key, "expected a number");
    return it->second.value;
  }

  bool flag(const std::string& key, bool fallback) {
    known_.insert(key);
    auto it = spec_.params.find(key);
    if (it == spec_.params.end()) return fallback;
    if (!it->second.is_bool) fail(key, "expected true or false");
    return it->second.value != 0;
  }

  void finish() const {
    for (const auto& [key, p] : spec_.params) {
      if (known_.count(key)) continue;
      std::string list;
      for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
      fail(key, "unknown setting '" + key + "'" +
                    (list.empty() ? " (this layer takes none)" : " (known: " + list + ")"));
    }
  }

 private:
  const LayerSpec& spec_;
  std::string where_;
  std::string file_;
  std::set<std::string> known_;
};

// Adds up what the model will hold, layer by layer, so that a model too large for this machine
// fails while it is built, naming the layer, instead of in an allocation later. Sums are long
// double: a hostile config's sizes must not wrap around.
class MemoryBudget {
 public:
  // `limit`: the bytes allowed, described by `what` ("this machine's memory").
  MemoryBudget(int64_t batch, uint64_t limit, std::string what)
      : batch_(batch), limit_(limit), what_(std::move(what)) {}

  // Whether the layers from now on are this process's (counted) or another's.
  void count(bool on) { on_ = on; }

  // Whether the layers from now on are split `ways` ways (tensor parallelism).
  void split(int64_t ways) { ways_ = ways; }

  // `params`: the shapes of the layer's parameters; `output`: its output per sample.
  void add(const LayerReader& r, const std::vector<Shape>& params, const Shape& output) {
    if (!on_) return;
    for (const Shape& p : params) parameters_ += bytes(p) / static_cast<long double>(ways_);
    activations_ += bytes(output) * static_cast<long double>(batch_);
    // Parameters and their gradients, and one batch of activations for the forward pass.
    const long double need = 2 * parameters_ + activations_;
    if (need <= static_cast<long double>(limit_)) return;
    r.fail("", detail::concat("the model needs at least ", format_bytes(clamp(need)),
                              " by this layer (parameters and their gradients ",
                              format_bytes(clamp(2 * parameters_)), ", activations of a batch of ",
                              batch_, " samples ", format_bytes(clamp(activations_)),
                              "), more than the ", format_bytes(limit_), " of ", what_));
  }

 private:
  static long double bytes(const Shape& shape) {
    long double n = sizeof(float);
    for (int64_t d : shape) n *= static_cast<long double>(d);
    return n;
  }
  static uint64_t clamp(long double bytes) {
    return bytes >= 1.8e19L ? UINT64_MAX : static_cast<uint64_t>(bytes);
  }
  int64_t batch_;
  uint64_t limit_;
  std::string what_;
  long double parameters_ = 0;
  long double activations_ = 0;
  bool on_ = true;
  int64_t ways_ = 1;
};

// Whether tensor parallelism splits layer `index` of `layers` (LayerSplit).
bool splits(const std::vector<LayerSpec>& layers, size_t index) {
  const std::string& type = layers[index].type;
  return type == "embedding" || type == "transformer_block" ||
         (type == "linear" && index + 1 == layers.size());
}

}  // namespace

std::shared_ptr<nn::Sequential> build_model(const Config& config, const Shape& sample_shape,
                                            Generator& gen, Generator& dropout, Shape* output_shape,
                                            nn::BatchShard shard, uint64_t memory_limit,
                                            LayerRange keep, const LayerVisitor& visit,
                                            const LayerSplit& split) {
  const std::string& file = config.source;
  if (config.model.type != "layers") {
    throw ConfigError(file, config.model.line, "model.type",
                      "\"" + config.model.type +
                          "\" is a sparse model, trained by train_sparse (sparse_trainer.h), not "
                          "by the Trainer");
  }
  auto model = std::make_shared<nn::Sequential>();
  std::shared_ptr<nn::TokenEmbedding> embedding;  // the last one, for a head tied to it
  size_t embedding_index = 0;
  Shape shape = sample_shape;  // per sample, no batch dimension
  const bool capped = config.train.memory_cap_mb > 0;
  MemoryBudget budget(config.data.batch_size / std::max(shard.count, 1),
                      memory_limit > 0 ? memory_limit
                      : capped ? static_cast<uint64_t>(config.train.memory_cap_mb * (1 << 20))
                               : physical_memory_bytes(),
                      memory_limit > 0 ? "memory allowed"
                      : capped
                          ? "this process's cap (train.memory_cap_mb; pipeline stages and tensor "
                            "parallelism hold part of the model on each process)"
                          : "this machine's memory");
  for (size_t i = 0; i < config.model.layers.size(); ++i) {
    const LayerSpec& spec = config.model.layers[i];
    LayerReader r(spec, i, file);
    const bool kept = i >= keep.first && i < keep.last;
    budget.count(kept);
    const bool split_here =
        split.split && (split.every_layer || (split.ways > 1 && splits(config.model.layers, i)));
    budget.split(split_here ? split.ways : 1);
    // Every layer is made, kept or not, so that each draws its weights as in the whole model.
    const Shape input = shape;
    auto add = [&](std::shared_ptr<nn::Module> layer) {
      if (visit) visit(i, *layer, input);
      if (!kept) return;
      if (split_here) layer = split.split(i, std::move(layer));
      model->push_back(std::move(layer), std::to_string(i));
    };
    auto positive = [&](const std::string& key, int64_t v) {
      if (v < 1 || v > kMaxSize)
        r.fail(key, detail::concat("must lie in [1, ", kMaxSize, "], got ", v));
      return v;
    };
    const std::string& type = spec.type;
    if (type == "linear") {
      // [features], or [tokens, features]: each position alike.
      if (shape.size() != 1 && shape.size() != 2) {
        r.fail("", "expects a flat input but gets " + shape_str(shape) +
                       "; add { type = \"flatten\" } before it");
      }
      int64_t in = r.integer("in", shape.back());
      if (in != shape.back())
        r.fail("in", detail::concat("is ", in, " but the input has ", shape.back(), " features"));
      if (r.flag("tie", false)) {  // the embedding's token table is the weight: no bias
        if (!embedding) r.fail("tie", "needs an embedding layer before it to tie to");
        const nn::Variable& table = embedding->tokens();
        if (table.size(1) != in) {
          r.fail("tie", detail::concat("the embedding's rows have ", table.size(1),
                                       " values but the input has ", in, " features"));
        }
        const int64_t out = r.integer("out", table.size(0));
        if (out != table.size(0)) {
          r.fail("out", detail::concat("is ", out, " but the tied embedding has ", table.size(0),
                                       " rows"));
        }
        shape.back() = out;
        budget.add(r, {}, shape);
        // A stage without the embedding holds a copy of its table, under the table's name.
        const std::string name = std::to_string(embedding_index) + ".tokens";
        const nn::Variable weight =
            kept && !(embedding_index >= keep.first && embedding_index < keep.last)
                ? model->hold_parameter(name,
                                        split_here ? split.hold(name, table.data()) : table.data())
                : table;
        add(std::make_shared<nn::TiedLinear>(weight));
        r.finish();
        continue;
      }
      int64_t out = positive("out", r.integer("out"));
      bool bias = r.flag("bias", true);
      shape.back() = out;
      budget.add(r, {{out, in}, {out}}, shape);
      add(std::make_shared<nn::Linear>(in, out, gen, nn::LinearOptions{.bias = bias}));
    } else if (type == "embedding") {
      if (shape.size() != 1) r.fail("", "expects token ids [tokens] but gets " + shape_str(shape));
      const int64_t vocab = positive("vocab", r.integer("vocab"));
      const int64_t dim = positive("dim", r.integer("dim"));
      const int64_t positions = positive("positions", r.integer("positions", shape[0]));
      if (positions < shape[0]) {
        r.fail("positions",
               detail::concat(positions, " is fewer than the ", shape[0], " tokens of a sample"));
      }
      budget.add(r, {{vocab, dim}, {positions, dim}}, {shape[0], dim});
      embedding = std::make_shared<nn::TokenEmbedding>(vocab, dim, positions, gen);
      embedding_index = i;
      add(embedding);
      shape = {shape[0], dim};
    } else if (type == "transformer_block") {
      if (shape.size() != 2) {
        r.fail("", "expects [tokens, features] (after an embedding) but gets " + shape_str(shape));
      }
      const int64_t dim = shape[1];
      const int64_t heads = positive("heads", r.integer("heads"));
      if (dim % heads != 0) {
        r.fail("heads", detail::concat(heads, " heads do not divide the width ", dim));
      }
      const int64_t hidden = positive("hidden", r.integer("hidden", 4 * dim));
      const bool causal = r.flag("causal", true);
      // Its activations: the attention scores of every head and the MLP's hidden layer dominate.
      budget.add(r, {{3 * dim, dim}, {dim, dim}, {hidden, dim}, {dim, hidden}, {8 * dim + hidden}},
                 {heads * shape[0] + 6 * dim + 2 * hidden, shape[0]});
      add(std::make_shared<nn::TransformerBlock>(dim, heads, hidden, causal, gen));
    } else if (type == "conv2d") {
      if (shape.size() != 3) {
        r.fail("", "expects [channels, height, width] input but gets " + shape_str(shape));
      }
      int64_t in = r.integer("in", shape[0]);
      if (in != shape[0])
        r.fail("in", detail::concat("is ", in, " but the input has ", shape[0], " channels"));
      int64_t out = positive("out", r.integer("out"));
      int64_t kernel = positive("kernel", r.integer("kernel"));
      int64_t stride = positive("stride", r.integer("stride", 1));
      int64_t padding = r.integer("padding", 0);
      if (padding < 0 || padding > kMaxSize) {
        r.fail("padding", detail::concat("must lie in [0, ", kMaxSize, "]"));
      }
      bool bias = r.flag("bias", true);
      int64_t h = (shape[1] + 2 * padding - kernel) / stride + 1;
      int64_t w = (shape[2] + 2 * padding - kernel) / stride + 1;
      if (h < 1 || w < 1) {
        r.fail("kernel", detail::concat(kernel, " does not fit input ", shape_str(shape),
                                        " with padding ", padding));
      }
      budget.add(r, {{out, in, kernel, kernel}, {out}}, {out, h, w});
      add(std::make_shared<nn::Conv2d>(
          in, out, kernel, gen,
          nn::Conv2dOptions{.stride = stride, .padding = padding, .bias = bias}));
      shape = {out, h, w};
    } else if (type == "maxpool2d") {
      if (shape.size() != 3) {
        r.fail("", "expects [channels, height, width] input but gets " + shape_str(shape));
      }
      int64_t kernel = positive("kernel", r.integer("kernel"));
      int64_t stride = positive("stride", r.integer("stride", kernel));
      int64_t padding = r.integer("padding", 0);
      if (padding < 0 || padding > kernel / 2) r.fail("padding", "must lie in [0, kernel/2]");
      int64_t h = (shape[1] + 2 * padding - kernel) / stride + 1;
      int64_t w = (shape[2] + 2 * padding - kernel) / stride + 1;
      if (h < 1 || w < 1) r.fail("kernel", "larger than the input " + shape_str(shape));
      budget.add(r, {}, {shape[0], h, w});
      add(std::make_shared<nn::MaxPool2d>(kernel, stride, padding));
      shape = {shape[0], h, w};
    } else if (type == "flatten") {
      add(std::make_shared<nn::Flatten>());
      shape = {shape_numel(shape)};
    } else if (type == "relu") {
      budget.add(r, {}, shape);
      add(std::make_shared<nn::ReLU>());
    } else if (type == "gelu") {
      budget.add(r, {}, shape);
      add(std::make_shared<nn::GELU>());
    } else if (type == "tanh") {
      budget.add(r, {}, shape);
      add(std::make_shared<nn::Tanh>());
    } else if (type == "sigmoid") {
      budget.add(r, {}, shape);
      add(std::make_shared<nn::Sigmoid>());
    } else if (type == "dropout") {
      double p = r.real("p", 0.5);
      if (p < 0 || p >= 1) r.fail("p", "must lie in [0, 1)");
      budget.add(r, {}, shape);
      add(std::make_shared<nn::Dropout>(p, dropout, shard));
    } else if (type == "layernorm") {
      double eps = r.real("eps", 1e-5);
      budget.add(r, {{shape.back()}, {shape.back()}}, shape);
      add(std::make_shared<nn::LayerNorm>(shape.back(), eps));
    } else if (type == "batchnorm") {
      if (shape.size() != 1 && shape.size() != 3) {
        r.fail("",
               "expects [features] or [channels, height, width] input, gets " + shape_str(shape));
      }
      double eps = r.real("eps", 1e-5);
      double momentum = r.real("momentum", 0.1);
      budget.add(r, {{shape[0]}, {shape[0]}, {shape[0]}, {shape[0]}}, shape);
      add(std::make_shared<nn::BatchNorm>(shape[0], eps, momentum));
    } else {
      r.fail("type", "unknown layer type '" + type +
                         "' (known: linear, conv2d, maxpool2d, flatten, relu, gelu, tanh, sigmoid, "
                         "dropout, layernorm, batchnorm, embedding, transformer_block)");
    }
    r.finish();
  }
  if (output_shape) *output_shape = shape;
  return model;
}

}  // namespace tessera::train
