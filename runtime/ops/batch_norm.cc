// BatchNorm2d in inference form (running statistics, `eps` 1e-5 unless the attribute says otherwise);
// compress folds it into the convolution before export, so it runs only in fp32 models.
#include <cmath>

#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  ctx.need_rank(3);
  ctx.need_dim(ctx.input()[0], ctx.attr_int("channels", 1, kMaxDim), "input channels");
  ctx.attr_number_or("eps", ops::kNormEps, 1e-12, 1.0);
  // Training-time only (compress keeps the statistics of such a node fixed); checked to be a boolean.
  static_cast<void>(ctx.attr_bool_or("frozen_statistics", false));
  return ctx.input();
}

std::vector<TensorSpec> tensors(const Node& n) {
  const int64_t c = n.attrs.at("channels").get<int64_t>();
  return {{n.name + ".weight", {c}},
          {n.name + ".bias", {c}},
          {n.name + ".running_mean", {c}, false},
          {n.name + ".running_var", {c}, false}};
}

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const int64_t c = ctx.attr("channels"), plane = in.shape[1] * in.shape[2];
  out.shape = in.shape;
  out.data.resize(in.data.size());
  const float *wt = ctx.tensor("weight"), *bs = ctx.tensor("bias"), *mean = ctx.tensor("running_mean"),
              *var = ctx.tensor("running_var");
  const float eps = ctx.node().attrs.value("eps", ops::kNormEps);
  for (int64_t b = 0; b < ctx.batch(); ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float inv = 1.0f / std::sqrt(var[ch] + eps);
      const float* x = in.data.data() + (b * c + ch) * plane;
      float* y = out.data.data() + (b * c + ch) * plane;
      for (int64_t p = 0; p < plane; ++p) y[p] = (x[p] - mean[ch]) * inv * wt[ch] + bs[ch];
    }
}

}  // namespace

extern const OpDef kBatchNorm2dOp = {OpKind::kBatchNorm2d, "BatchNorm2d", 1, infer, tensors, run, false};

}  // namespace mighty
