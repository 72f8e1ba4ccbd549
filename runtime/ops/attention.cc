// MultiHeadAttention (optionally causal): one packed in_proj (3e x d, rows in (q|k|v, head, i) order) and an
// out_proj (d x e), e = heads x head_dim (smaller than d once heads were pruned away). While decoding, each
// node keeps the keys and values of the positions seen so far (exec::DecodeCache), so a new token costs one
// position's work.
//
// ScaledDotProductAttention is the same node without its projections: [T, 3e] packed q|k|v in, the context
// [T, e] out. The quantizer splits a MultiHeadAttention into Linear (in_proj) -> ScaledDotProductAttention ->
// Linear (out_proj) so the projections run as int8 Linear layers (compress/passes/quantize.h). Both ops share
// `attend` below.
#include <cmath>
#include <tuple>

#include "kernels/fp32_math.h"
#include "kernels/fp32_ops.h"
#include "kernels/sgemm.h"
#include "kernels/transpose.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer_sdpa(const ShapeContext& ctx) {
  ctx.need_rank(2);
  const int64_t heads = ctx.attr_int("heads", 1, 4096), dh = ctx.attr_int("head_dim", 1, kMaxDim);
  ctx.need_dim(ctx.input()[1], 3 * heads * dh, "packed q|k|v width (3 x heads x head_dim)");
  static_cast<void>(ctx.attr_bool_or("causal", false));
  return {ctx.input()[0], heads * dh};
}

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
  const float* keys;    // rows (positions) of `stride` floats, or null when keys_t is given
  const float* keys_t;  // the decode cache's keys transposed, [e][keys_t_stride] (column = position)
  const float* values;
  int64_t stride, keys_t_stride, total;  // row strides and rows (positions) of the keys and values
};

// This call's keys and values (rows of qkv), or while decoding the cache with this call's rows appended. The
// cache keeps the keys transposed ([e][context]), the layout q k^T reads, so a decoding step adds a column
// instead of transposing every key it has seen.
KeysValues keys_values(exec::OpContext& ctx, const float* qkv, int64_t t, int64_t e) {
  exec::DecodeCache* cache = ctx.call().decode;
  if (!cache) return {qkv + e, nullptr, qkv + 2 * e, 3 * e, 0, t};
  const int64_t context = ctx.call().context;
  auto& kc = (*cache->keys)[static_cast<size_t>(ctx.index())];
  auto& vc = (*cache->values)[static_cast<size_t>(ctx.index())];
  if (kc.empty()) {
    kc.assign(static_cast<size_t>(context * e), 0.0f);
    vc.assign(static_cast<size_t>(context * e), 0.0f);
  }
  const int64_t start = cache->position;
  for (int64_t r = 0; r < t; ++r) {
    const float* k = qkv + r * 3 * e + e;
    for (int64_t i = 0; i < e; ++i) kc[static_cast<size_t>(i * context + start + r)] = k[i];
    std::copy(qkv + r * 3 * e + 2 * e, qkv + r * 3 * e + 3 * e, vc.data() + (start + r) * e);
  }
  return {nullptr, kc.data(), vc.data(), e, context, start + t};
}

