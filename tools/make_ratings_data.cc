// Writes ratings from a known low-rank model, so the best any factorisation can do on them is
// known: train.csv, test.csv (header user,item,rating; rows in random order) and truth.json in
// --out.
//
// The true model gives each user and each item `--rank` factors drawn from a normal of variance
// 1 / sqrt(rank), so that a user's affinity to an item, their dot product, has variance 1.
//   explicit:  each (user, item) pair is rated with probability --density; its rating is the
//              affinity plus normal noise of deviation --noise. truth.json holds that noise
//              floor and the true model's RMSE on the test ratings.
//   implicit:  a user interacts with an item with probability density x exp(2 affinity - 2),
//              at most 1 (so a little under --density of all pairs, most of them with the user's
//              favourite items); the rating is the interaction count,
//              1 + a Poisson draw of mean 1. truth.json holds the true model's precision at 10:
//              of each test user's ten items with the highest affinity among those not in its
//              training ratings, the share found among its test ratings.
// A rating goes to the test set with probability --test-fraction.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/core/random.h"

namespace {

struct Options {
  std::string out;
  std::string feedback = "explicit";
  int64_t users = 2000;
  int64_t items = 1000;
  int rank = 10;
  double density = 0.3;
  double noise = 0.5;
  double test_fraction = 0.1;
  uint64_t seed = 1;
};

struct Rating {
  int64_t user, item;
  double value;
  double truth;  // the true model's affinity
};

double affinity(const std::vector<double>& u, const std::vector<double>& v, int64_t user,
                int64_t item, int rank) {
  double s = 0;
  for (int q = 0; q < rank; ++q)
    s += u[static_cast<size_t>(user * rank + q)] * v[static_cast<size_t>(item * rank + q)];
  return s;
}

int poisson_one(tessera::Generator& g) {  // Knuth's: mean 1
  const double limit = std::exp(-1.0);
  int n = 0;
  for (double p = g.uniform(); p > limit; p *= g.uniform()) ++n;
  return n;
}

void write_csv(const std::string& path, const std::vector<Rating>& ratings) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << "user,item,rating\n";
  char line[64];
  for (const Rating& r : ratings) {
    std::snprintf(line, sizeof line, "%lld,%lld,%.6g\n", static_cast<long long>(r.user),
                  static_cast<long long>(r.item), r.value);
    out << line;
  }
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

// The true model's precision at k on the test ratings (implicit feedback).
double true_precision(const Options& o, const std::vector<double>& u, const std::vector<double>& v,
                      const std::vector<Rating>& train, const std::vector<Rating>& test, int k) {
  std::vector<std::vector<int64_t>> seen(static_cast<size_t>(o.users));
  std::vector<std::vector<int64_t>> held(static_cast<size_t>(o.users));
  for (const Rating& r : train) seen[static_cast<size_t>(r.user)].push_back(r.item);
  for (const Rating& r : test) held[static_cast<size_t>(r.user)].push_back(r.item);
  double sum = 0;
  int64_t users = 0;
  for (int64_t user = 0; user < o.users; ++user) {
    auto& s = seen[static_cast<size_t>(user)];
    const auto& h = held[static_cast<size_t>(user)];
    if (h.empty()) continue;
    std::sort(s.begin(), s.end());
    std::vector<std::pair<double, int64_t>> scored;
    for (int64_t item = 0; item < o.items; ++item) {
      if (!std::binary_search(s.begin(), s.end(), item))
        scored.emplace_back(-affinity(u, v, user, item, o.rank), item);
    }
    const auto top = std::min<size_t>(static_cast<size_t>(k), scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(top),
                      scored.end());
    int hits = 0;
    for (size_t j = 0; j < top; ++j)
      hits += std::count(h.begin(), h.end(), scored[j].second) > 0 ? 1 : 0;
    sum += static_cast<double>(hits) / k;
    ++users;
  }
  return users > 0 ? sum / static_cast<double>(users) : 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Writes ratings from a known low-rank model (train.csv, test.csv, truth.json)."};
  app.add_option("--out", o.out, "Output directory")->required();
  app.add_option("--feedback", o.feedback, "explicit (ratings) or implicit (interaction counts)")
      ->check(CLI::IsMember({"explicit", "implicit"}));
  app.add_option("--users", o.users, "Users")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--items", o.items, "Items")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--rank", o.rank, "The true model's factors")->check(CLI::Range(1, 1024));
  app.add_option("--density", o.density, "Share of the pairs rated")->check(CLI::Range(0.0, 0.5));
  app.add_option("--noise", o.noise, "Explicit: the ratings' noise deviation")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--test-fraction", o.test_fraction, "Share of the ratings held out")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--seed", o.seed, "Seed");
  CLI11_PARSE(app, argc, argv);
  try {
    std::filesystem::create_directories(o.out);
    tessera::Generator g(o.seed);
    const double scale = 1.0 / std::pow(static_cast<double>(o.rank), 0.25);
    std::vector<double> u(static_cast<size_t>(o.users * o.rank));
    std::vector<double> v(static_cast<size_t>(o.items * o.rank));
    for (double& x : u) x = scale * g.normal();
    for (double& x : v) x = scale * g.normal();
    const bool implicit = o.feedback == "implicit";
    std::vector<Rating> train;
    std::vector<Rating> test;
    for (int64_t user = 0; user < o.users; ++user) {
      for (int64_t item = 0; item < o.items; ++item) {
        const double a = affinity(u, v, user, item, o.rank);
        const double p = implicit ? std::min(1.0, o.density * std::exp(2 * a - 2)) : o.density;
        if (g.uniform() >= p) continue;
        const double value = implicit ? 1 + poisson_one(g) : a + o.noise * g.normal();
        (g.uniform() < o.test_fraction ? test : train).push_back({user, item, value, a});
      }
    }
    for (auto* set : {&train, &test}) {  // Fisher-Yates: logs are not sorted by user
      for (size_t i = set->size(); i > 1; --i) {
        std::swap((*set)[i - 1], (*set)[static_cast<size_t>(g.uniform() * static_cast<double>(i))]);
      }
    }
    write_csv(o.out + "/train.csv", train);
    write_csv(o.out + "/test.csv", test);
    std::ofstream truth(o.out + "/truth.json");
    truth.precision(8);
    truth << "{\"feedback\": \"" << o.feedback << "\", \"seed\": " << o.seed
          << ", \"users\": " << o.users << ", \"items\": " << o.items << ", \"rank\": " << o.rank
          << ", \"train_ratings\": " << train.size() << ", \"test_ratings\": " << test.size();
    if (implicit) {
      truth << ", \"test_precision_at_10\": " << true_precision(o, u, v, train, test, 10);
    } else {
      double sq = 0;
      for (const Rating& r : test) sq += (r.value - r.truth) * (r.value - r.truth);
      truth << ", \"noise\": " << o.noise << ", \"test_rmse\": "
            << std::sqrt(sq / static_cast<double>(std::max<size_t>(1, test.size())));
    }
    truth << "}\n";
    std::printf("wrote %s/train.csv (%zu ratings), test.csv (%zu ratings), truth.json\n",
                o.out.c_str(), train.size(), test.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_ratings_data: %s\n", e.what());
    return 1;
  }
  return 0;
}
