#include "tessera/autograd/engine.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tessera/autograd/functions.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/autograd/node.h"
#include "tessera/tensor/elementwise.h"
#include "testing/tensor_assertions.h"

namespace tessera::autograd {
namespace {

using testing::tensors_close;

Variable leaf(std::vector<double> values, Shape shape, const std::string& name = "") {
  Variable v(Tensor::from_vector(values, shape), true);
  v.set_name(name);
  return v;
}

Tensor tensor(std::vector<double> values, Shape shape) {
  return Tensor::from_vector(values, shape);
}

TEST(Backward, AccumulatesGradientsAcrossCalls) {
  Variable x = leaf({1, 2, 3}, {3});
  Variable y = sum(mul_scalar(x, 2.0));
  y.backward();
  EXPECT_TRUE(tensors_close(x.grad(), tensor({2, 2, 2}, {3})));
  y.backward();  // the graph is kept: a second pass over it adds again
  EXPECT_TRUE(tensors_close(x.grad(), tensor({4, 4, 4}, {3})));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(mul(x, x)).backward();
  EXPECT_TRUE(tensors_close(x.grad(), tensor({2, 4, 6}, {3})));
}

TEST(Backward, OnAnExplicitGradientWeightsTheOutputs) {
  Variable x = leaf({1, 2, 3}, {3});
  Variable y = mul(x, x);
  y.backward(tensor({1, 0, -1}, {3}));
  EXPECT_TRUE(tensors_close(x.grad(), tensor({2, 0, -6}, {3})));
}

TEST(Backward, OnALeafStoresACopyOfTheGradient) {
  Variable x = leaf({1, 2}, {2});
  Tensor g = tensor({3, 4}, {2});
  x.backward(g);
  EXPECT_TRUE(tensors_close(x.grad(), g));
  Tensor(x.grad()).fill_(0.0);  // writes through to the stored gradient
  EXPECT_EQ(g.at({0}), 3.0);
}

TEST(Backward, OnANonScalarOutputWithoutAGradientThrowsShapeError) {
  Variable x = leaf({1, 2, 3}, {3});
  Variable y = mul_scalar(x, 2.0);
  EXPECT_THROW(y.backward(), ShapeError);
  EXPECT_FALSE(x.grad().defined());
}

TEST(Backward, WithAGradientOfTheWrongShapeOrDtypeThrowsNamingBoth) {
  Variable x = leaf({1, 2, 3}, {3});
  Variable y = mul_scalar(x, 2.0);
  try {
    y.backward(Tensor::ones({2}, DType::kFloat64));
    FAIL() << "no exception";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[2]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(y.backward(Tensor::ones({3}, DType::kFloat32)), DTypeError);
}

TEST(Backward, OnAnOutputThatDoesNotRequireGradThrowsValueError) {
  Variable x(tensor({1, 2}, {2}), false);
  Variable y = sum(mul(x, x));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(y.backward(), ValueError);
}

TEST(Backward, SkipsInputsThatDoNotRequireGrad) {
  Variable a = leaf({1, 2}, {2});
  Variable c(tensor({3, 4}, {2}), false);
  sum(mul(a, c)).backward();
  EXPECT_TRUE(tensors_close(a.grad(), tensor({3, 4}, {2})));
  EXPECT_FALSE(c.grad().defined());
}

TEST(Backward, GivesInputsOfASharedGradientIndependentTensors) {
  Variable a = leaf({1, 2}, {2});
  Variable b = leaf({3, 4}, {2});
  Tensor g = tensor({1, 1}, {2});
  add(a, b).backward(g);
  ASSERT_TRUE(a.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_NE(a.grad().storage(), b.grad().storage());
  EXPECT_NE(a.grad().storage(), g.storage());
  EXPECT_NE(b.grad().storage(), g.storage());
  Tensor(a.grad()).fill_(7.0);
  EXPECT_TRUE(tensors_close(b.grad(), tensor({1, 1}, {2})));
  EXPECT_TRUE(tensors_close(g, tensor({1, 1}, {2})));
}

TEST(Backward, GivesIndependentGradientsWhenTheGraphRootIsScalar) {
  Variable a = leaf({1, 2}, {2});
  Variable b = leaf({3, 4}, {2});
  sum(a + b).backward();
  Tensor(a.grad()).fill_(-1.0);
  EXPECT_TRUE(tensors_close(b.grad(), tensor({1, 1}, {2})));
}

TEST(NoGrad, ScopeRecordsNothingAndRestoresTheMode) {
  Variable x = leaf({1, 2}, {2});
  EXPECT_TRUE(grad_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    Variable y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      NoGradGuard nested;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());
    EXPECT_THROW(sum(y).backward(), ValueError);
  }
  EXPECT_TRUE(grad_enabled());
  Variable z = mul(x, x);
  EXPECT_TRUE(z.requires_grad());
  EXPECT_NE(z.grad_fn(), nullptr);
}

TEST(NoGrad, IsPerThread) {
  NoGradGuard guard;
  bool other_thread_enabled = false;
  std::thread t([&] { other_thread_enabled = grad_enabled(); });
  t.join();
  EXPECT_TRUE(other_thread_enabled);
  EXPECT_FALSE(grad_enabled());
}

TEST(Detach, GivesALeafOverTheSameDataOutsideTheGraph) {
  Variable x = leaf({1, 2, 3}, {3});
  Variable y = mul(x, x);
  Variable d = y.detach();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.data().storage(), y.data().storage());
  // Gradient flows through x but not through the detached copy of x*x.
  sum(mul(x, d)).backward();
  EXPECT_TRUE(tensors_close(x.grad(), tensor({1, 4, 9}, {3})));
}

TEST(Variable, RefusesRequiresGradOnIntegerData) {
  EXPECT_THROW(Variable(Tensor::zeros({2}, DType::kInt64), true), DTypeError);
  EXPECT_NO_THROW(Variable(Tensor::zeros({2}, DType::kInt64), false));
}

TEST(Variable, CopiesShareGradientAndGraphPosition) {
  Variable x = leaf({1, 2}, {2});
  Variable alias = x;
  sum(alias).backward();
  EXPECT_TRUE(tensors_close(x.grad(), tensor({1, 1}, {2})));
}

// Records the order in which gradient-ready hooks fire, with the gradient each hook saw.
struct HookLog {
  std::vector<std::string> order;
  std::vector<Tensor> seen;
  void watch(Variable& v) {
    v.add_grad_ready_hook([this](Variable& ready) {
      order.push_back(ready.name());
      seen.push_back(ready.grad().clone());
    });
  }
  int count(const std::string& name) const {
    return static_cast<int>(std::count(order.begin(), order.end(), name));
  }
  int position(const std::string& name) const {
    return static_cast<int>(std::find(order.begin(), order.end(), name) - order.begin());
  }
};

TEST(GradReadyHook, FiresOncePerParameterInReverseOrderOfUse) {
  Generator gen(1);
  Variable x(Tensor::randn({2, 3}, gen, DType::kFloat64), false);
  std::vector<Variable> params;
  const Shape shapes[] = {{4, 3}, {4}, {5, 4}, {5}, {2, 5}, {2}};
  const char* names[] = {"w1", "b1", "w2", "b2", "w3", "b3"};
  HookLog log;
  for (int i = 0; i < 6; ++i) {
    params.emplace_back(Tensor::randn(shapes[i], gen, DType::kFloat64), true);
    params.back().set_name(names[i]);
    log.watch(params.back());
  }
  Variable h = tanh(linear(x, params[0], params[1]));
  h = tanh(linear(h, params[2], params[3]));
  Variable loss = sum(linear(h, params[4], params[5]));
  loss.backward();

  ASSERT_EQ(log.order.size(), 6u);
  for (const char* name : names) EXPECT_EQ(log.count(name), 1) << name;
  // Layer 3 was used last, so its parameters are final first.
  EXPECT_LT(log.position("w3"), log.position("w2"));
  EXPECT_LT(log.position("b3"), log.position("w2"));
  EXPECT_LT(log.position("w2"), log.position("w1"));
  EXPECT_LT(log.position("b2"), log.position("w1"));
  EXPECT_LT(log.position("w2"), log.position("b1"));
  // Each hook saw the final gradient.
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(tensors_close(log.seen[log.position(names[i])], params[i].grad())) << names[i];
  }

