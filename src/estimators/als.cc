// ALS's fit: the ratings sent to their users' and their items' owners once, then alternating
// least-squares steps, each followed by an allgather of the factors it solved.
#include "tessera/estimators/als.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "als_ratings.h"
#include "collective.h"
#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/core/thread_pool.h"

namespace tessera::estimators {
namespace {

constexpr uint64_t kItemFactorStream = 0xA15;

// One side's ratings (the users' or the items'), grouped by the ids this process owns (id mod P
// == rank: local index id / P), each group in the order of the other side's ids.
struct Side {
  int64_t count = 0;          // ids on this side, over every process
  std::vector<int64_t> from;  // [owned + 1]
  std::vector<int32_t> other;
  std::vector<float> value;
  [[nodiscard]] int64_t owned() const { return static_cast<int64_t>(from.size()) - 1; }
};

Side group_side(std::vector<Rating> ratings, bool by_user, int64_t count, int rank, int p) {
  const auto id = [&](const Rating& r) { return by_user ? r.user : r.item; };
  const auto other = [&](const Rating& r) { return by_user ? r.item : r.user; };
  std::sort(ratings.begin(), ratings.end(), [&](const Rating& a, const Rating& b) {
    return std::tuple(id(a), other(a), a.value) < std::tuple(id(b), other(b), b.value);
  });
  Side s;
  s.count = count;
  const int64_t owned = count > rank ? (count - rank + p - 1) / p : 0;
  s.from.assign(static_cast<size_t>(owned + 1), 0);
  for (const Rating& r : ratings) ++s.from[static_cast<size_t>(id(r) / p + 1)];
  for (size_t j = 1; j < s.from.size(); ++j) s.from[j] += s.from[j - 1];
  for (const Rating& r : ratings) {
    s.other.push_back(other(r));
    s.value.push_back(r.value);
  }
  return s;
}

// Solves a x = b for x (into b), a (k x k, row-major, symmetric) positive definite, by Cholesky.
// False when it is not.
bool cholesky_solve(std::vector<double>& a, std::vector<double>& b, int64_t k) {
  const auto at = [&](int64_t i, int64_t j) -> double& {
    return a[static_cast<size_t>(i * k + j)];
  };
  for (int64_t j = 0; j < k; ++j) {
    double d = at(j, j);
    for (int64_t q = 0; q < j; ++q) d -= at(j, q) * at(j, q);
    if (!(d > 0)) return false;
    at(j, j) = std::sqrt(d);
    for (int64_t i = j + 1; i < k; ++i) {
      double v = at(i, j);
      for (int64_t q = 0; q < j; ++q) v -= at(i, q) * at(j, q);
      at(i, j) = v / at(j, j);
    }
  }
  for (int64_t i = 0; i < k; ++i) {  // L z = b
    double v = b[static_cast<size_t>(i)];
    for (int64_t q = 0; q < i; ++q) v -= at(i, q) * b[static_cast<size_t>(q)];
    b[static_cast<size_t>(i)] = v / at(i, i);
  }
  for (int64_t i = k - 1; i >= 0; --i) {  // L^T x = z
    double v = b[static_cast<size_t>(i)];
    for (int64_t q = i + 1; q < k; ++q) v -= at(q, i) * b[static_cast<size_t>(q)];
    b[static_cast<size_t>(i)] = v / at(i, i);
  }
  return true;
}

// The factors of the ids `side` owns, [owned, k], each solved from the fixed side's factors
// (all of them, [other count, k]) its ratings touch; `gram` is fixed^T fixed (implicit only).
std::vector<float> solve_side(const Side& side, const std::vector<float>& fixed,
                              const std::vector<double>& gram, const AlsOptions& o, int rank, int p,
                              const char* what) {
  const int64_t k = o.factors;
  std::vector<float> out(static_cast<size_t>(side.owned() * k), 0.0F);
  parallel_for(side.owned(), grain_for(64 * k * k), [&](int64_t begin, int64_t end) {
    std::vector<double> a(static_cast<size_t>(k * k));
    std::vector<double> b(static_cast<size_t>(k));
    for (int64_t j = begin; j < end; ++j) {
      if (o.implicit) {
        a = gram;
      } else {
        std::fill(a.begin(), a.end(), 0.0);
      }
      std::fill(b.begin(), b.end(), 0.0);
      double n = 0;
      for (int64_t e = side.from[static_cast<size_t>(j)]; e < side.from[static_cast<size_t>(j + 1)];
           ++e) {
        const float* y = fixed.data() + static_cast<size_t>(side.other[static_cast<size_t>(e)]) * k;
        const double r = side.value[static_cast<size_t>(e)];
        double weight = 1.0;  // of y y^T in a
        double target = r;    // of y in b
        if (o.implicit) {
          weight = o.alpha * std::abs(r);
          target = r > 0 ? 1.0 + weight : 0.0;
          n += r > 0 ? 1 : 0;
        } else {
          n += 1;
        }
        for (int64_t i = 0; i < k; ++i) {
          const double wy = weight * y[i];
          for (int64_t q = 0; q <= i; ++q) a[static_cast<size_t>(i * k + q)] += wy * y[q];
          b[static_cast<size_t>(i)] += target * y[i];
        }
      }
      if (n == 0) continue;  // no preference to fit: factors 0
      for (int64_t i = 0; i < k; ++i) {
        a[static_cast<size_t>(i * k + i)] += o.l2 * n;
        for (int64_t q = 0; q < i; ++q)
          a[static_cast<size_t>(q * k + i)] = a[static_cast<size_t>(i * k + q)];
      }
      if (!cholesky_solve(a, b, k)) {
        throw ValueError(detail::concat("ALS: the least-squares system of ", what, " ",
                                        rank + j * p, " is singular; raise l2"));
      }
      for (int64_t i = 0; i < k; ++i)
        out[static_cast<size_t>(j * k + i)] = static_cast<float>(b[static_cast<size_t>(i)]);
    }
  });
  return out;
}

// Every id's factors [count, k] from each process's owned ones (id = rank + P x local index).
std::vector<float> gather_factors(comm::ProcessGroup* group, const std::vector<float>& owned,
                                  int64_t count, int64_t k) {
  const int p = group == nullptr ? 1 : group->size();
  if (p == 1) return owned;
  const int64_t most = (count + p - 1) / p;
  std::vector<float> block(static_cast<size_t>(most * k), 0.0F);
  std::copy(owned.begin(), owned.end(), block.begin());
  std::vector<float> all_blocks(block.size() * static_cast<size_t>(p));
  group->allgather(block.data(), all_blocks.data(), block.size(), comm::DataType::kFloat32)->wait();
  std::vector<float> all(static_cast<size_t>(count * k));
  for (int64_t id = 0; id < count; ++id) {
    const float* from = all_blocks.data() + static_cast<size_t>(((id % p) * most + id / p) * k);
    std::copy(from, from + k, all.begin() + id * k);
  }
  return all;
}

// fixed^T fixed [k, k], in id order.
std::vector<double> gram_of(const std::vector<float>& fixed, int64_t k) {
  std::vector<double> g(static_cast<size_t>(k * k), 0.0);
  for (size_t at = 0; at < fixed.size(); at += static_cast<size_t>(k)) {
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t q = 0; q < k; ++q)
        g[static_cast<size_t>(i * k + q)] += double{fixed[at + i]} * fixed[at + q];
    }
  }
  return g;
}

