// MultiHeadAttention in LibTorch: one packed input projection [3 * heads * head_dim, d_model] and an output
// projection [d_model, heads * head_dim], as the IR's (head_dim = d_model / heads unless heads were pruned
// away); causal when the attribute says so. Both projections are prunable weights; heads are removed by
// channel pruning's head groups (compress/passes/structured.h).
//
// ScaledDotProductAttention: the same without the projections ([B, T, 3e] packed q|k|v -> [B, T, e]), what
// the quantizer splits a MultiHeadAttention into between its two projections (compress/passes/quantize.h).
#include <cmath>
#include <limits>

#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

// The context [B, T, heads * dh] of the packed q|k|v [B, T, 3 * heads * dh] (columns in (q|k|v, head, i)
// order).
torch::Tensor attend(const torch::Tensor& qkv_packed, int64_t heads, int64_t dh, bool causal) {
  const int64_t b = qkv_packed.size(0), t = qkv_packed.size(1);
  auto qkv = qkv_packed.view({b, t, 3, heads, dh}).permute({2, 0, 3, 1, 4});  // [3, B, H, T, dh]
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(dh));
  if (causal) {
    auto mask = torch::ones({t, t}, torch::kBool).triu(1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  auto context = torch::matmul(torch::softmax(scores, -1), v);  // [B, H, T, dh]
  return context.transpose(1, 2).reshape({b, t, heads * dh});
}

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t d_model, int64_t heads, bool causal, int64_t head_dim)
      : heads_(heads), head_dim_(head_dim), causal_(causal) {
    in_proj_ = register_module("in_proj", torch::nn::Linear(d_model, 3 * heads * head_dim));
    out_proj_ = register_module("out_proj", torch::nn::Linear(heads * head_dim, d_model));
  }

  torch::Tensor forward(const torch::Tensor& x) {  // [B, T, D] -> [B, T, D]
    return out_proj_->forward(attend(in_proj_->forward(x), heads_, head_dim_, causal_));
  }

 private:
  int64_t heads_, head_dim_;
  bool causal_;
  torch::nn::Linear in_proj_{nullptr}, out_proj_{nullptr};
};

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  return std::make_shared<AttentionImpl>(n.attrs.at("d_model").get<int64_t>(),
                                         n.attrs.at("heads").get<int64_t>(), n.attrs.value("causal", false),
                                         attention_head_dim(n));
}

torch::Tensor forward(const TorchCall& c) { return c.module<AttentionImpl>().forward(c.in()); }

std::vector<PrunableWeight> projections(const Node& n) {
  return {{n.name + ".in_proj", n.name + ".in_proj.weight"},
          {n.name + ".out_proj", n.name + ".out_proj.weight"}};
}

torch::Tensor forward_sdpa(const TorchCall& c) {
  const Node& n = c.node();
  return attend(c.in(), n.attrs.at("heads").get<int64_t>(), n.attrs.at("head_dim").get<int64_t>(),
                n.attrs.value("causal", false));
}

}  // namespace

extern const TorchOpDef kMultiHeadAttentionTorchOp = {
    OpKind::kMultiHeadAttention, module,  forward, {},    nullptr, projections,
    ChannelRole::kMixes,         nullptr, nullptr, false, nullptr, false};

extern const TorchOpDef kScaledDotProductAttentionTorchOp = {OpKind::kScaledDotProductAttention,
                                                             nullptr,
                                                             forward_sdpa,
                                                             {},
                                                             nullptr,
                                                             nullptr,
                                                             ChannelRole::kMixes,
                                                             nullptr,
                                                             nullptr,
                                                             false,
                                                             nullptr,
                                                             false};

}  // namespace mighty::compress
