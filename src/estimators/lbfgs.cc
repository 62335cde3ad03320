#include "tessera/estimators/lbfgs.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <numeric>
#include <optional>
#include <utility>

#include "tessera/core/error.h"

namespace tessera::estimators {
namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

struct Pair {
  std::vector<double> s;  // x step
  std::vector<double> y;  // gradient change
  double rho = 0.0;       // 1 / (y . s)
};

// The two-loop recursion: -H g, H the inverse Hessian the pairs describe.
std::vector<double> descent_direction(const std::deque<Pair>& pairs, const std::vector<double>& g) {
  std::vector<double> q = g;
  std::vector<double> alpha(pairs.size());
  for (size_t i = pairs.size(); i-- > 0;) {
    alpha[i] = pairs[i].rho * dot(pairs[i].s, q);
    for (size_t k = 0; k < q.size(); ++k) q[k] -= alpha[i] * pairs[i].y[k];
  }
  if (!pairs.empty()) {
    const Pair& last = pairs.back();
    const double gamma = dot(last.s, last.y) / dot(last.y, last.y);
    for (double& e : q) e *= gamma;
  }
  for (size_t i = 0; i < pairs.size(); ++i) {
    const double beta = pairs[i].rho * dot(pairs[i].y, q);
    for (size_t k = 0; k < q.size(); ++k) q[k] += (alpha[i] - beta) * pairs[i].s[k];
  }
  for (double& e : q) e = -e;
  return q;
}

// The point x + step d, its value and gradient.
struct Trial {
  double step = 0.0;
  double value = 0.0;
  double slope = 0.0;  // the gradient's component along d
};

// A step satisfying the strong Wolfe conditions (enough decrease, and a slope cut by c2): the
// bracketing and zoom of Nocedal and Wright's algorithms 3.5 and 3.6, with the zoom taking the
// minimum of the cubic through the bracket's ends (bisection where that falls outside). Leaves
// x_new and g_new at the step returned; false when none was found within kMaxEvaluations.
class WolfeSearch {
 public:
  WolfeSearch(const Objective& f, const std::vector<double>& x, const std::vector<double>& d,
              double value, double slope, std::vector<double>& x_new, std::vector<double>& g_new)
      : f_(f), x_(x), d_(d), value0_(value), slope0_(slope), x_new_(x_new), g_new_(g_new) {}

  std::optional<Trial> run(double step) {
    Trial previous{0.0, value0_, slope0_};
    for (int i = 0; i < kMaxEvaluations; ++i) {
      const Trial t = evaluate(step);
      if (!std::isfinite(t.value) || t.value > value0_ + kC1 * t.step * slope0_ ||
          (i > 0 && t.value >= previous.value)) {
        return zoom(previous, t);
      }
      if (std::abs(t.slope) <= -kC2 * slope0_) return t;
      if (t.slope >= 0) return zoom(t, previous);
      previous = t;
      step *= 2.0;
    }
    return std::nullopt;
  }

  [[nodiscard]] int64_t evaluations() const { return evaluations_; }

 private:
  static constexpr double kC1 = 1e-4;
  static constexpr double kC2 = 0.9;
  static constexpr int kMaxEvaluations = 40;

  Trial evaluate(double step) {
    for (size_t i = 0; i < x_new_.size(); ++i) x_new_[i] = x_[i] + step * d_[i];
    ++evaluations_;
    const double value = f_(x_new_, g_new_);
    return {step, value, std::isfinite(value) ? dot(g_new_, d_) : 0.0};
  }

  // lo: the end with the lower value, satisfying sufficient decrease; hi: the other.
  std::optional<Trial> zoom(Trial lo, Trial hi) {
    for (int i = 0; i < kMaxEvaluations; ++i) {
      const double width = hi.step - lo.step;
      if (std::abs(width) < 1e-16 * std::max(1.0, std::abs(lo.step))) break;
      double step = cubic_minimum(lo, hi);
      const double low = std::min(lo.step, hi.step);
      const double high = std::max(lo.step, hi.step);
      const double margin = 0.1 * (high - low);
      if (!(step > low + margin && step < high - margin)) step = 0.5 * (lo.step + hi.step);
      const Trial t = evaluate(step);
      if (!std::isfinite(t.value) || t.value > value0_ + kC1 * t.step * slope0_ ||
          t.value >= lo.value) {
        hi = t;
        continue;
      }
      if (std::abs(t.slope) <= -kC2 * slope0_) return t;
      if (t.slope * (hi.step - lo.step) >= 0) hi = lo;
      lo = t;
    }
    // The bracket closed without the curvature condition: the best point seen still lowers the
    // objective enough, so take it.
    if (lo.step > 0) {
      evaluate(lo.step);
      return lo;
    }
    return std::nullopt;
  }