// The objective's terms over the users this process owns: their ratings' losses and their
// factors' penalty, and the items' penalty over the items it owns.
double objective_part(const Side& users, const Side& items, const std::vector<float>& x,
                      const std::vector<float>& y, const std::vector<double>& gram_y,
                      const AlsOptions& o, int rank, int p) {
  const int64_t k = o.factors;
  double sum = 0;
  const auto penalty = [&](const Side& side, const std::vector<float>& f) {
    for (int64_t j = 0; j < side.owned(); ++j) {
      double n = 0;
      for (int64_t e = side.from[static_cast<size_t>(j)]; e < side.from[static_cast<size_t>(j + 1)];
           ++e) {
        n += !o.implicit || side.value[static_cast<size_t>(e)] > 0 ? 1 : 0;
      }
      const float* v = f.data() + (rank + j * p) * k;
      sum += o.l2 * n * factor_dot(v, v, k);
    }
  };
  penalty(users, x);
  penalty(items, y);
  for (int64_t j = 0; j < users.owned(); ++j) {
    const float* xu = x.data() + (rank + j * p) * k;
    if (o.implicit) {  // every pair: preference 0 at confidence 1, corrected at the rated ones
      for (int64_t i = 0; i < k; ++i) {
        for (int64_t q = 0; q < k; ++q)
          sum += xu[i] * gram_y[static_cast<size_t>(i * k + q)] * xu[q];
      }
    }
    for (int64_t e = users.from[static_cast<size_t>(j)]; e < users.from[static_cast<size_t>(j + 1)];
         ++e) {
      const double r = users.value[static_cast<size_t>(e)];
      const double s = factor_dot(
          xu, y.data() + static_cast<int64_t>(users.other[static_cast<size_t>(e)]) * k, k);
      if (o.implicit) {
        const double c = 1.0 + o.alpha * std::abs(r);
        const double pref = r > 0 ? 1.0 : 0.0;
        sum += c * (pref - s) * (pref - s) - s * s;
      } else {
        sum += (r - s) * (r - s);
      }
    }
  }
  return sum;
}

void check_als_options(const AlsOptions& o) {
  if (o.factors < 1 || o.factors > 1024) {
    throw ValueError(detail::concat("ALS: factors ", o.factors, " must lie in [1, 1024]"));
  }
  if (!(o.l2 > 0) || o.iterations < 1 || !(o.alpha >= 0)) {
    throw ValueError(detail::concat("ALS: l2 ", o.l2, " must be > 0, iterations ", o.iterations,
                                    " >= 1, alpha ", o.alpha, " >= 0"));
  }
}

