#include "tessera/nn/module.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <sstream>

#include "tessera/nn/activation.h"
#include "tessera/nn/conv2d.h"
#include "tessera/nn/linear.h"
#include "tessera/nn/normalization.h"
#include "tessera/nn/sequential.h"

namespace tessera::nn {
namespace {

std::shared_ptr<Sequential> small_cnn(Generator& gen) {
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Conv2d>(1, 4, 3, gen, Conv2dOptions{.padding = 1}));
  m->push_back(std::make_shared<BatchNorm>(4));
  m->push_back(std::make_shared<ReLU>());
  m->push_back(std::make_shared<MaxPool2d>(2));
  m->push_back(std::make_shared<Flatten>());
  m->push_back(std::make_shared<Linear>(4 * 4 * 4, 3, gen));
  return m;
}

std::vector<std::string> names(const Module& m) {
  std::vector<std::string> out;
  for (auto& [name, p] : m.named_parameters()) out.push_back(name);
  return out;
}

TEST(Module, NamedParametersAreStableAndPrefixed) {
  Generator gen(1);
  auto m = small_cnn(gen);
  EXPECT_EQ(names(*m), (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                                 "5.weight", "5.bias"}));
  std::vector<std::string> buffers;
  for (auto& [name, b] : m->named_buffers()) buffers.push_back(name);
  EXPECT_EQ(buffers, (std::vector<std::string>{"1.running_mean", "1.running_var"}));
  EXPECT_EQ(m->parameter_count(), 4 * 9 + 4 + 4 + 4 + 64 * 3 + 3);
}

TEST(Module, SameSeedGivesSameInitialisation) {
  Generator a(42), b(42), c(43);
  auto ma = small_cnn(a), mb = small_cnn(b), mc = small_cnn(c);
  auto pa = ma->parameters(), pb = mb->parameters(), pc = mc->parameters();
  EXPECT_EQ(pa[0].data().to_vector<float>(), pb[0].data().to_vector<float>());
  EXPECT_NE(pa[0].data().to_vector<float>(), pc[0].data().to_vector<float>());
}

TEST(Module, LinearInitialisationBoundIsOneOverSqrtFanIn) {
  Generator gen(3);
  Linear l(100, 50, gen);
  double bound = 1.0 / std::sqrt(100.0);
  double max_abs = 0;
  for (float v : l.weight().data().to_vector<float>())
    max_abs = std::max(max_abs, std::abs(double(v)));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.9 * bound);  // 5000 draws reach close to the bound
}

TEST(Module, TrainAndEvalPropagateToChildren) {
  Generator gen(1);
  auto m = small_cnn(gen);
  m->eval();
  for (size_t i = 0; i < m->size(); ++i) EXPECT_FALSE((*m)[i]->is_training()) << i;
  m->train();
  for (size_t i = 0; i < m->size(); ++i) EXPECT_TRUE((*m)[i]->is_training()) << i;
}

std::string saved(const Module& m) {
  std::ostringstream out;
  BinaryWriter w(out);
  m.save_state(w);
  return out.str();
}

void load(Module& m, const std::string& bytes) {
  std::istringstream in(bytes);
  BinaryReader r(in, "state.bin");
  m.load_state(r);
}

TEST(Module, SaveLoadRoundTripRestoresParametersAndBuffers) {
  Generator g1(1), g2(2);
  auto a = small_cnn(g1), b = small_cnn(g2);
  Variable x(Tensor::randn({2, 1, 8, 8}, g1));
  (*a)(x);  // updates BatchNorm's running statistics
  load(*b, saved(*a));
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].second.data().to_vector<float>(), pb[i].second.data().to_vector<float>())
        << pa[i].first;
  }
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (size_t i = 0; i < ba.size(); ++i) {
    EXPECT_EQ(ba[i].second.to_vector<float>(), bb[i].second.to_vector<float>()) << ba[i].first;
  }
  a->eval();
  b->eval();
  EXPECT_EQ((*a)(x).data().to_vector<float>(), (*b)(x).data().to_vector<float>());
}