  // The minimum of the cubic matching the values and slopes at a and b (NaN when it has none).
  static double cubic_minimum(const Trial& a, const Trial& b) {
    if (!std::isfinite(b.value)) return std::nan("");
    const double h = b.step - a.step;
    const double d1 = a.slope + b.slope - 3 * (a.value - b.value) / (a.step - b.step);
    const double disc = d1 * d1 - a.slope * b.slope;
    if (disc < 0) return std::nan("");
    const double d2 = std::copysign(std::sqrt(disc), h);
    return b.step - h * (b.slope + d2 - d1) / (b.slope - a.slope + 2 * d2);
  }

  const Objective& f_;
  const std::vector<double>& x_;
  const std::vector<double>& d_;
  double value0_;
  double slope0_;
  std::vector<double>& x_new_;
  std::vector<double>& g_new_;
  int64_t evaluations_ = 0;
};

// The gradient of f + sum l1_i |x_i| where it is smooth; at x_i = 0, the one-sided derivative that
// descends, or 0 when neither does.
std::vector<double> pseudo_gradient(const std::vector<double>& x, const std::vector<double>& g,
                                    const std::vector<double>& l1) {
  std::vector<double> pg = g;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = l1[i];
    if (w == 0) continue;
    if (x[i] > 0) {
      pg[i] = g[i] + w;
    } else if (x[i] < 0) {
      pg[i] = g[i] - w;
    } else if (g[i] + w < 0) {
      pg[i] = g[i] + w;
    } else if (g[i] - w > 0) {
      pg[i] = g[i] - w;
    } else {
      pg[i] = 0;
    }
  }
  return pg;
}

double l1_norm(const std::vector<double>& x, const std::vector<double>& l1) {
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) s += l1[i] * std::abs(x[i]);
  return s;
}

double sign(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); }

// OWL-QN's direction: L-BFGS's from the pseudo-gradient, less the components that would climb.
std::vector<double> orthant_direction(const std::deque<Pair>& pairs,
                                      const std::vector<double>& pg) {
  std::vector<double> d = descent_direction(pairs, pg);
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] * pg[i] >= 0) d[i] = 0;
  }
  return d;
}

// Whether r is done before another iteration: its gradient (largest component `gradient`) is
// within the tolerance, or the iterations are spent; r then says which.
bool finished(LbfgsResult& r, double gradient, const LbfgsOptions& options) {
  if (gradient <= options.gradient_tolerance) {
    r.converged = true;
    r.stop = "the gradient is within the tolerance";
    return true;
  }
  if (r.iterations >= options.max_iterations) {
    r.stop = "the iteration limit was reached";
    return true;
  }
  return false;
}

// Moves r to the step found (x_new, its gradient g_new, value_new; the old point is left in them),
// keeping the step's (s, y) pair when its curvature is positive, at most `history` pairs. True
// when the objective stopped decreasing, r then says so.
bool take_step(LbfgsResult& r, std::vector<double>& g, std::vector<double>& x_new,
               std::vector<double>& g_new, double value_new, std::deque<Pair>& pairs,
               const LbfgsOptions& options) {
  Pair p{std::vector<double>(r.x.size()), std::vector<double>(r.x.size()), 0.0};
  for (size_t i = 0; i < x_new.size(); ++i) {
    p.s[i] = x_new[i] - r.x[i];
    p.y[i] = g_new[i] - g[i];
  }
  const double sy = dot(p.s, p.y);
  if (sy > 1e-12 * dot(p.y, p.y)) {
    p.rho = 1.0 / sy;
    pairs.push_back(std::move(p));
    if (static_cast<int64_t>(pairs.size()) > options.history) pairs.pop_front();
  }
  const double decrease = r.value - value_new;
  std::swap(r.x, x_new);
  std::swap(g, g_new);
  r.value = value_new;
  ++r.iterations;
  if (options.on_iteration) options.on_iteration(r.iterations, r.value);
  if (decrease <= options.value_tolerance * std::max(1.0, std::abs(r.value))) {
    r.converged = true;
    r.stop = "the objective stopped decreasing";
    return true;
  }
  return false;
}

}  // namespace

