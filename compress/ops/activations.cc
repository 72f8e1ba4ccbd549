// Element-wise activations in LibTorch: ReLU, GELU (exact, erf), Softmax over the last dimension; lowered
// from their aten ops. ReLU and GELU are per channel (and keep 0 at 0, which channel pruning relies on).
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor relu(const TorchCall& c) { return torch::relu(c.in()); }
torch::Tensor gelu(const TorchCall& c) { return torch::gelu(c.in()); }
torch::Tensor softmax(const TorchCall& c) { return torch::softmax(c.in(), -1); }

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
extern const TorchOpDef kSoftmaxTorchOp = {
    OpKind::kSoftmax, nullptr, softmax, {"aten::softmax"}, lower_softmax, nullptr, ChannelRole::kMixes,
    nullptr,          nullptr, false,   nullptr,           false};

}  // namespace mighty::compress
