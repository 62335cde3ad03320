// Runs tessera on the inputs tools/torch_reference.py wrote and writes tessera's outputs, so the
// script can compare them with PyTorch's. Usage: reference_check IN.bin OUT.bin
// Both files: u64 count, then per entry a length-prefixed name and a tensor (tensor_io format).
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "tessera/autograd/functions.h"
#include "tessera/nn/conv2d.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/normalization.h"
#include "tessera/optim/adagrad.h"
#include "tessera/optim/adam.h"
#include "tessera/optim/adamw.h"
#include "tessera/optim/sgd.h"
#include "tessera/tensor/tensor_io.h"

namespace {

using tessera::Tensor;
using tessera::autograd::Variable;
namespace ag = tessera::autograd;
namespace nn = tessera::nn;
namespace optim = tessera::optim;

using Tensors = std::map<std::string, Tensor>;

class Cases {
 public:
  explicit Cases(Tensors in) : in_(std::move(in)) {}
  const Tensor& in(const std::string& name) const {
    auto it = in_.find(name);
    if (it == in_.end()) throw tessera::ValueError("reference input missing: " + name);
    return it->second;
  }
  bool has(const std::string& prefix) const {
    auto it = in_.lower_bound(prefix);
    return it != in_.end() && it->first.rfind(prefix, 0) == 0;
  }
  void out(const std::string& name, const Tensor& t) { out_[name] = t; }
  const Tensors& outputs() const { return out_; }

 private:
  Tensors in_;
  Tensors out_;
};

// Sets a module's parameters from the inputs named prefix + parameter name.
void load_params(nn::Module& m, const Cases& c, const std::string& prefix) {
  for (auto& [name, p] : m.named_parameters()) {
    Tensor data = p.data();
    data.copy_from(c.in(prefix + name));
  }
}

// Runs forward, backpropagates the given output gradient and records output and gradients.
void run_module(Cases& c, const std::string& prefix, nn::Module& m) {
  load_params(m, c, prefix);
  Variable x(c.in(prefix + "x"), true);
  Variable y = m(x);
  y.backward(c.in(prefix + "gy"));
  c.out(prefix + "y", y.data());
  c.out(prefix + "dx", x.grad());
  for (auto& [name, p] : m.named_parameters()) c.out(prefix + "d" + name, p.grad());
  for (auto& [name, b] : m.named_buffers()) c.out(prefix + name, b);
}

void run_optimizer(Cases& c, const std::string& prefix,
                   const std::function<std::unique_ptr<optim::Optimizer>(Variable)>& make) {
  Variable p(c.in(prefix + "p0").clone(), true);
  auto opt = make(p);
  for (int step = 0; c.has(prefix + "g" + std::to_string(step)); ++step) {
    p.set_grad(c.in(prefix + "g" + std::to_string(step)).clone());
    opt->step();
    c.out(prefix + "p" + std::to_string(step + 1), p.data().clone());
  }
}

Tensors read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw tessera::ValueError("cannot open " + path);
  tessera::BinaryReader r(f, path);
  Tensors t;
  uint64_t n = r.read_u64();
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = r.read_string();
    t[name] = tessera::read_tensor(r);
  }
  return t;
}

void write_all(const std::string& path, const Tensors& tensors) {
  std::ofstream f(path, std::ios::binary);
  tessera::BinaryWriter w(f);
  w.write_u64(tensors.size());
  for (const auto& [name, t] : tensors) {
    w.write_string(name);
    tessera::write_tensor(w, t);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN.bin OUT.bin\n", argv[0]);
    return 2;
  }
  try {
    Cases c(read_all(argv[1]));
    nn::Linear linear(20, 30);
    run_module(c, "linear.", linear);
    nn::Conv2d conv(3, 8, 3, tessera::default_generator(), {.stride = 1, .padding = 1});
    run_module(c, "conv.", conv);
    nn::Conv2d conv_s2(3, 8, 3, tessera::default_generator(), {.stride = 2, .padding = 0});
    run_module(c, "conv_s2.", conv_s2);
    nn::MaxPool2d pool(2);
    run_module(c, "pool.", pool);
    nn::MaxPool2d pool3(3, 2, 1);
    run_module(c, "pool3.", pool3);
    nn::LayerNorm ln(16);
    run_module(c, "layernorm.", ln);
    nn::BatchNorm bn(6);
    run_module(c, "batchnorm.", bn);
    for (std::string name : {"ce.", "ce_smooth."}) {
      Variable logits(c.in(name + "logits"), true);
      Variable loss =
          ag::cross_entropy(logits, c.in(name + "labels"), c.in(name + "smoothing").item());
      loss.backward();
      c.out(name + "loss", loss.data());
      c.out(name + "dlogits", logits.grad());
    }
    run_optimizer(c, "sgd.", [](Variable p) {
      return std::make_unique<optim::Sgd>(
          std::vector{p}, optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-2});
    });
    run_optimizer(c, "nesterov.", [](Variable p) {
      return std::make_unique<optim::Sgd>(
          std::vector{p}, optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
    });
    run_optimizer(c, "adam.", [](Variable p) {
      return std::make_unique<optim::Adam>(std::vector{p},
                                           optim::AdamOptions{.lr = 1e-2, .weight_decay = 1e-2});
    });
    run_optimizer(c, "adamw.", [](Variable p) {
      return std::make_unique<optim::AdamW>(std::vector{p},
                                            optim::AdamWOptions{.lr = 1e-2, .weight_decay = 1e-2});
    });
    run_optimizer(c, "adagrad.", [](Variable p) {
      return std::make_unique<optim::Adagrad>(std::vector{p},
                                              optim::AdagradOptions{.lr = 1e-1, .lr_decay = 1e-3});
    });
    write_all(argv[2], c.outputs());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reference_check: %s\n", e.what());
    return 1;
  }
  return 0;
}
