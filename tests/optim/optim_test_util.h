#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/core/serialize.h"
#include "tessera/tensor/tensor.h"

namespace tessera::optim::testing {

// A leaf parameter holding values, of the given dtype and shape (1-D when shape is empty).
inline autograd::Variable make_param(const std::vector<double>& values,
                                     DType dtype = DType::kFloat64, Shape shape = {},
                                     std::string name = "") {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  autograd::Variable v(Tensor::from_vector(values, shape).to(dtype), /*requires_grad=*/true);
  if (!name.empty()) v.set_name(std::move(name));
  return v;
}

// Sets p's gradient to values, in p's dtype and shape.
inline void set_grad(autograd::Variable& p, const std::vector<double>& values) {
  p.set_grad(Tensor::from_vector(values, p.shape()).to(p.dtype()));
}

inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

inline void expect_near(const std::vector<double>& actual, const std::vector<double>& expected,
                        double tol) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tol) << "element " << i;
  }
}

// Runs fn, expects it to throw E, and returns the message (empty when it did not throw).
template <typename E, typename Fn>
std::string thrown_message(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw another error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// save_state of any object with one, as bytes.
template <typename T>
std::string saved(const T& object) {
  std::ostringstream out;
  BinaryWriter writer(out);
  object.save_state(writer);
  return out.str();
}

template <typename T>
void load(T& object, const std::string& bytes) {
  std::istringstream in(bytes);
  BinaryReader reader(in, "test state");
  object.load_state(reader);
}

}  // namespace tessera::optim::testing
