// The transformer's pieces: attention and the block against finite differences, a case small
// enough to compute by hand, the causal mask's promise (no position sees a later one), and the
// token embedding's sum of token and position rows.
#include "tessera/nn/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tessera/autograd/functions.h"
#include "tessera/nn/embedding.h"
#include "tessera/nn/transformer.h"
#include "testing/gradcheck.h"

namespace tessera::nn {
namespace {

using testing::InputSpec;

const bool kAttention =
    testing::register_gradcheck({"scaled_dot_product_attention",
                                 {InputSpec{{2, 4, 3}}, InputSpec{{2, 4, 3}}, InputSpec{{2, 4, 3}}},
                                 [](const std::vector<Variable>& v) {
                                   return scaled_dot_product_attention(v[0], v[1], v[2], false);
                                 }});

const bool kCausalAttention =
    testing::register_gradcheck({"scaled_dot_product_attention_causal",
                                 {InputSpec{{2, 5, 4}}, InputSpec{{2, 5, 4}}, InputSpec{{2, 5, 4}}},
                                 [](const std::vector<Variable>& v) {
                                   return scaled_dot_product_attention(v[0], v[1], v[2], true);
                                 }});

// The modules' input gradients: built afresh (same seed) for each evaluation, in the input's dtype.
const bool kSelfAttention = testing::register_gradcheck(
    {"self_attention_module_causal", {InputSpec{{2, 3, 4}}}, [](const std::vector<Variable>& v) {
       Generator gen(5);
       SelfAttention attention(4, 2, true, gen, v[0].dtype());
       return attention.forward(v[0]);
     }});

const bool kBlock = testing::register_gradcheck(
    {"transformer_block", {InputSpec{{2, 3, 4}}}, [](const std::vector<Variable>& v) {
       Generator gen(6);
       TransformerBlock block(4, 2, 8, true, gen, v[0].dtype());
       return block.forward(v[0]);
     }});

Tensor values(std::vector<double> v, const Shape& shape) {
  return Tensor::from_vector<double>(v, shape).to(DType::kFloat64);
}

TEST(Attention, MatchesAHandComputedCase) {
  // One sequence of two positions, d = 1: scores q_i * k_j, scaled by 1/sqrt(1).
  const Variable q(values({1.0, 2.0}, {1, 2, 1}));
  const Variable k(values({0.5, -1.0}, {1, 2, 1}));
  const Variable v(values({3.0, 7.0}, {1, 2, 1}));
  const Tensor full = scaled_dot_product_attention(q, k, v, false).data();
  const Tensor causal = scaled_dot_product_attention(q, k, v, true).data();
  auto mix = [](double s0, double s1) {
    const double p0 = std::exp(s0) / (std::exp(s0) + std::exp(s1));
    return p0 * 3.0 + (1.0 - p0) * 7.0;
  };
  EXPECT_NEAR(full.at({0, 0, 0}), mix(0.5, -1.0), 1e-12);
  EXPECT_NEAR(full.at({0, 1, 0}), mix(1.0, -2.0), 1e-12);
  EXPECT_NEAR(causal.at({0, 0, 0}), 3.0, 1e-12) << "the first position sees itself only";
  EXPECT_NEAR(causal.at({0, 1, 0}), mix(1.0, -2.0), 1e-12);
}

// Changing the input at position 3 leaves the outputs at positions 0 .. 2 exactly as they were.
TEST(Attention, ACausalBlockNeverLooksAhead) {
  Generator gen(3);
  TransformerBlock block(8, 2, 16, true, gen);
  Generator data(4);
  Tensor x = Tensor::randn({2, 5, 8}, data);
  const Tensor before = block.forward(Variable(x)).data().clone();
  Tensor changed = x.clone();
  changed.slice(1, 3, 4).copy_from(Tensor::randn({2, 1, 8}, data));
  const Tensor after = block.forward(Variable(changed)).data();
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < 5; ++t) {
      for (int64_t c = 0; c < 8; ++c) {
        if (t < 3) {
          EXPECT_EQ(before.at({b, t, c}), after.at({b, t, c})) << b << " " << t;
        }
      }
    }
  }
  EXPECT_NE(before.at({0, 4, 0}), after.at({0, 4, 0})) << "later positions do see it";
}

TEST(TokenEmbedding, AddsEachTokensRowToItsPositionsRow) {
  Generator gen(2);
  TokenEmbedding embedding(5, 3, 4, gen);
  const auto params = embedding.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  const Tensor tokens = params[0].second.data(), positions = params[1].second.data();
  const Tensor ids = Tensor::from_vector<float>({4, 0, 2, 1, 1, 3}, {2, 3});
  const Tensor out = embedding.forward(Variable(ids)).data();
  ASSERT_EQ(out.shape(), (Shape{2, 3, 3}));
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < 3; ++t) {
      const auto id = static_cast<int64_t>(ids.at({b, t}));
      for (int64_t c = 0; c < 3; ++c) {
        EXPECT_FLOAT_EQ(out.at({b, t, c}), tokens.at({id, c}) + positions.at({t, c}));
      }
    }
  }
  EXPECT_THROW(embedding.forward(Variable(Tensor::zeros({1, 5}))), ShapeError) << "5 > 4 positions";
}

TEST(Attention, RefusesHeadsThatDoNotDivideTheWidth) {
  EXPECT_THROW(SelfAttention(10, 3, true), ValueError);
  SelfAttention attention(8, 2, false);
  EXPECT_THROW(attention.forward(Variable(Tensor::zeros({2, 3, 6}))), ShapeError);
}

}  // namespace
}  // namespace tessera::nn
