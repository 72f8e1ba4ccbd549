// MultiHeadAttention (optionally causal): one packed in_proj (3e x d, rows in (q|k|v, head, i) order) and an
// out_proj (d x e), e = heads x head_dim (smaller than d once heads were pruned away). While decoding, each
// node keeps the keys and values of the positions seen so far (exec::DecodeCache), so a new token costs one
// position's work.
#include <cmath>
#include <limits>

#include "kernels/fp32_ops.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  ctx.need_rank(2);
  const int64_t d = ctx.attr_int("d_model", 1, kMaxDim);
  const int64_t heads = ctx.attr_int("heads", 1, 4096);
  ctx.need_dim(ctx.input()[1], d, "model width");
  // head_dim: given when heads were pruned away (heads * head_dim < d_model), else d_model / heads.
  if (!ctx.node().attrs.contains("head_dim") && d % heads != 0)
    ctx.fail(fmt::format("d_model {} is not divisible by {} heads", d, heads));
  ctx.attr_int_or("head_dim", d / heads, 1, kMaxDim);
  return ctx.input();
}

std::vector<TensorSpec> tensors(const Node& n) {
  const int64_t d = n.attrs.at("d_model").get<int64_t>(), inner = attention_inner(n);
  return {{n.name + ".in_proj.weight", {3 * inner, d}},
          {n.name + ".in_proj.bias", {3 * inner}},
          {n.name + ".out_proj.weight", {d, inner}},
          {n.name + ".out_proj.bias", {d}}};
}

struct KeysValues {
  const float* keys;
  const float* values;
  int64_t stride, total;  // row stride and rows (positions) of the keys and values
};

// This call's keys and values (rows of qkv), or while decoding the cache with this call's rows appended.
KeysValues keys_values(exec::OpContext& ctx, const float* qkv, int64_t t, int64_t e) {
  exec::DecodeCache* cache = ctx.call().decode;
  if (!cache) return {qkv + e, qkv + 2 * e, 3 * e, t};
  auto& kc = (*cache->keys)[static_cast<size_t>(ctx.index())];
  auto& vc = (*cache->values)[static_cast<size_t>(ctx.index())];
  if (kc.empty()) {
    kc.assign(static_cast<size_t>(ctx.call().context * e), 0.0f);
    vc.assign(static_cast<size_t>(ctx.call().context * e), 0.0f);
  }
  const int64_t start = cache->position;
  for (int64_t r = 0; r < t; ++r) {
    std::copy(qkv + r * 3 * e + e, qkv + r * 3 * e + 2 * e, kc.data() + (start + r) * e);
    std::copy(qkv + r * 3 * e + 2 * e, qkv + r * 3 * e + 3 * e, vc.data() + (start + r) * e);
  }
  return {kc.data(), vc.data(), e, start + t};
}

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const int64_t d = ctx.attr("d_model"), heads = ctx.attr("heads"), dh = attention_head_dim(ctx.node());
  const int64_t e = heads * dh, t = in.shape[0];
  const int64_t start = ctx.call().decode ? ctx.call().decode->position : 0;
  const bool causal = ctx.attr_bool("causal", false);
  out.shape = in.shape;
  out.data.resize(in.data.size());
  std::vector<float> qkv(static_cast<size_t>(t * 3 * e)), context(static_cast<size_t>(t * e)), scores;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  for (int64_t b = 0; b < ctx.batch(); ++b) {
    kernels::linear_fp32(in.data.data() + b * t * d, t, d, ctx.tensor("in_proj.weight"),
                         ctx.tensor("in_proj.bias"), 3 * e, qkv.data());
    const KeysValues kv = keys_values(ctx, qkv.data(), t, e);
    scores.resize(static_cast<size_t>(t * kv.total));
    for (int64_t hd = 0; hd < heads; ++hd) {
      // q, k and v of head hd start at columns hd*dh (q in qkv, rows 3e apart; k and v in qkv or the cache).
      using Strided = Eigen::Map<const ops::RowMatrix, 0, Eigen::OuterStride<>>;
      const Strided q(qkv.data() + hd * dh, t, dh, Eigen::OuterStride<>(3 * e));
      const Strided k(kv.keys + hd * dh, kv.total, dh, Eigen::OuterStride<>(kv.stride));
      const Strided v(kv.values + hd * dh, kv.total, dh, Eigen::OuterStride<>(kv.stride));
      ops::Rows s(scores.data(), t, kv.total);
      s.noalias() = q * k.transpose();
      s *= scale;
      if (causal) {
        // Query row r sits at absolute position start + r and sees keys 0 .. start + r.
        for (int64_t r = 0; r < t; ++r)
          for (int64_t c = start + r + 1; c < kv.total; ++c)
            s(r, c) = -std::numeric_limits<float>::infinity();
      }
      kernels::softmax_rows(scores.data(), t, kv.total, scores.data());
      Eigen::Map<ops::RowMatrix, 0, Eigen::OuterStride<>> ctx_rows(context.data() + hd * dh, t, dh,
                                                                   Eigen::OuterStride<>(e));
      ctx_rows.noalias() = s * v;
    }
    kernels::linear_fp32(context.data(), t, e, ctx.tensor("out_proj.weight"), ctx.tensor("out_proj.bias"), d,
                         out.data.data() + b * t * d);
  }
}

}  // namespace

extern const OpDef kMultiHeadAttentionOp = {
    OpKind::kMultiHeadAttention, "MultiHeadAttention", 1, infer, tensors, run, false};

}  // namespace mighty
