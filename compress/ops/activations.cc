// Element-wise activations in LibTorch: ReLU, GELU (exact, erf), Clip (hardtanh, relu6, clamp), SiLU,
// HardSwish, HardSigmoid, Sigmoid, Tanh, Softmax over the last dimension; lowered from their aten ops; and
// L2Normalize. ReLU, GELU, Clip, SiLU, HardSwish and Tanh are per channel for channel pruning; the sigmoids
// are gates (they feed a Mul, which mixes paths), Softmax and L2Normalize mix.
#include <torch/csrc/jit/ir/ir.h>

#include <cfloat>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor relu(const TorchCall& c) { return torch::relu(c.in()); }
torch::Tensor gelu(const TorchCall& c) { return torch::gelu(c.in()); }
torch::Tensor softmax(const TorchCall& c) { return torch::softmax(c.in(), -1); }

torch::Tensor clip(const TorchCall& c) {
  const auto& a = c.node().attrs;
  return torch::clamp(c.in(), a.value("min", -FLT_MAX), a.value("max", FLT_MAX));
}
torch::Tensor silu(const TorchCall& c) { return torch::silu(c.in()); }
torch::Tensor hardswish(const TorchCall& c) { return torch::hardswish(c.in()); }
torch::Tensor hardsigmoid(const TorchCall& c) {
  const auto& a = c.node().attrs;
  const double alpha = a.value("alpha", 1.0 / 6.0), beta = a.value("beta", 0.5);
  if (alpha == 1.0 / 6.0 && beta == 0.5) return torch::hardsigmoid(c.in());
  return (c.in() * alpha + beta).clamp(0.0, 1.0);
}
torch::Tensor sigmoid(const TorchCall& c) { return torch::sigmoid(c.in()); }
torch::Tensor tanh(const TorchCall& c) { return torch::tanh(c.in()); }
// x * rsqrt(max(sum of squares over the last dimension, eps)), as Universal Sentence Encoder computes it.
torch::Tensor l2_normalize(const TorchCall& c) {
  const double eps = c.node().attrs.value("eps", 1e-12);
  return c.in() * torch::rsqrt(c.in().square().sum(-1, true).clamp_min(eps));
}

// aten::hardtanh(x, min, max), aten::relu6(x), aten::clamp(x, min?, max?).
void lower_clip(ScriptLowering& l, const torch::jit::Node* n) {
  const std::string kind = n->kind().toQualString();
  nlohmann::json attrs = nlohmann::json::object();
  if (kind.rfind("aten::relu6", 0) == 0) {
    attrs = {{"min", 0.0}, {"max", 6.0}};
  } else {
    for (size_t i : {size_t{1}, size_t{2}}) {
      const auto v = l.constant(n, i);
      if (v.isNone()) continue;
      if (!v.isScalar()) l.fail(n, "clamp bounds must be numbers (tensor bounds are not supported)");
      attrs[i == 1 ? "min" : "max"] = v.toScalar().toDouble();
    }
  }
  l.add(n, "clip", OpKind::kClip, {l.input_of(n, 0)}, attrs);
}

void lower_unary(ScriptLowering& l, const torch::jit::Node* n, const char* prefix, OpKind op) {
  l.add(n, prefix, op, {l.input_of(n, 0)});
}
void lower_silu(ScriptLowering& l, const torch::jit::Node* n) { lower_unary(l, n, "silu", OpKind::kSiLU); }
void lower_hardswish(ScriptLowering& l, const torch::jit::Node* n) {
  lower_unary(l, n, "hardswish", OpKind::kHardSwish);
}
void lower_hardsigmoid(ScriptLowering& l, const torch::jit::Node* n) {
  lower_unary(l, n, "hardsigmoid", OpKind::kHardSigmoid);
}
void lower_sigmoid(ScriptLowering& l, const torch::jit::Node* n) {
  lower_unary(l, n, "sigmoid", OpKind::kSigmoid);
}
void lower_tanh(ScriptLowering& l, const torch::jit::Node* n) { lower_unary(l, n, "tanh", OpKind::kTanh); }

void lower_relu(ScriptLowering& l, const torch::jit::Node* n) {
  l.add(n, "relu", OpKind::kReLU, {l.input_of(n, 0)});
}

