// ALS's model: predictions, recommendations, its bytes, and its scores on rows.
#include <algorithm>
#include <cmath>
#include <limits>

#include "als_ratings.h"
#include "collective.h"
#include "tessera/core/error.h"
#include "tessera/estimators/als.h"

namespace tessera::estimators {
namespace {

constexpr uint32_t kAlsVersion = 1;
constexpr int64_t kMaxIds = int64_t{1} << 24;

template <typename T>
void read_array(BinaryReader& in, std::vector<T>& v, int64_t count, const char* what) {
  const auto bytes = static_cast<uint64_t>(count) * sizeof(T);
  if (auto left = in.remaining(); left && *left < bytes) {
    throw FormatError(
        detail::concat(in.source(), ": ", what, " need ", bytes, " bytes, ", *left, " left"));
  }
  v.resize(static_cast<size_t>(count));
  in.read_bytes(std::as_writable_bytes(std::span(v)));
}

// Of the user's positively rated items `relevant` (ascending), how many its top k hold.
int64_t hits(const AlsModel& m, int64_t user, const std::vector<int32_t>& relevant, int64_t k) {
  int64_t n = 0;
  for (int32_t item : m.recommend(user, k)) {
    n += std::binary_search(relevant.begin(), relevant.end(), item) ? 1 : 0;
  }
  return n;
}

// Precision at k of implicit feedback: the positive ratings sent to their users' owners, each
// owner scoring its users. [users, sum of their precisions].
std::vector<double> precision_sums(const AlsModel& m, const std::vector<Rating>& positive,
                                   comm::ProcessGroup* group, int64_t k) {
  std::vector<Rating> mine = send_to_owners(group, positive, true);
  std::sort(mine.begin(), mine.end(), [](const Rating& a, const Rating& b) {
    return a.user != b.user ? a.user < b.user : a.item < b.item;
  });
  std::vector<double> sums{0.0, 0.0};
  std::vector<int32_t> relevant;
  for (size_t at = 0; at < mine.size();) {
    const int32_t user = mine[at].user;
    relevant.clear();
    for (; at < mine.size() && mine[at].user == user; ++at) {
      const int32_t item = mine[at].item;
      if ((relevant.empty() || relevant.back() != item) && !m.rated_by(user, item)) {
        relevant.push_back(item);
      }
    }
    if (relevant.empty()) continue;  // held out nothing of this user's
    sums[0] += 1;
    sums[1] += static_cast<double>(hits(m, user, relevant, k)) / static_cast<double>(k);
  }
  sum_over(group, sums);
  return sums;
}

}  // namespace

bool AlsModel::knows_user(int64_t user) const {
  return user >= 0 && user < users &&
         rated_from[static_cast<size_t>(user + 1)] > rated_from[static_cast<size_t>(user)];
}

bool AlsModel::knows_item(int64_t item) const {
  return item >= 0 && item < items && item_ratings[static_cast<size_t>(item)] > 0;
}

bool AlsModel::rated_by(int64_t user, int32_t item) const {
  if (user < 0 || user >= users) return false;
  const auto first = rated.begin() + rated_from[static_cast<size_t>(user)];
  const auto last = rated.begin() + rated_from[static_cast<size_t>(user + 1)];
  return std::binary_search(first, last, item);
}

double AlsModel::predict(int64_t user, int64_t item) const {
  if (!knows_user(user) || !knows_item(item)) return std::numeric_limits<double>::quiet_NaN();
  return factor_dot(user_factors.data() + user * factors, item_factors.data() + item * factors,
                    factors);
}

std::vector<int32_t> AlsModel::recommend(int64_t user, int64_t k) const {
  if (!knows_user(user)) return {};
  std::vector<std::pair<double, int32_t>> scored;
  for (int32_t i = 0; i < items; ++i) {
    if (knows_item(i) && !rated_by(user, i)) scored.emplace_back(-predict(user, i), i);
  }
  const auto top = std::min<size_t>(static_cast<size_t>(k), scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(top),
                    scored.end());
  std::vector<int32_t> best(top);
  for (size_t j = 0; j < top; ++j) best[j] = scored[j].second;
  return best;
}

void AlsModel::write(BinaryWriter& out) const {
  out.write_u32(kAlsVersion);
  out.write_i64(users);
  out.write_i64(items);
  out.write_i64(factors);
  out.write_u32(implicit ? 1 : 0);
  out.write_i64(static_cast<int64_t>(rated.size()));
  out.write_bytes(std::as_bytes(std::span(user_factors)));
  out.write_bytes(std::as_bytes(std::span(item_factors)));
  out.write_bytes(std::as_bytes(std::span(rated_from)));
  out.write_bytes(std::as_bytes(std::span(rated)));
  out.write_bytes(std::as_bytes(std::span(item_ratings)));
}

AlsModel AlsModel::read(BinaryReader& in) {
  const uint32_t version = in.read_u32();
  if (version != kAlsVersion) {
    throw FormatError(
        detail::concat(in.source(), ": ALS model version ", version, ", expected ", kAlsVersion));
  }
  AlsModel m;
  m.users = in.read_i64();
  m.items = in.read_i64();
  m.factors = in.read_i64();
  const uint32_t implicit = in.read_u32();
  m.implicit = implicit == 1;
  const int64_t ratings = in.read_i64();
  if (m.users < 1 || m.users > kMaxIds || m.items < 1 || m.items > kMaxIds || m.factors < 1 ||
      m.factors > 1024 || implicit > 1 || ratings < 0 || ratings > (int64_t{1} << 40)) {
    throw FormatError(detail::concat(in.source(), ": an ALS model of ", m.users, " users, ",
                                     m.items, " items, ", m.factors, " factors and ", ratings,
                                     " ratings"));
  }
  read_array(in, m.user_factors, m.users * m.factors, "user factors");
  read_array(in, m.item_factors, m.items * m.factors, "item factors");
  read_array(in, m.rated_from, m.users + 1, "the users' rated items");
  read_array(in, m.rated, ratings, "rated items");
  read_array(in, m.item_ratings, m.items, "the items' rating counts");
  // Offsets that do not climb from 0 to the ratings, or items out of order or range, would send
  // predictions and recommendations out of bounds.
  bool fine = m.rated_from.front() == 0 && m.rated_from.back() == ratings;
  std::vector<int64_t> per_item(static_cast<size_t>(m.items), 0);
  for (int64_t u = 0; fine && u < m.users; ++u) {
    const int64_t first = m.rated_from[static_cast<size_t>(u)];
    const int64_t last = m.rated_from[static_cast<size_t>(u + 1)];
    fine = first <= last && last <= ratings;
    for (int64_t e = first; fine && e < last; ++e) {
      const int32_t i = m.rated[static_cast<size_t>(e)];
      fine = i >= 0 && i < m.items && (e == first || m.rated[static_cast<size_t>(e - 1)] <= i);
      if (fine) ++per_item[static_cast<size_t>(i)];
    }
  }
  for (int64_t i = 0; fine && i < m.items; ++i) {
    fine = per_item[static_cast<size_t>(i)] == m.item_ratings[static_cast<size_t>(i)];
  }
  if (!fine) throw FormatError(in.source() + ": an ALS model whose rated items disagree");
  return m;
}

AlsScore score_als(const AlsModel& model, RowSource& rows, comm::ProcessGroup* group, int64_t k) {
  const std::vector<Rating> ratings = read_ratings(rows);
  std::vector<double> sums{0.0, 0.0, 0.0};  // scored, unseen, squared error
  std::vector<Rating> positive;
  for (const Rating& r : ratings) {
    const double predicted = model.predict(r.user, r.item);
    if (std::isnan(predicted)) {
      sums[1] += 1;
      continue;
    }
    sums[0] += 1;
    sums[2] += (r.value - predicted) * (r.value - predicted);
    if (r.value > 0) positive.push_back(r);
  }
  sum_over(group, sums);
  AlsScore s;
  s.rows = static_cast<int64_t>(sums[0]);
  s.unseen = static_cast<int64_t>(sums[1]);
  s.rmse = sums[0] > 0 ? std::sqrt(sums[2] / sums[0]) : 0.0;
  if (model.implicit) {
    const std::vector<double> p = precision_sums(model, positive, group, k);
    s.users = static_cast<int64_t>(p[0]);
    s.precision = p[0] > 0 ? p[1] / p[0] : 0.0;
  }
  return s;
}

}  // namespace tessera::estimators
