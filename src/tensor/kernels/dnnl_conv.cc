#include "dnnl_conv.h"

#include <oneapi/dnnl/dnnl.hpp>

#include "tessera/core/error.h"
#include "tessera/tensor/threads.h"

namespace tessera::kernels {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Descs {
  memory::desc src, weights, bias, dst;
  memory::dims strides, pad;
};

Descs descs(const ConvShape& g, Tag tag) {
  return {memory::desc({g.n, g.c, g.h, g.w}, kF32, tag),
          memory::desc({g.o, g.c, g.kh, g.kw}, kF32, tag),
          memory::desc({g.o}, kF32, Tag::x),
          memory::desc({g.n, g.o, g.oh, g.ow}, kF32, tag),
          {g.stride, g.stride},
          {g.pad, g.pad}};
}

memory user_memory(const memory::dims& dims, Tag tag, const float* data) {
  return memory({dims, kF32, tag}, cpu_engine(), const_cast<float*>(data));
}

// The user's buffer if the primitive takes its layout, else a reordered copy.
memory to_layout(memory user, const memory::desc& want, dnnl::stream& stream) {
  if (user.get_desc() == want) return user;
  memory m(want, cpu_engine());
  dnnl::reorder(user, m).execute(stream, user, m);
  return m;
}

// Writes a primitive's result back to the user's buffer when the layouts differ.
void from_layout(memory result, memory user, dnnl::stream& stream) {
  if (result.get_desc() == user.get_desc()) return;
  dnnl::reorder(result, user).execute(stream, result, user);
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvShape& g, bool with_bias) {
  Descs any = descs(g, Tag::any);
  auto desc = with_bias
                  ? dnnl::convolution_forward::desc(
                        dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                        any.src, any.weights, any.bias, any.dst, any.strides, any.pad, any.pad)
                  : dnnl::convolution_forward::desc(
                        dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                        any.src, any.weights, any.dst, any.strides, any.pad, any.pad);
  return {desc, cpu_engine()};
}

template <typename F>
void guarded(const char* op, F&& f) {
  apply_blas_threads();
  try {
    f();
  } catch (const dnnl::error& e) {
    throw InternalError(detail::concat(op, ": oneDNN failed: ", e.what()));
  }
}

}  // namespace

void dnnl_conv2d_forward(const ConvShape& g, const float* input, const float* weight,
                         const float* bias, float* output) {
  guarded("conv2d", [&] {
    dnnl::stream stream(cpu_engine());
    auto pd = forward_pd(g, bias != nullptr);
    memory user_src = user_memory({g.n, g.c, g.h, g.w}, Tag::nchw, input);
    memory user_w = user_memory({g.o, g.c, g.kh, g.kw}, Tag::oihw, weight);
    memory user_dst = user_memory({g.n, g.o, g.oh, g.ow}, Tag::nchw, output);
    memory src = to_layout(user_src, pd.src_desc(), stream);
    memory w = to_layout(user_w, pd.weights_desc(), stream);
    memory dst =
        pd.dst_desc() == user_dst.get_desc() ? user_dst : memory(pd.dst_desc(), cpu_engine());
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
    if (bias) args[DNNL_ARG_BIAS] = user_memory({g.o}, Tag::x, bias);
    dnnl::convolution_forward(pd).execute(stream, args);
    from_layout(dst, user_dst, stream);
    stream.wait();
  });
}

void dnnl_conv2d_backward_data(const ConvShape& g, const float* grad_output, const float* weight,
                               float* grad_input) {
  guarded("conv2d_backward", [&] {
    dnnl::stream stream(cpu_engine());
    auto hint = forward_pd(g, false);
    Descs any = descs(g, Tag::any);
    dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, any.src,
                                               any.weights, any.dst, any.strides, any.pad, any.pad);
    dnnl::convolution_backward_data::primitive_desc pd(desc, cpu_engine(), hint);
    memory user_gy = user_memory({g.n, g.o, g.oh, g.ow}, Tag::nchw, grad_output);
    memory user_w = user_memory({g.o, g.c, g.kh, g.kw}, Tag::oihw, weight);
    memory user_gx = user_memory({g.n, g.c, g.h, g.w}, Tag::nchw, grad_input);
    memory gy = to_layout(user_gy, pd.diff_dst_desc(), stream);
    memory w = to_layout(user_w, pd.weights_desc(), stream);
    memory gx = pd.diff_src_desc() == user_gx.get_desc() ? user_gx
                                                         : memory(pd.diff_src_desc(), cpu_engine());
    dnnl::convolution_backward_data(pd).execute(
        stream, {{DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, gx}});
    from_layout(gx, user_gx, stream);
    stream.wait();
  });
}

void dnnl_conv2d_backward_weights(const ConvShape& g, const float* input, const float* grad_output,
                                  float* grad_weight, float* grad_bias) {
  guarded("conv2d_backward", [&] {
    dnnl::stream stream(cpu_engine());
    auto hint = forward_pd(g, grad_bias != nullptr);
    Descs any = descs(g, Tag::any);
    auto desc = grad_bias ? dnnl::convolution_backward_weights::desc(
                                dnnl::algorithm::convolution_direct, any.src, any.weights, any.bias,
                                any.dst, any.strides, any.pad, any.pad)
                          : dnnl::convolution_backward_weights::desc(
                                dnnl::algorithm::convolution_direct, any.src, any.weights, any.dst,
                                any.strides, any.pad, any.pad);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, cpu_engine(), hint);
    memory user_x = user_memory({g.n, g.c, g.h, g.w}, Tag::nchw, input);
    memory user_gy = user_memory({g.n, g.o, g.oh, g.ow}, Tag::nchw, grad_output);
    memory user_gw = user_memory({g.o, g.c, g.kh, g.kw}, Tag::oihw, grad_weight);
    memory x = to_layout(user_x, pd.src_desc(), stream);
    memory gy = to_layout(user_gy, pd.diff_dst_desc(), stream);
    memory gw = pd.diff_weights_desc() == user_gw.get_desc()
                    ? user_gw
                    : memory(pd.diff_weights_desc(), cpu_engine());
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_DIFF_WEIGHTS, gw}};
    if (grad_bias) args[DNNL_ARG_DIFF_BIAS] = user_memory({g.o}, Tag::x, grad_bias);
    dnnl::convolution_backward_weights(pd).execute(stream, args);
    from_layout(gw, user_gw, stream);
    stream.wait();
  });
}

}  // namespace tessera::kernels
