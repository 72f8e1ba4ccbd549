// Flatten in LibTorch: [B, d...] -> [B, product]; lowered from aten::flatten(x, 1, -1). For channel pruning
// a [C, H, W] map becomes C runs of H * W features.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor forward(const TorchCall& c) { return c.in().flatten(1); }

void lower(ScriptLowering& l, const torch::jit::Node* n) {
  if (l.constant(n, 1).toInt() != 1 || l.constant(n, 2).toInt() != -1) l.fail(n, "only flatten(x, 1, -1)");
  l.add(n, "flatten", OpKind::kFlatten, {l.input_of(n, 0)});
}

}  // namespace

extern const TorchOpDef kFlattenTorchOp = {
    OpKind::kFlatten, nullptr, forward, {"aten::flatten"}, lower, nullptr, ChannelRole::kFlattens,
    nullptr,          nullptr, false,   nullptr,           false};

}  // namespace mighty::compress
