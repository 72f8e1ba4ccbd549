// Elementwise activations: ReLU (also on a uint8 chain, where the producing conv has already clamped at the
// zero point), GELU (erf form), Clip to [min, max] (ReLU6 is Clip(0, 6)), SiLU (x sigmoid(x)), HardSwish
// (x relu6(x + 3) / 6), HardSigmoid (clamp(alpha x + beta, 0, 1); LibTorch's alpha 1/6, beta 1/2 by
// default), Sigmoid, Tanh, Softmax over the last dimension, and L2Normalize (each row over its L2 norm).
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "kernels/fp32_math.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

// A uint8 value handed on: the producing conv has already applied this op's clamp (its only consumer).
void pass_u8(exec::OpContext& ctx) {
  exec::Value& out = ctx.out();
  out.shape = ctx.in().shape;
  out.params = ctx.in().params;
  out.u8 = ctx.take_u8();
  out.is_u8 = true;
}

void run_relu(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  if (in.is_u8) return pass_u8(ctx);  // clamped at the zero point by the producing conv
  out.data.resize(in.data.size());
  std::transform(in.data.begin(), in.data.end(), out.data.begin(), ops::relu);
}

// out = f(in) for one of the fp32 math kernels (kernels/fp32_math.h).
void map_kernel(exec::OpContext& ctx, void (*f)(const float*, int64_t, float*)) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  out.data.resize(in.data.size());
  f(in.data.data(), static_cast<int64_t>(in.data.size()), out.data.data());
}

void run_gelu(exec::OpContext& ctx) { map_kernel(ctx, kernels::fp32_math().gelu); }

// out = f(in) elementwise, on float values.
template <class F>
void map(exec::OpContext& ctx, F f) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  out.data.resize(in.data.size());
  std::transform(in.data.begin(), in.data.end(), out.data.begin(), f);
}

Shape infer_clip(const ShapeContext& ctx) {
  const double lo = ctx.attr_number_or("min", -FLT_MAX, -FLT_MAX, FLT_MAX);
  const double hi = ctx.attr_number_or("max", FLT_MAX, -FLT_MAX, FLT_MAX);
  if (lo > hi) ctx.fail(fmt::format("min {} is above max {}", lo, hi));
  return ctx.input();
}

void run_clip(exec::OpContext& ctx) {
  if (ctx.in().is_u8) return pass_u8(ctx);  // clamped by the producing conv (exec/u8_chain.h)
  const float lo = ctx.node().attrs.value("min", -FLT_MAX), hi = ctx.node().attrs.value("max", FLT_MAX);
  map(ctx, [lo, hi](float v) { return std::min(std::max(v, lo), hi); });
}

void run_silu(exec::OpContext& ctx) { map_kernel(ctx, kernels::fp32_math().silu); }

void run_hardswish(exec::OpContext& ctx) {
  map(ctx, [](float v) { return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f; });
}

Shape infer_hardsigmoid(const ShapeContext& ctx) {
  ctx.attr_number_or("alpha", 1.0 / 6.0, -1e6, 1e6);
  ctx.attr_number_or("beta", 0.5, -1e6, 1e6);
  return ctx.input();
}

void run_hardsigmoid(exec::OpContext& ctx) {
  const float alpha = ctx.node().attrs.value("alpha", 1.0f / 6.0f),
              beta = ctx.node().attrs.value("beta", 0.5f);
  map(ctx, [alpha, beta](float v) { return std::min(std::max(alpha * v + beta, 0.0f), 1.0f); });
}

void run_sigmoid(exec::OpContext& ctx) { map_kernel(ctx, kernels::fp32_math().sigmoid); }

// std::tanh in float on every path (scalar, so every build gives the same bits).
void run_tanh(exec::OpContext& ctx) {
  map(ctx, [](float v) { return std::tanh(v); });
}

Shape infer_l2(const ShapeContext& ctx) {
  ctx.attr_number_or("eps", 1e-12, 0.0, 1.0);
  return ctx.input();
}

// Each row (the last dimension) times 1 / sqrt(max(sum of its squares, eps)); the sum in double, the scale
// rounded to float once (as Universal Sentence Encoder's l2_normalize: x * rsqrt(max(|x|^2, eps))).
void run_l2_normalize(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  out.data.resize(in.data.size());
  const double eps = ctx.node().attrs.value("eps", 1e-12);
  const int64_t cols = in.shape.back(), rows = static_cast<int64_t>(in.data.size()) / cols;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in.data.data() + r * cols;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += static_cast<double>(x[c]) * x[c];
    const auto scale = static_cast<float>(1.0 / std::sqrt(std::max(sum, eps)));
    float* y = out.data.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) y[c] = x[c] * scale;
  }
}

void run_softmax(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  out.data.resize(in.data.size());
  const int64_t cols = in.shape.back();
  kernels::SoftmaxArgs a;
  a.x = in.data.data();
  a.y = out.data.data();
  a.rows = static_cast<int64_t>(in.data.size()) / cols;
  a.cols = cols;
  kernels::fp32_math().softmax(a);
}

}  // namespace

extern const OpDef kReLUOp = {OpKind::kReLU, "ReLU", 1, ops::same_shape, nullptr, run_relu, true};
extern const OpDef kGELUOp = {OpKind::kGELU, "GELU", 1, ops::same_shape, nullptr, run_gelu, false};
extern const OpDef kClipOp = {OpKind::kClip, "Clip", 1, infer_clip, nullptr, run_clip, true};
extern const OpDef kSiLUOp = {OpKind::kSiLU, "SiLU", 1, ops::same_shape, nullptr, run_silu, false};
extern const OpDef kHardSwishOp = {OpKind::kHardSwish, "HardSwish", 1, ops::same_shape, nullptr,
                                   run_hardswish,      false};
extern const OpDef kHardSigmoidOp = {OpKind::kHardSigmoid, "HardSigmoid", 1, infer_hardsigmoid, nullptr,
                                     run_hardsigmoid,      false};
extern const OpDef kSigmoidOp = {OpKind::kSigmoid, "Sigmoid",   1,    ops::same_shape,
                                 nullptr,          run_sigmoid, false};
extern const OpDef kTanhOp = {OpKind::kTanh, "Tanh", 1, ops::same_shape, nullptr, run_tanh, false};
extern const OpDef kL2NormalizeOp = {OpKind::kL2Normalize, "L2Normalize", 1, infer_l2, nullptr,
                                     run_l2_normalize,     false};
extern const OpDef kSoftmaxOp = {OpKind::kSoftmax, "Softmax",   1,    ops::same_shape,
                                 nullptr,          run_softmax, false};

}  // namespace mighty
