// Elementwise activations: ReLU (also on a uint8 chain, where the producing conv has already clamped at the
// zero point), GELU (erf form) and Softmax over the last dimension.
#include <algorithm>

#include "kernels/fp32_ops.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

void run_relu(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  if (in.is_u8) {  // already clamped at the zero point by the producing conv (its only consumer)
    out.params = in.params;
    out.u8 = ctx.take_u8();
    out.is_u8 = true;
    return;
  }
  out.data.resize(in.data.size());
  std::transform(in.data.begin(), in.data.end(), out.data.begin(),
                 [](float v) { return v > 0.0f ? v : 0.0f; });
}

void run_gelu(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  out.data.resize(in.data.size());
  kernels::gelu(in.data.data(), static_cast<int64_t>(in.data.size()), out.data.data());
}

void run_softmax(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = in.shape;
  out.data.resize(in.data.size());
  const int64_t cols = in.shape.back();
  kernels::softmax_rows(in.data.data(), static_cast<int64_t>(in.data.size()) / cols, cols, out.data.data());
}

}  // namespace

extern const OpDef kReLUOp = {OpKind::kReLU, "ReLU", 1, ops::same_shape, nullptr, run_relu, true};
extern const OpDef kGELUOp = {OpKind::kGELU, "GELU", 1, ops::same_shape, nullptr, run_gelu, false};
extern const OpDef kSoftmaxOp = {OpKind::kSoftmax, "Softmax",   1,    ops::same_shape,
                                 nullptr,          run_softmax, false};

}  // namespace mighty