void lower_gelu(ScriptLowering& l, const torch::jit::Node* n) {
  if (n->inputs().size() > 1 && l.constant(n, 1).toStringRef() != "none")
    l.fail(n, "only the exact (erf) GELU");
  l.add(n, "gelu", OpKind::kGELU, {l.input_of(n, 0)});
}

void lower_softmax(ScriptLowering& l, const torch::jit::Node* n) {
  const int64_t dim = l.constant(n, 1).toInt();
  if (dim != -1 && dim != 1) l.fail(n, "softmax must be over the last dimension");
  l.add(n, "softmax", OpKind::kSoftmax, {l.input_of(n, 0)});
}

}  // namespace

extern const TorchOpDef kReLUTorchOp = {OpKind::kReLU,
                                        nullptr,
                                        relu,
                                        {"aten::relu", "aten::relu_"},
                                        lower_relu,
                                        nullptr,
                                        ChannelRole::kPerChannel,
                                        nullptr,
                                        nullptr,
                                        false,
                                        nullptr,
                                        false};
extern const TorchOpDef kGELUTorchOp = {
    OpKind::kGELU, nullptr, gelu,  {"aten::gelu"}, lower_gelu, nullptr, ChannelRole::kPerChannel,
    nullptr,       nullptr, false, nullptr,        false};
extern const TorchOpDef kClipTorchOp = {
    OpKind::kClip,
    nullptr,
    clip,
    {"aten::hardtanh", "aten::hardtanh_", "aten::relu6", "aten::relu6_", "aten::clamp", "aten::clamp_"},
    lower_clip,
    nullptr,
    ChannelRole::kPerChannel,
    nullptr,
    nullptr,
    false,
    nullptr,
    false};
extern const TorchOpDef kSiLUTorchOp = {OpKind::kSiLU,
                                        nullptr,
                                        silu,
                                        {"aten::silu", "aten::silu_"},
                                        lower_silu,
                                        nullptr,
                                        ChannelRole::kPerChannel,
                                        nullptr,
                                        nullptr,
                                        false,
                                        nullptr,
                                        false};
extern const TorchOpDef kHardSwishTorchOp = {OpKind::kHardSwish,
                                             nullptr,
                                             hardswish,
                                             {"aten::hardswish", "aten::hardswish_"},
                                             lower_hardswish,
                                             nullptr,
                                             ChannelRole::kPerChannel,
                                             nullptr,
                                             nullptr,
                                             false,
                                             nullptr,
                                             false};
extern const TorchOpDef kHardSigmoidTorchOp = {OpKind::kHardSigmoid,
                                               nullptr,
                                               hardsigmoid,
                                               {"aten::hardsigmoid", "aten::hardsigmoid_"},
                                               lower_hardsigmoid,
                                               nullptr,
                                               ChannelRole::kMixes,
                                               nullptr,
                                               nullptr,
                                               false,
                                               nullptr,
                                               false};
extern const TorchOpDef kSigmoidTorchOp = {OpKind::kSigmoid,
                                           nullptr,
                                           sigmoid,
                                           {"aten::sigmoid", "aten::sigmoid_"},
                                           lower_sigmoid,
                                           nullptr,
                                           ChannelRole::kMixes,
                                           nullptr,
                                           nullptr,
                                           false,
                                           nullptr,
                                           false};
extern const TorchOpDef kTanhTorchOp = {OpKind::kTanh,
                                        nullptr,
                                        tanh,
                                        {"aten::tanh", "aten::tanh_"},
                                        lower_tanh,
                                        nullptr,
                                        ChannelRole::kPerChannel,
                                        nullptr,
                                        nullptr,
                                        false,
                                        nullptr,
                                        false};
// Built by exporters (Universal Sentence Encoder's last step), not lowered from TorchScript: F.normalize
// divides by max(norm, eps) instead.
extern const TorchOpDef kL2NormalizeTorchOp = {
    OpKind::kL2Normalize, nullptr, l2_normalize, {},    nullptr, nullptr,
    ChannelRole::kMixes,  nullptr, nullptr,      false, nullptr, false};
extern const TorchOpDef kSoftmaxTorchOp = {
    OpKind::kSoftmax, nullptr, softmax, {"aten::softmax"}, lower_softmax, nullptr, ChannelRole::kMixes,
    nullptr,          nullptr, false,   nullptr,           false};

}  // namespace mighty::compress
