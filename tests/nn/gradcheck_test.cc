// Gradient checks of the layers' functional forms (the modules call exactly these).
#include <gtest/gtest.h>

#include "tessera/autograd/functions.h"
#include "testing/gradcheck.h"

namespace tessera::nn {
namespace {

using autograd::Variable;
using testing::InputSpec;
using testing::Layout;
using testing::Values;

const bool kLayerNorm = testing::register_gradcheck(
    {"layer_norm",
     {InputSpec{{4, 6}}, InputSpec{{6}}, InputSpec{{6}}},
     [](const std::vector<Variable>& v) { return autograd::layer_norm(v[0], v[1], v[2], 1e-5); }});

const bool kLayerNormTransposed = testing::register_gradcheck(
    {"layer_norm_transposed_input",
     {InputSpec{{5, 4}, true, Layout::kTransposed}, InputSpec{{4}}, InputSpec{{4}}},
     [](const std::vector<Variable>& v) { return autograd::layer_norm(v[0], v[1], v[2], 1e-5); }});

const bool kBatchNorm2d = testing::register_gradcheck(
    {"batch_norm_2d_training",
     {InputSpec{{3, 2, 3, 3}}, InputSpec{{2}}, InputSpec{{2}}},
     [](const std::vector<Variable>& v) {
       return autograd::batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true, 0.1, 1e-5);
     }});

const bool kBatchNorm1d = testing::register_gradcheck(
    {"batch_norm_1d_training",
     {InputSpec{{5, 3}, true, Layout::kStrided}, InputSpec{{3}}, InputSpec{{3}}},
     [](const std::vector<Variable>& v) {
       return autograd::batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true, 0.1, 1e-5);
     }});

const bool kBatchNormEval = testing::register_gradcheck(
    {"batch_norm_eval",
     {InputSpec{{3, 2, 2, 2}}, InputSpec{{2}}, InputSpec{{2}}},
     [](const std::vector<Variable>& v) {
       Tensor mean = Tensor::from_vector<double>({0.5, -0.25}, {2}).to(v[0].dtype());
       Tensor var = Tensor::from_vector<double>({1.5, 0.75}, {2}).to(v[0].dtype());
       return autograd::batch_norm(v[0], v[1], v[2], mean, var, false, 0.1, 1e-5);
     }});

const bool kLinearTransposedWeight = testing::register_gradcheck(
    {"linear_layer_transposed_weight",
     {InputSpec{{4, 5}}, InputSpec{{3, 5}, true, Layout::kTransposed}, InputSpec{{3}}},
     [](const std::vector<Variable>& v) { return autograd::linear(v[0], v[1], v[2]); }});

const bool kConvLayer = testing::register_gradcheck(
    {"conv2d_layer_padding2",
     {InputSpec{{2, 2, 5, 5}}, InputSpec{{3, 2, 3, 3}}, InputSpec{{3}}},
     [](const std::vector<Variable>& v) {
       return autograd::conv2d(v[0], v[1], v[2], Conv2dOptions{.stride = 1, .padding = 2});
     }});

}  // namespace
}  // namespace tessera::nn

TESSERA_GRADCHECK_DRIVER(Nn);
