#include "testing/gradcheck.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "tessera/autograd/grad_mode.h"
#include "tessera/core/random.h"

namespace tessera::testing {
namespace {

// Element k of a contiguous floating tensor, as double.
double get_element(const Tensor& t, int64_t k) {
  return TESSERA_DISPATCH_FLOATING(t.dtype(), "gradcheck",
                                   [&] { return static_cast<double>(t.data<scalar_t>()[k]); });
}

// Stores v at element k of a contiguous floating tensor; returns the value actually stored (v
// rounded to the tensor's dtype).
double set_element(const Tensor& t, int64_t k, double v) {
  return TESSERA_DISPATCH_FLOATING(t.dtype(), "gradcheck", [&] {
    t.data<scalar_t>()[k] = static_cast<scalar_t>(v);
    return static_cast<double>(t.data<scalar_t>()[k]);
  });
}

std::vector<double> as_doubles(const Tensor& t) {
  return t.to(DType::kFloat64).to_vector<double>();
}

std::string index_str(const Shape& shape, int64_t k) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] == 0 ? 0 : k % shape[d];
    k = shape[d] == 0 ? 0 : k / shape[d];
  }
  return shape_str(index);
}

// The values of one input, contiguous, in dtype.
Tensor draw_values(const InputSpec& spec, Generator& gen, DType dtype) {
  Tensor t = Tensor::empty(spec.shape, dtype);
  if (spec.fixed.defined()) {
    if (spec.fixed.shape() != spec.shape) {
      throw std::invalid_argument("gradcheck: fixed values " + shape_str(spec.fixed.shape()) +
                                  " do not have the input's shape " + shape_str(spec.shape));
    }
    t.copy_from(spec.fixed);
    return t;
  }
  const int64_t n = t.numel();
  std::vector<double> v(static_cast<size_t>(n));
  switch (spec.values) {
    case Values::kNormal:
      for (auto& x : v) x = gen.normal();
      break;
    case Values::kPositive:
      for (auto& x : v) x = gen.uniform(0.5, 2.0);
      break;
    case Values::kAwayFromZero:
      for (auto& x : v) x = (gen.uniform() < 0.5 ? -1.0 : 1.0) * gen.uniform(0.2, 1.2);
      break;
    case Values::kDistinct: {
      for (int64_t i = 0; i < n; ++i) v[i] = 0.05 * (static_cast<double>(i) - n / 2);
      for (int64_t i = n - 1; i > 0; --i) {
        std::swap(v[i], v[gen.below(static_cast<uint64_t>(i + 1))]);
      }
      break;
    }
    case Values::kProbability:
      for (auto& x : v) x = gen.uniform(0.05, 0.95);
      break;
  }
  for (int64_t i = 0; i < n; ++i) set_element(t, i, v[i]);
  return t;
}

// A fresh tensor with the values of `values` in the requested layout.
Tensor build_input(const Tensor& values, Layout layout) {
  const Shape& shape = values.shape();
  switch (layout) {
    case Layout::kContiguous:
      return values.clone();
    case Layout::kTransposed: {
      if (values.dim() < 2) {
        throw std::invalid_argument("gradcheck: Layout::kTransposed needs dim >= 2, got " +
                                    shape_str(shape));
      }
      Shape swapped = shape;
      std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
      Tensor view = Tensor::empty(swapped, values.dtype()).transpose(-1, -2);
      view.copy_from(values);
      if (view.is_contiguous()) {
        throw std::invalid_argument("gradcheck: Layout::kTransposed of " + shape_str(shape) +
                                    " is still contiguous; pick a shape or layout that is not");
      }
      return view;
    }
    case Layout::kStrided: {
      if (values.dim() < 1 || values.size(-1) < 2) {
        throw std::invalid_argument(
            "gradcheck: Layout::kStrided needs a last axis of 2 or more, got " + shape_str(shape));
      }
      Shape wide = shape;
      wide.back() *= 2;
      // NaN in the gaps: a kernel that reads them poisons its output and fails the check.
      Tensor base = Tensor::full(wide, std::numeric_limits<double>::quiet_NaN(), values.dtype());
      Tensor view = base.slice(-1, 0, wide.back(), 2);
      view.copy_from(values);
      return view;
    }
  }
  throw std::invalid_argument("gradcheck: unknown layout");
}

std::vector<Variable> make_variables(const std::vector<InputSpec>& specs,
                                     const std::vector<Tensor>& values) {
  std::vector<Variable> vars;
  vars.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    vars.emplace_back(build_input(values[i], specs[i].layout), specs[i].requires_grad);
  }
  return vars;
}

// y_j at the given values, without recording a graph.
std::vector<double> evaluate(const GradcheckFn& f, const std::vector<InputSpec>& specs,
                             const std::vector<Tensor>& values, const Shape& expected_shape) {
  autograd::NoGradGuard no_grad;
  Variable y = f(make_variables(specs, values));
  if (y.shape() != expected_shape) {
    throw std::logic_error("gradcheck: output shape changed from " + shape_str(expected_shape) +
                           " to " + shape_str(y.shape()) + " between evaluations");
  }
  return as_doubles(y.data());
}

}  // namespace

