// Writes a click-through-style data set in LIBSVM format whose labels come from a hidden true
// model, so that the best AUC any model can reach on it is known: train.libsvm, test.libsvm and
// truth.json (the true model's test AUC and log loss) in --out.
//
// Each record has one feature per field; a field's values follow a power law (value v of
// --vocab drawn with probability proportional to (v + 1)^-zipf), so a few values are everywhere
// and most are rare. The true model is a factorization machine: a weight and --factors factors per
// value, drawn from a hash of (seed, id) so that no table is stored; a rare value's effect is
// smaller (its scale falls as 1 / (1 + v / --signal-values)), as in real click logs where the
// signal sits in the frequent ids. Feature ids are (field + 1) * 2^32 + value + 1: far beyond 32
// bits.
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

#include "auc.h"
#include "tessera/core/random.h"

namespace {

struct Options {
  std::string out;
  int64_t train = 4'000'000;
  int64_t test = 200'000;
  int fields = 16;
  int64_t vocab = 4'000'000;
  double zipf = 1.1;
  int factors = 4;
  double weight_scale = 0.5;
  double factor_scale = 0.3;
  double bias = -1.0;
  double signal_values = 100.0;
  uint64_t seed = 1;
};

// A standard normal drawn from (seed, id, slot) alone.
double hashed_normal(uint64_t seed, uint64_t id, uint64_t slot) {
  const uint64_t a = tessera::mix64(seed ^ tessera::mix64(id * 64 + slot));
  const uint64_t b = tessera::mix64(a);
  const double u1 = (static_cast<double>(a >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

class TrueModel {
 public:
  explicit TrueModel(const Options& o) : o_(o), sums_(static_cast<size_t>(o.factors)) {}

  // Value v of the power law over [0, vocab), by inverting the continuous CDF of x^-zipf.
  [[nodiscard]] int64_t draw_value(tessera::Generator& gen) const {
    const double u = gen.uniform();
    const double n = static_cast<double>(o_.vocab);
    const double x =
        std::abs(o_.zipf - 1.0) < 1e-9
            ? std::exp(u * std::log(n + 1.0))
            : std::pow(u * (std::pow(n + 1.0, 1.0 - o_.zipf) - 1.0) + 1.0, 1.0 / (1.0 - o_.zipf));
    return std::min<int64_t>(static_cast<int64_t>(x) - 1, o_.vocab - 1);
  }

  [[nodiscard]] static uint64_t id_of(int field, int64_t value) {
    return (static_cast<uint64_t>(field + 1) << 32) + static_cast<uint64_t>(value) + 1;
  }

  // The logit of a record with one value per field.
  double logit(const std::vector<int64_t>& values) {
    double z = o_.bias;
    std::fill(sums_.begin(), sums_.end(), 0.0);
    double squares = 0.0;
    for (int f = 0; f < o_.fields; ++f) {
      const uint64_t id = id_of(f, values[f]);
      const double rarity = 1.0 / (1.0 + static_cast<double>(values[f]) / o_.signal_values);
      z += o_.weight_scale * rarity * hashed_normal(o_.seed, id, 0);
      for (int k = 0; k < o_.factors; ++k) {
        const double v = o_.factor_scale * rarity * hashed_normal(o_.seed, id, 1 + k);
        sums_[k] += v;
        squares += v * v;
      }
    }
    double pairs = -squares;
    for (const double s : sums_) pairs += s * s;
    return z + 0.5 * pairs;
  }

 private:
  const Options& o_;
  std::vector<double> sums_;
};

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

struct Scored {
  float p;
  bool positive;
};

// Writes `count` records; returns the true probability and label of each when `keep` is set.
std::vector<Scored> write_records(const std::filesystem::path& path, int64_t count,
                                  TrueModel& model, const Options& o, tessera::Generator& gen,
                                  bool keep) {
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr) throw std::runtime_error("cannot write " + path.string());
  std::vector<Scored> scored;
  std::vector<int64_t> values(static_cast<size_t>(o.fields));
  std::string line;
  for (int64_t r = 0; r < count; ++r) {
    for (auto& v : values) v = model.draw_value(gen);
    const double p = sigmoid(model.logit(values));
    const bool positive = gen.uniform() < p;
    line = positive ? "1" : "0";
    for (int f = 0; f < o.fields; ++f) {
      line += ' ';
      line += std::to_string(TrueModel::id_of(f, values[f]));
      line += ":1";
    }
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), out) != line.size()) {
      throw std::runtime_error("cannot write " + path.string());
    }
    if (keep) scored.push_back({static_cast<float>(p), positive});
    if (r > 0 && r % 1'000'000 == 0)
      std::fprintf(stderr, "%s: %lld records\n", path.c_str(), static_cast<long long>(r));
  }
  if (std::fclose(out) != 0) throw std::runtime_error("cannot write " + path.string());
  return scored;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app(
      "Writes a click-through-style LIBSVM data set from a hidden factorization machine: "
      "OUT/train.libsvm, OUT/test.libsvm and OUT/truth.json, which holds the true model's test "
      "AUC (the best any model can reach on this test set).");
  app.add_option("--out", o.out, "Directory to write")->required();
  app.add_option("--train", o.train, "Training records")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--test", o.test, "Test records")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--fields", o.fields, "Features per record, one per field")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--vocab", o.vocab, "Values per field")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 31));
  app.add_option("--zipf", o.zipf, "Power-law exponent of value frequencies")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  app.add_option("--factors", o.factors, "Factors of the true model (0: logistic)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--weight-scale", o.weight_scale, "Scale of the true weights")
      ->capture_default_str();
  app.add_option("--factor-scale", o.factor_scale, "Scale of the true factors")
      ->capture_default_str();
  app.add_option("--bias", o.bias, "True bias (sets the positive rate)")->capture_default_str();
  app.add_option("--signal-values", o.signal_values,
                 "How fast the effects of rare values fade: value v's scale is 1 / (1 + v / this)")
      ->capture_default_str()
      ->check(CLI::Range(1e-3, 1e12));
  app.add_option("--seed", o.seed, "Seed of the true model and of the draws")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const std::filesystem::path dir(o.out);
    std::filesystem::create_directories(dir);
    TrueModel model(o);
    tessera::Generator gen(o.seed * 2 + 1);
    write_records(dir / "train.libsvm", o.train, model, o, gen, false);
    const std::vector<Scored> test =
        write_records(dir / "test.libsvm", o.test, model, o, gen, true);
    double loss = 0.0;
    double positives = 0.0;
    std::vector<float> probabilities;
    std::vector<float> labels;
    for (const Scored& s : test) {
      loss -= s.positive ? std::log(s.p) : std::log1p(-s.p);
      positives += s.positive;
      probabilities.push_back(s.p);
      labels.push_back(s.positive ? 1.0f : 0.0f);
    }
    const double n = static_cast<double>(test.size());
    std::ofstream truth(dir / "truth.json");
    char text[512];
    std::snprintf(text, sizeof(text),
                  "{\"test_auc\": %.6f, \"test_logloss\": %.6f, \"test_positive_rate\": %.6f, "
                  "\"train\": %lld, \"test\": %lld, \"fields\": %d, \"vocab\": %lld, \"zipf\": %g, "
                  "\"factors\": %d, \"seed\": %llu}\n",
                  tessera::train::roc_auc(probabilities, labels), loss / n, positives / n,
                  static_cast<long long>(o.train), static_cast<long long>(o.test), o.fields,
                  static_cast<long long>(o.vocab), o.zipf, o.factors,
                  static_cast<unsigned long long>(o.seed));
    truth << text;
    if (!truth) throw std::runtime_error("cannot write " + (dir / "truth.json").string());
    std::printf("%s", text);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_ctr_data: %s\n", e.what());
    return 1;
  }
  return 0;
}