LbfgsResult minimize_lbfgs(const Objective& f, std::vector<double> x0,
                           const LbfgsOptions& options) {
  if (options.history < 1 || options.max_iterations < 0) {
    throw ValueError(detail::concat("minimize_lbfgs: history ", options.history,
                                    ", max_iterations ", options.max_iterations));
  }
  LbfgsResult r;
  r.x = std::move(x0);
  std::vector<double> g(r.x.size());
  r.value = f(r.x, g);
  r.evaluations = 1;
  if (!std::isfinite(r.value))
    throw ValueError("minimize_lbfgs: the objective is not finite at x0");
  std::deque<Pair> pairs;
  std::vector<double> x_new(r.x.size());
  std::vector<double> g_new(r.x.size());
  while (true) {
    if (finished(r, max_abs(g), options)) return r;
    std::vector<double> d = descent_direction(pairs, g);
    double slope = dot(d, g);
    if (slope >= 0) {  // not a descent direction: start again from the gradient
      pairs.clear();
      d = descent_direction(pairs, g);
      slope = dot(d, g);
    }
    // The first step has no curvature to scale it: a unit step along the gradient's direction.
    const double step = pairs.empty() ? std::min(1.0, 1.0 / std::sqrt(dot(g, g))) : 1.0;
    WolfeSearch search(f, r.x, d, r.value, slope, x_new, g_new);
    const std::optional<Trial> found = search.run(step);
    r.evaluations += search.evaluations();
    if (!found) {
      r.converged = true;  // no step lowers it: as low as this precision allows
      r.stop = "no step along the search direction lowers the objective";
      return r;
    }
    const double value_new = found->value;
    if (take_step(r, g, x_new, g_new, value_new, pairs, options)) return r;
  }
}

LbfgsResult minimize_owlqn(const Objective& f, std::vector<double> x0,
                           const std::vector<double>& l1, const LbfgsOptions& options) {
  if (options.history < 1 || options.max_iterations < 0 || l1.size() != x0.size()) {
    throw ValueError(detail::concat("minimize_owlqn: history ", options.history,
                                    ", max_iterations ", options.max_iterations, ", ", l1.size(),
                                    " L1 weights for ", x0.size(), " coordinates"));
  }
  constexpr double kC1 = 1e-4;
  constexpr int kMaxHalvings = 60;
  LbfgsResult r;
  r.x = std::move(x0);
  std::vector<double> g(r.x.size());
  r.value = f(r.x, g) + l1_norm(r.x, l1);
  r.evaluations = 1;
  if (!std::isfinite(r.value))
    throw ValueError("minimize_owlqn: the objective is not finite at x0");
  std::deque<Pair> pairs;
  std::vector<double> x_new(r.x.size());
  std::vector<double> g_new(r.x.size());
  while (true) {
    const std::vector<double> pg = pseudo_gradient(r.x, g, l1);
    if (finished(r, max_abs(pg), options)) return r;
    std::vector<double> d = orthant_direction(pairs, pg);
    if (dot(d, pg) >= 0) {  // nothing descends along it: start again from the pseudo-gradient
      pairs.clear();
      d = orthant_direction(pairs, pg);
    }
    // The orthant of the step: each coordinate's sign, or for a 0 the sign it descends towards.
    std::vector<double> orthant(r.x.size());
    for (size_t i = 0; i < r.x.size(); ++i) orthant[i] = r.x[i] != 0 ? sign(r.x[i]) : -sign(pg[i]);
    double step = pairs.empty() ? std::min(1.0, 1.0 / std::sqrt(dot(pg, pg))) : 1.0;
    double value_new = 0.0;
    bool found = false;
    for (int i = 0; i < kMaxHalvings && !found; ++i, step *= 0.5) {
      double expected = 0.0;  // the first-order decrease, along pg
      for (size_t k = 0; k < x_new.size(); ++k) {
        double v = r.x[k] + step * d[k];
        if (l1[k] > 0 && sign(v) != orthant[k]) v = 0;  // no crossing of zero
        x_new[k] = v;
        expected += pg[k] * (v - r.x[k]);
      }
      ++r.evaluations;
      value_new = f(x_new, g_new) + l1_norm(x_new, l1);
      found = std::isfinite(value_new) && value_new <= r.value + kC1 * expected;
    }
    if (!found) {
      r.converged = true;
      r.stop = "no step along the search direction lowers the objective";
      return r;
    }
    if (take_step(r, g, x_new, g_new, value_new, pairs, options)) return r;
  }
}

}  // namespace tessera::estimators