GradcheckOptions float64_options() { return GradcheckOptions{}; }

GradcheckOptions float32_options() {
  return GradcheckOptions{.dtype = DType::kFloat32, .eps = 1e-2, .floor = 1e-1, .tolerance = 1e-2};
}

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<InputSpec>& inputs,
                          const GradcheckOptions& options) {
  GradcheckResult result;
  Generator gen(options.seed);
  std::vector<Tensor> values;
  for (const auto& spec : inputs) values.push_back(draw_values(spec, gen, options.dtype));

  // Analytic: backward of sum(w * y) is y.backward(w).
  std::vector<Variable> vars = make_variables(inputs, values);
  Variable y = f(vars);
  if (!y.defined()) {
    result.report = "the function returned an undefined Variable";
    return result;
  }
  if (y.dtype() != options.dtype) {
    result.report = std::string("output dtype ") + dtype_name(y.dtype()) + " differs from " +
                    dtype_name(options.dtype);
    return result;
  }
  const Shape out_shape = y.shape();
  Tensor w = Tensor::empty(out_shape, options.dtype);
  for (int64_t j = 0; j < w.numel(); ++j) {
    set_element(w, j, (gen.uniform() < 0.5 ? -1.0 : 1.0) * gen.uniform(0.5, 1.5));
  }
  const std::vector<double> weights = as_doubles(w);
  bool any_grad =
      std::any_of(inputs.begin(), inputs.end(), [](const InputSpec& s) { return s.requires_grad; });
  if (any_grad) {
    if (!y.requires_grad()) {
      result.report = "the output does not require grad although an input does";
      return result;
    }
    y.backward(w);
  }

  std::ostringstream worst;
  bool have_worst = false;
  bool ok = true;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad) continue;
    const Tensor& g = vars[i].grad();
    std::vector<double> analytic =
        g.defined() ? as_doubles(g) : std::vector<double>(static_cast<size_t>(values[i].numel()));
    if (static_cast<int64_t>(analytic.size()) != values[i].numel()) {
      result.report = "input " + std::to_string(i) + ": gradient " + shape_str(g.shape()) +
                      " does not match " + shape_str(inputs[i].shape);
      return result;
    }
    std::vector<Tensor> perturbed = values;
    for (int64_t k = 0; k < values[i].numel(); ++k) {
      const double x = get_element(values[i], k);
      perturbed[i] = values[i].clone();
      const double x_plus = set_element(perturbed[i], k, x + options.eps);
      std::vector<double> y_plus = evaluate(f, inputs, perturbed, out_shape);
      const double x_minus = set_element(perturbed[i], k, x - options.eps);
      std::vector<double> y_minus = evaluate(f, inputs, perturbed, out_shape);
      double numeric = 0.0;
      for (size_t j = 0; j < weights.size(); ++j) numeric += weights[j] * (y_plus[j] - y_minus[j]);
      numeric /= x_plus - x_minus;
      const double a = analytic[static_cast<size_t>(k)];
      const double error =
          std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), options.floor});
      // NaN (a gap read, an overflow) ranks as the worst error and fails.
      const double rank = std::isnan(error) ? std::numeric_limits<double>::infinity() : error;
      if (rank > result.max_error || !have_worst) {
        have_worst = true;
        result.max_error = rank;
        worst.str("");
        worst.precision(10);
        worst << "input " << i << " " << shape_str(inputs[i].shape) << " element "
              << index_str(inputs[i].shape, k) << ": analytic " << a << ", numeric " << numeric
              << ", error " << error << " (tolerance " << options.tolerance << ", floor "
              << options.floor << ", eps " << options.eps << ", " << dtype_name(options.dtype)
              << ")";
      }
      ok = ok && error < options.tolerance;  // false for NaN
    }
    perturbed[i] = values[i];
  }
  result.passed = ok;
  result.report = worst.str();
  return result;
}

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  std::vector<InputSpec> specs;
  for (const Tensor& t : inputs) specs.push_back(InputSpec{.shape = t.shape(), .fixed = t});
  return gradcheck(f, specs, options);
}

namespace {
std::vector<GradcheckCase>& registry() {
  static std::vector<GradcheckCase> cases;
  return cases;
}
}  // namespace

bool register_gradcheck(GradcheckCase c) {
  if (c.name.empty() || !std::all_of(c.name.begin(), c.name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
      })) {
    throw std::invalid_argument("register_gradcheck: bad name '" + c.name +
                                "' (letters, digits and '_' only)");
  }
  for (const auto& existing : registry()) {
    if (existing.name == c.name) {
      throw std::invalid_argument("register_gradcheck: '" + c.name + "' registered twice");
    }
  }
  registry().push_back(std::move(c));
  return true;
}

const std::vector<GradcheckCase>& registered_gradchecks() { return registry(); }

std::vector<std::string> registered_gradcheck_names() {
  std::vector<std::string> names;
  for (const auto& c : registry()) names.push_back(c.name);
  return names;
}

const GradcheckCase& find_gradcheck(const std::string& name) {
  for (const auto& c : registry()) {
    if (c.name == name) return c;
  }
  throw std::invalid_argument("find_gradcheck: no case named '" + name + "'");
}

}  // namespace tessera::testing