// The context [t][e] of one example from its packed qkv [t][3e] (rows 3e apart): per head, scores = q k^T
// scaled and (causal) masked inside the softmax, then context = scores v.
void attend(exec::OpContext& ctx, const float* qkv, int64_t t, int64_t heads, int64_t dh, float* context) {
  const int64_t e = heads * dh;
  const int64_t start = ctx.call().decode ? ctx.call().decode->position : 0;
  const bool causal = ctx.attr_bool("causal", false);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  thread_local std::vector<float> scores, keys_t;  // scratch reused across runs on this thread
  const KeysValues kv = keys_values(ctx, qkv, t, e);
  scores.resize(static_cast<size_t>(t * kv.total));
  for (int64_t hd = 0; hd < heads; ++hd) {
    // q, k and v of head hd start at columns hd*dh (q in qkv, rows 3e apart; k and v in qkv or the cache).
    // Both products on the fp32 GEMM (kernels/sgemm.h): scores = q k^T with this head's keys transposed
    // ([dh][total]: the decode cache's own layout, else transposed here), context = scores v reading v in
    // place.
    const float* head_keys_t = nullptr;
    int64_t ldk = kv.total;
    if (kv.keys_t) {
      head_keys_t = kv.keys_t + hd * dh * kv.keys_t_stride;
      ldk = kv.keys_t_stride;
    } else {
      const float* keys = kv.keys + hd * dh;
      keys_t.resize(static_cast<size_t>(dh * kv.total));
      for (int64_t j = 0; j < kv.total; ++j)
        for (int64_t i = 0; i < dh; ++i)
          keys_t[static_cast<size_t>(i * kv.total + j)] = keys[j * kv.stride + i];
      head_keys_t = keys_t.data();
    }
    kernels::SgemmArgs qk;
    qk.a = qkv + hd * dh;
    qk.lda = 3 * e;
    qk.b = head_keys_t;
    qk.ldb = ldk;
    qk.n = qk.ldc = kv.total;
    qk.c = scores.data();
    qk.m = t;
    qk.k = dh;
    kernels::sgemm(qk, ctx.call().pool);
    // Scaled and (causal: query row r sits at absolute position start + r and sees keys 0 .. start + r)
    // masked inside the softmax.
    kernels::SoftmaxArgs sm;
    sm.x = sm.y = scores.data();
    sm.rows = t;
    sm.cols = kv.total;
    sm.scale = scale;
    sm.causal_offset = causal ? start : -1;
    kernels::fp32_math().softmax(sm);
    kernels::SgemmArgs sv;
    sv.a = scores.data();
    sv.lda = sv.k = kv.total;
    sv.b = kv.values + hd * dh;
    sv.ldb = kv.stride;
    sv.c = context + hd * dh;
    sv.ldc = e;
    sv.m = t;
    sv.n = dh;
    kernels::sgemm(sv, ctx.call().pool);
  }
}

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const int64_t d = ctx.attr("d_model"), heads = ctx.attr("heads"), dh = attention_head_dim(ctx.node());
  const int64_t e = heads * dh, t = in.shape[0];
  out.shape = in.shape;
  out.data.resize(in.data.size());
  std::vector<float> qkv(static_cast<size_t>(t * 3 * e)), context(static_cast<size_t>(t * e));
  for (int64_t b = 0; b < ctx.batch(); ++b) {
    kernels::linear_fp32(in.data.data() + b * t * d, t, d, ctx.repacked("in_proj.weight"),
                         ctx.tensor("in_proj.bias"), 3 * e, qkv.data(), ctx.call().pool);
    attend(ctx, qkv.data(), t, heads, dh, context.data());
    kernels::linear_fp32(context.data(), t, e, ctx.repacked("out_proj.weight"), ctx.tensor("out_proj.bias"),
                         d, out.data.data() + b * t * d, ctx.call().pool);
  }
}

void run_sdpa(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const int64_t heads = ctx.attr("heads"), dh = ctx.attr("head_dim"), e = heads * dh, t = in.shape[0];
  out.shape = {t, e};
  out.data.resize(static_cast<size_t>(ctx.batch() * t * e));
  for (int64_t b = 0; b < ctx.batch(); ++b)
    attend(ctx, in.data.data() + b * t * 3 * e, t, heads, dh, out.data.data() + b * t * e);
}

// The projections' weights transposed once for the fp32 GEMM, which reads B's rows.
void prepare(const Node& n, exec::PreparedNode& p) {
  const int64_t d = n.attrs.at("d_model").get<int64_t>(), inner = attention_inner(n);
  for (const auto& [name, rows, cols] :
       {std::tuple<const char*, int64_t, int64_t>{"in_proj.weight", 3 * inner, d},
        {"out_proj.weight", d, inner}}) {
    std::vector<float> wt(static_cast<size_t>(rows * cols));
    kernels::transpose(p.find(name), rows, cols, wt.data());
    p.repacked.emplace_back(name, std::move(wt));
  }
}

}  // namespace

extern const OpDef kMultiHeadAttentionOp = {
    OpKind::kMultiHeadAttention, "MultiHeadAttention", 1, infer, tensors, run, false, prepare};
extern const OpDef kScaledDotProductAttentionOp = {OpKind::kScaledDotProductAttention,
                                                   "ScaledDotProductAttention",
                                                   1,
                                                   infer_sdpa,
                                                   nullptr,
                                                   run_sdpa,
                                                   false,
                                                   nullptr};

}  // namespace mighty