  // Once per pass: a second backward fires each hook once more.
  loss.backward();
  EXPECT_EQ(log.order.size(), 12u);
  for (const char* name : names) EXPECT_EQ(log.count(name), 2) << name;
}

TEST(GradReadyHook, FiresOnceForAParameterUsedTwiceAfterItsLastGradientArrives) {
  Generator gen(2);
  Variable x(Tensor::randn({2, 3}, gen, DType::kFloat64), false);
  Variable w(Tensor::randn({3, 3}, gen, DType::kFloat64), true);
  Variable v(Tensor::randn({3, 3}, gen, DType::kFloat64), true);
  w.set_name("w");
  v.set_name("v");
  HookLog log;
  log.watch(w);
  log.watch(v);
  // w is used first and last (tied weights); v in between.
  Variable h = tanh(matmul(x, w));
  h = tanh(matmul(h, v));
  Variable loss = sum(matmul(h, w));
  loss.backward();

  ASSERT_EQ(log.count("w"), 1);
  ASSERT_EQ(log.count("v"), 1);
  // w's gradient is final only after backward has passed its first use, which lies behind v's.
  EXPECT_LT(log.position("v"), log.position("w"));
  Tensor seen_w = log.seen[log.position("w")];
  EXPECT_TRUE(tensors_close(seen_w, w.grad()));

  // The same graph with the two uses of w as separate leaves: the hook saw their sum.
  Variable w_first(w.data(), true);
  Variable w_last(w.data(), true);
  Variable h2 = tanh(matmul(x, w_first));
  h2 = tanh(matmul(h2, v.detach()));
  sum(matmul(h2, w_last)).backward();
  Tensor both = ::tessera::add(w_first.grad(), w_last.grad());
  EXPECT_TRUE(tensors_close(seen_w, both, 1e-12, 1e-12));
  EXPECT_FALSE(tensors_close(seen_w, w_last.grad(), 1e-6, 1e-6));
}

TEST(GradReadyHook, FiresOnceForALeafUsedTwiceInOneOp) {
  Variable x = leaf({1, 2}, {2}, "x");
  HookLog log;
  log.watch(x);
  sum(mul(x, x)).backward();
  EXPECT_EQ(log.count("x"), 1);
  EXPECT_TRUE(tensors_close(log.seen[0], tensor({2, 4}, {2})));
}

TEST(GradReadyHook, DoesNotFireForLeavesBackwardDoesNotReach) {
  Variable used = leaf({1, 2}, {2}, "used");
  Variable unused = leaf({3, 4}, {2}, "unused");
  Variable other_graph = leaf({5, 6}, {2}, "other_graph");
  Variable under_no_grad = leaf({7, 8}, {2}, "under_no_grad");
  HookLog log;
  log.watch(used);
  log.watch(unused);
  log.watch(other_graph);
  log.watch(under_no_grad);
  Variable z = sum(mul(other_graph, other_graph));  // a separate graph, never backpropagated
  Variable constant;
  {
    NoGradGuard guard;
    constant = add(used, under_no_grad);  // not recorded: a constant to the graph below
  }
  Variable loss = sum(add(mul(used, used), constant));
  loss.backward();
  EXPECT_EQ(log.order, std::vector<std::string>{"used"});
  EXPECT_FALSE(unused.grad().defined());
  EXPECT_FALSE(other_graph.grad().defined());
  EXPECT_FALSE(under_no_grad.grad().defined());
}

TEST(GradReadyHook, StopsFiringOnceRemoved) {
  Variable x = leaf({1, 2}, {2}, "x");
  int calls = 0;
  int id = x.add_grad_ready_hook([&](Variable&) { ++calls; });
  sum(x * x).backward();
  EXPECT_EQ(calls, 1);
  x.remove_hook(id);
  sum(x * x).backward();
  EXPECT_EQ(calls, 1);
}

TEST(GradReadyHook, MayRemoveItselfWhileFiring) {
  Variable x = leaf({1, 2}, {2}, "x");
  int calls = 0;
  int id = -1;
  id = x.add_grad_ready_hook([&](Variable& v) {
    ++calls;
    v.remove_hook(id);
  });
  sum(x * x).backward();
  sum(x * x).backward();
  EXPECT_EQ(calls, 1);
}

TEST(GradReadyHook, IsRefusedOnANonLeaf) {
  Variable x = leaf({1, 2}, {2});
  Variable y = mul(x, x);
  EXPECT_THROW(y.add_grad_ready_hook([](Variable&) {}), ValueError);
}

TEST(GradReadyHook, FiresForALeafThatIsItselfTheRoot) {
  Variable x = leaf({1, 2}, {2}, "x");
  HookLog log;
  log.watch(x);
  x.backward(tensor({1, 1}, {2}));
  EXPECT_EQ(log.order, std::vector<std::string>{"x"});
}

TEST(Node, BackwardClosureDoesNotKeepItsOutputAlive) {
  // CONTRIBUTING.md convention 9: a node captures inputs and saved tensors, never its output's
  // node; so once the output is gone, nothing holds the node.
  Variable x = leaf({1, 2}, {2});
  std::weak_ptr<Node> node;
  {
    Variable y = exp(mul(x, x));
    node = y.grad_fn();
    EXPECT_FALSE(node.expired());
  }
  EXPECT_TRUE(node.expired());
}

}  // namespace
}  // namespace tessera::autograd
