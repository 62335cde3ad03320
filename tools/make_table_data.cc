// Writes a table in CSV whose targets come from a known linear model, so the best loss any model
// can reach on it is known: train.csv, test.csv (header x1..xD,y) and truth.json in --out.
//
// Features are normal with a mean and a scale of their own (mean up to 2, scale 0.5 to 3), some
// correlated (each feature after the first takes 0.3 of the one before), as real tables have.
// The true model draws its weights from a standard normal (seeded).
//   regression:      y = x w + b + noise (normal, --noise); truth.json holds the noise floor,
//                    the true model's test RMSE and R2.
//   classification:  y = the class whose margin x w_k + b_k + Gumbel noise is largest: exactly
//                    multinomial logistic regression's model (logistic for --classes 2);
//                    truth.json holds the true model's test accuracy and log loss.
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
  std::string task = "classification";
  int64_t train = 100'000;
  int64_t test = 20'000;
  int features = 20;
  int classes = 2;
  double noise = 1.0;   // regression: the noise's standard deviation
  double signal = 1.0;  // classification: margins are scaled by this (larger: cleaner classes)
  uint64_t seed = 1;
};

struct TrueModel {
  std::vector<double> mean, scale, w, b;  // w: [features, outputs]
  int outputs = 1;
};

TrueModel draw_model(const Options& o, tessera::Generator& g) {
  TrueModel m;
  m.outputs = o.task == "regression" ? 1 : o.classes;
  for (int j = 0; j < o.features; ++j) {
    m.mean.push_back(g.uniform(-2.0, 2.0));
    m.scale.push_back(g.uniform(0.5, 3.0));
  }
  for (int j = 0; j < o.features * m.outputs; ++j) {
    // Per unit of the feature's spread, so every feature matters about as much.
    m.w.push_back(o.signal * g.normal() / m.scale[static_cast<size_t>(j / m.outputs)] /
                  std::sqrt(static_cast<double>(o.features)));
  }
  for (int k = 0; k < m.outputs; ++k) m.b.push_back(g.normal());
  return m;
}

struct Quality {
  double sum_loss = 0, sum_sq = 0, right = 0, sum_y = 0, sum_y2 = 0;
  int64_t rows = 0;
};

void write_rows(const Options& o, const TrueModel& m, tessera::Generator& g, int64_t rows,
                const std::string& path, Quality& q) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  for (int j = 0; j < o.features; ++j) out << "x" << j + 1 << ",";
  out << "y\n";
  std::vector<double> x(static_cast<size_t>(o.features));
  std::vector<double> margin(static_cast<size_t>(m.outputs));
  char field[32];
  for (int64_t i = 0; i < rows; ++i) {
    double before = 0;
    for (int j = 0; j < o.features; ++j) {
      const double z = g.normal() + 0.3 * before;
      before = z;
      x[static_cast<size_t>(j)] =
          m.mean[static_cast<size_t>(j)] + m.scale[static_cast<size_t>(j)] * z;
      std::snprintf(field, sizeof(field), "%.6g,", x[static_cast<size_t>(j)]);
      out << field;
    }
    for (int k = 0; k < m.outputs; ++k) {
      double v = m.b[static_cast<size_t>(k)];
      for (int j = 0; j < o.features; ++j) {
        v += x[static_cast<size_t>(j)] * m.w[static_cast<size_t>(j * m.outputs + k)];
      }
      margin[static_cast<size_t>(k)] = v;
    }
    ++q.rows;
    if (o.task == "regression") {
      const double y = margin[0] + o.noise * g.normal();
      std::snprintf(field, sizeof(field), "%.8g\n", y);
      out << field;
      q.sum_sq += (y - margin[0]) * (y - margin[0]);
      q.sum_y += y;
      q.sum_y2 += y * y;
      continue;
    }
    // A binary model's one margin is class 1's against class 0's (margin 0).
    if (m.outputs == 1) margin = {0.0, margin[0]};
    int label = 0;
    double top = -1e300;
    for (size_t k = 0; k < margin.size(); ++k) {
      const double gumbel = -std::log(-std::log(std::max(g.uniform(), 1e-300)));
      if (margin[k] + gumbel > top) top = margin[k] + gumbel, label = static_cast<int>(k);
    }
    out << label << "\n";
    const double best = *std::max_element(margin.begin(), margin.end());
    double total = 0;
    for (double v : margin) total += std::exp(v - best);
    q.sum_loss += best + std::log(total) - margin[static_cast<size_t>(label)];
    q.right += margin[static_cast<size_t>(label)] == best ? 1 : 0;
    if (o.task != "regression" && m.outputs == 1) margin.resize(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Writes a CSV table from a known linear model (train.csv, test.csv, truth.json)."};
  app.add_option("--out", o.out, "Output directory")->required();
  app.add_option("--task", o.task, "regression or classification")
      ->check(CLI::IsMember({"regression", "classification"}));
  app.add_option("--train", o.train, "Training rows")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--test", o.test, "Test rows")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--features", o.features, "Features")->check(CLI::Range(1, 100000));
  app.add_option("--classes", o.classes, "Classes (classification)")->check(CLI::Range(2, 1000));
  app.add_option("--noise", o.noise, "Regression noise's standard deviation")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--signal", o.signal, "Scale of the margins (classification)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--seed", o.seed, "Seed");
  CLI11_PARSE(app, argc, argv);
  try {
    std::filesystem::create_directories(o.out);
    tessera::Generator g(o.seed);
    // Binary classification is one margin: class 1's over class 0's.
    if (o.task == "classification" && o.classes == 2) o.classes = 1;
    const TrueModel m = draw_model(o, g);
    if (o.task == "classification" && o.classes == 1) o.classes = 2;
    Quality train_q;
    Quality test_q;
    write_rows(o, m, g, o.train, o.out + "/train.csv", train_q);
    write_rows(o, m, g, o.test, o.out + "/test.csv", test_q);
    std::ofstream truth(o.out + "/truth.json");
    const auto n = static_cast<double>(test_q.rows);
    truth.precision(8);
    truth << "{\"task\": \"" << o.task << "\", \"seed\": " << o.seed
          << ", \"features\": " << o.features;
    if (o.task == "regression") {
      const double variance = test_q.sum_y2 / n - (test_q.sum_y / n) * (test_q.sum_y / n);
      truth << ", \"noise\": " << o.noise << ", \"test_rmse\": " << std::sqrt(test_q.sum_sq / n)
            << ", \"test_r2\": " << 1.0 - (test_q.sum_sq / n) / variance;
    } else {
      truth << ", \"classes\": " << o.classes << ", \"test_accuracy\": " << test_q.right / n
            << ", \"test_log_loss\": " << test_q.sum_loss / n;
    }
    truth << "}\n";
    std::printf("wrote %s/train.csv (%lld rows), test.csv (%lld rows), truth.json\n", o.out.c_str(),
                static_cast<long long>(o.train), static_cast<long long>(o.test));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_table_data: %s\n", e.what());
    return 1;
  }
  return 0;
}
