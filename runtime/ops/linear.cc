// Linear: y = x W^T + b over the last dimension; fp32, or int8 (dynamic or static activations, and the
// channels-last uint8 input at the end of a uint8 chain).
#include <fmt/format.h>

#include "kernels/fp32_ops.h"
#include "kernels/transpose.h"
#include "runtime/error.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  const int64_t in_features = ctx.attr_int("in_features", 1, kMaxDim);
  const int64_t out_features = ctx.attr_int("out_features", 1, kMaxDim);
  if (ctx.input().empty()) ctx.fail("input has rank 0");
  ctx.need_dim(ctx.input().back(), in_features, "input's last dimension");
  Shape shape = ctx.input();
  shape.back() = out_features;
  return shape;
}

std::vector<TensorSpec> tensors(const Node& n) {
  const int64_t in = n.attrs.at("in_features").get<int64_t>(),
                out = n.attrs.at("out_features").get<int64_t>();
  std::vector<TensorSpec> t = {{n.name + ".weight", {out, in}}};
  if (n.attrs.value("bias", true)) t.push_back({n.name + ".bias", {out}});
  return t;
}

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const exec::LayerAttrs& la = ctx.attrs();
  const exec::Int8Layer* q = ctx.int8();
  out.shape = in.shape;
  out.shape.back() = la.out;
  const int64_t rows = ctx.batch() * ops::product(in.shape) / la.in;
  out.data.resize(static_cast<size_t>(rows * la.out));
  const float* bias = la.bias ? ctx.tensor("bias") : nullptr;
  if (in.is_u8 != (q && q->hwc_input)) {
    throw Error(
        fmt::format("graph node '{}': uint8 input and channels-last weights go together", ctx.node().name));
  }
  if (in.is_u8) {
    exec::linear_int8(*q, nullptr, rows, bias, out.data.data(), in.u8.data(), ctx.call().pool);
  } else if (q) {
    exec::linear_int8(*q, in.data.data(), rows, bias, out.data.data(), nullptr, ctx.call().pool);
  } else {
    kernels::linear_fp32(in.data.data(), rows, la.in, ctx.repacked("weight"), bias, la.out, out.data.data(),
                         ctx.call().pool);
  }
}

// An fp32 Linear's weights [out][in] transposed once for the fp32 GEMM, which reads B's rows.
void prepare(const Node& n, exec::PreparedNode& p) {
  if (p.int8) return;
  std::vector<float> wt(static_cast<size_t>(p.attrs.in * p.attrs.out));
  kernels::transpose(p.find("weight"), p.attrs.out, p.attrs.in, wt.data());
  p.repacked.emplace_back("weight", std::move(wt));
}

}  // namespace

extern const OpDef kLinearOp = {OpKind::kLinear, "Linear", 1, infer, tensors, run, true, prepare};

}  // namespace mighty
