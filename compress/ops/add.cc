// Add in LibTorch: the sum of two tensors of one shape; lowered from aten::add with alpha 1. Mixes channel
// paths (a residual sum), so channel pruning stops at it.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor forward(const TorchCall& c) { return c.in(0) + c.in(1); }

void lower(ScriptLowering& l, const torch::jit::Node* n) {
  if (l.constant(n, 2).toScalar().toDouble() != 1.0) l.fail(n, "alpha must be 1");
  l.add(n, "add", OpKind::kAdd, {l.input_of(n, 0), l.input_of(n, 1)});
}

}  // namespace

extern const TorchOpDef kAddTorchOp = {OpKind::kAdd,
                                       nullptr,
                                       forward,
                                       {"aten::add", "aten::add_"},
                                       lower,
                                       nullptr,
                                       ChannelRole::kMixes,
                                       nullptr,
                                       nullptr,
                                       false,
                                       nullptr,
                                       false};

}  // namespace mighty::compress
