// LayerNorm over the last dimension, with weight and bias; `eps` 1e-5 unless the attribute says otherwise.
#include "kernels/fp32_math.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  if (ctx.input().empty()) ctx.fail("input has rank 0");
  ctx.need_dim(ctx.input().back(), ctx.attr_int("dim", 1, kMaxDim), "input's last dimension");
  ctx.attr_number_or("eps", ops::kNormEps, 1e-12, 1.0);
  return ctx.input();
}

std::vector<TensorSpec> tensors(const Node& n) {
  const int64_t dim = n.attrs.at("dim").get<int64_t>();
  return {{n.name + ".weight", {dim}}, {n.name + ".bias", {dim}}};
}

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const int64_t dim = ctx.attr("dim");
  out.shape = in.shape;
  out.data.resize(in.data.size());
  kernels::fp32_math().layer_norm(in.data.data(), static_cast<int64_t>(in.data.size()) / dim, dim,
                                  ctx.tensor("weight"), ctx.tensor("bias"),
                                  ctx.node().attrs.value("eps", ops::kNormEps), out.data.data());
}

}  // namespace

extern const OpDef kLayerNormOp = {OpKind::kLayerNorm, "LayerNorm", 1, infer, tensors, run, false};

}  // namespace mighty