TEST(Module, LoadIntoDifferentShapeNamesEntryAndChangesNothing) {
  Generator gen(1);
  Sequential a({std::make_shared<Linear>(4, 3, gen), std::make_shared<Linear>(3, 2, gen)});
  Sequential b({std::make_shared<Linear>(4, 3, gen), std::make_shared<Linear>(3, 5, gen)});
  auto before = b.parameters()[0].data().to_vector<float>();
  try {
    load(b, saved(a));
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'1.weight'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2,3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[5,3]"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.parameters()[0].data().to_vector<float>(), before);
}

TEST(Module, LoadMissingEntryNamesIt) {
  Generator gen(1);
  Sequential a({std::make_shared<Linear>(4, 3, gen)});
  Sequential b({std::make_shared<Linear>(4, 3, gen), std::make_shared<Linear>(3, 2, gen)});
  try {
    load(b, saved(a));
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("missing entry '1.weight'"), std::string::npos)
        << e.what();
  }
}

TEST(Module, LoadTruncatedStateThrowsFormatErrorWithOffset) {
  Generator gen(1);
  Sequential a({std::make_shared<Linear>(4, 3, gen)});
  std::string bytes = saved(a);
  bytes.resize(bytes.size() - 5);
  try {
    load(a, bytes);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("state.bin: truncated at byte"), std::string::npos)
        << e.what();
  }
}

TEST(Module, LinearRejectsWrongInputWidthNamingShapes) {
  Generator gen(1);
  Linear l(4, 3, gen);
  try {
    l(Variable(Tensor::zeros({2, 5})));
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("Linear(4, 3)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2,5]"), std::string::npos) << e.what();
  }
}

TEST(BatchNorm, EvalUsesRunningStatisticsTrainUpdatesThem) {
  BatchNorm bn(2, 1e-5, 0.5);
  // Channel 0 has values {1, 3}, channel 1 {2, 6} over a batch of 2.
  Variable x(Tensor::from_vector<float>({1, 2, 3, 6}, {2, 2}));
  Variable y = bn(x);
  auto buffers = bn.named_buffers();
  // mean: 0.5 * 0 + 0.5 * batch mean; var: 0.5 * 1 + 0.5 * unbiased batch var.
  EXPECT_FLOAT_EQ(buffers[0].second.at({0}), 1.0f);
  EXPECT_FLOAT_EQ(buffers[0].second.at({1}), 2.0f);
  EXPECT_FLOAT_EQ(buffers[1].second.at({0}), 0.5f + 0.5f * 2.0f);
  EXPECT_FLOAT_EQ(buffers[1].second.at({1}), 0.5f + 0.5f * 8.0f);
  // Training output is normalised with the batch's biased variance: (1 - 2) / sqrt(1) = -1.
  EXPECT_NEAR(y.data().at({0, 0}), -1.0, 1e-4);
  bn.eval();
  Variable z = bn(x);
  EXPECT_NEAR(z.data().at({0, 0}), (1.0 - 1.0) / std::sqrt(1.5 + 1e-5), 1e-5);
  EXPECT_NEAR(z.data().at({1, 1}), (6.0 - 2.0) / std::sqrt(4.5 + 1e-5), 1e-5);
}

TEST(Dropout, EvalIsIdentityTrainZeroesAndRescales) {
  Generator gen(5);
  Dropout d(0.25, gen);
  Variable x(Tensor::ones({1000}));
  auto y = d(x).data().to_vector<float>();
  int zeros = 0;
  for (float v : y) {
    if (v == 0.0f) {
      ++zeros;
    } else {
      EXPECT_FLOAT_EQ(v, 1.0f / 0.75f);
    }
  }
  EXPECT_GT(zeros, 180);
  EXPECT_LT(zeros, 320);
  d.eval();
  EXPECT_EQ(d(x).data().to_vector<float>(), x.data().to_vector<float>());
  EXPECT_THROW(Dropout(1.0), ValueError);
}

TEST(Flatten, KeepsBatchDimension) {
  Flatten f;
  EXPECT_EQ(f(Variable(Tensor::zeros({3, 2, 4, 5}))).shape(), (Shape{3, 40}));
}

}  // namespace
}  // namespace tessera::nn