// The items each user rated, ascending, every process getting all users' (from the owners').
void keep_rated(const Side& users, comm::ProcessGroup* group, int rank, int p, AlsModel& m) {
  std::vector<double> counts(static_cast<size_t>(m.users), 0.0);
  std::vector<float> mine;
  for (int64_t j = 0; j < users.owned(); ++j) {
    const auto first = users.from[static_cast<size_t>(j)];
    const auto last = users.from[static_cast<size_t>(j + 1)];
    counts[static_cast<size_t>(rank + j * p)] = static_cast<double>(last - first);
    for (auto e = first; e < last; ++e)
      mine.push_back(static_cast<float>(users.other[static_cast<size_t>(e)]));
  }
  sum_over(group, counts);
  const std::vector<float> all = gather_rows(group, mine);  // rank by rank, each its users in order
  m.rated_from.assign(static_cast<size_t>(m.users + 1), 0);
  for (int64_t u = 0; u < m.users; ++u) {
    m.rated_from[static_cast<size_t>(u + 1)] =
        m.rated_from[static_cast<size_t>(u)] + static_cast<int64_t>(counts[static_cast<size_t>(u)]);
  }
  m.rated.resize(all.size());
  size_t at = 0;
  for (int r = 0; r < p; ++r) {
    for (int64_t u = r; u < m.users; u += p) {
      for (auto e = m.rated_from[static_cast<size_t>(u)];
           e < m.rated_from[static_cast<size_t>(u + 1)]; ++e) {
        m.rated[static_cast<size_t>(e)] = static_cast<int32_t>(all[at++]);
      }
    }
  }
  m.item_ratings.assign(static_cast<size_t>(m.items), 0);
  for (int32_t i : m.rated) ++m.item_ratings[static_cast<size_t>(i)];
}

}  // namespace

AlsFit fit_als(RowSource& rows, comm::ProcessGroup* group, const AlsOptions& o) {
  check_als_options(o);
  check_every_process_has_rows(rows, group, "ALS");
  const int rank = group == nullptr ? 0 : group->rank();
  const int p = group == nullptr ? 1 : group->size();
  std::vector<Rating> ratings = read_ratings(rows);
  std::vector<double> ids{0.0, 0.0};  // users, items: the largest id + 1 on any process
  for (const Rating& r : ratings) {
    ids[0] = std::max(ids[0], r.user + 1.0);
    ids[1] = std::max(ids[1], r.item + 1.0);
  }
  std::vector<double> size{static_cast<double>(ratings.size())};
  sum_over(group, ids, comm::ReduceOp::kMax);
  sum_over(group, size);
  AlsFit fit;
  fit.ratings = static_cast<int64_t>(size[0]);
  AlsModel& m = fit.model;
  m.users = static_cast<int64_t>(ids[0]);
  m.items = static_cast<int64_t>(ids[1]);
  m.factors = o.factors;
  m.implicit = o.implicit;
  const int64_t k = o.factors;
  const Side users = group_side(send_to_owners(group, ratings, true), true, m.users, rank, p);
  const Side items = group_side(send_to_owners(group, ratings, false), false, m.items, rank, p);
  ratings = {};  // the sides hold them now

  // The first item factors: positive draws keyed by (seed, item, factor), scaled to length 1.
  m.item_factors.resize(static_cast<size_t>(m.items * k));
  for (int64_t i = 0; i < m.items; ++i) {
    float* v = m.item_factors.data() + i * k;
    for (int64_t q = 0; q < k; ++q) {
      v[q] = static_cast<float>(
          keyed_uniform(o.seed, kItemFactorStream, static_cast<uint64_t>(i * k + q)) + 0.01);
    }
    const auto norm = static_cast<float>(std::sqrt(factor_dot(v, v, k)));
    for (int64_t q = 0; q < k; ++q) v[q] /= norm;
  }
  const std::vector<double> none;
  for (int64_t t = 1; t <= o.iterations; ++t) {
    const auto gram_items = o.implicit ? gram_of(m.item_factors, k) : none;
    m.user_factors = gather_factors(
        group, solve_side(users, m.item_factors, gram_items, o, rank, p, "user"), m.users, k);
    const auto gram_users = o.implicit ? gram_of(m.user_factors, k) : none;
    m.item_factors = gather_factors(
        group, solve_side(items, m.user_factors, gram_users, o, rank, p, "item"), m.items, k);
    std::vector<double> objective{objective_part(users, items, m.user_factors, m.item_factors,
                                                 o.implicit ? gram_of(m.item_factors, k) : none, o,
                                                 rank, p)};
    sum_over(group, objective);
    fit.objective = objective[0] / std::max(1.0, size[0]);
    fit.iterations = t;
    if (o.on_iteration) o.on_iteration(t, fit.objective);
  }
  keep_rated(users, group, rank, p, m);
  return fit;
}

}  // namespace tessera::estimators
