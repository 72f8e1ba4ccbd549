// Add and Mul in LibTorch: the sum and product of two tensors of one rank, broadcast where a dimension is 1
// (LibTorch's own rule, which the runtime follows); lowered from aten::add with alpha 1 and aten::mul of two
// lowered values. Both mix channel paths (a residual sum, a gate), so channel pruning stops at them.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor add(const TorchCall& c) { return c.in(0) + c.in(1); }
torch::Tensor mul(const TorchCall& c) { return c.in(0) * c.in(1); }

// With one constant operand: a per-channel affine (lower_affine_constant).
void need_tensors(ScriptLowering& l, const torch::jit::Node* n) {
  if (l.is_constant(n, 0) && l.is_constant(n, 1)) l.fail(n, "both operands are constants");
}

void lower_add(ScriptLowering& l, const torch::jit::Node* n) {
  if (lower_affine_constant(l, n)) return;
  need_tensors(l, n);
  if (l.constant(n, 2).toScalar().toDouble() != 1.0) l.fail(n, "alpha must be 1");
  l.add(n, "add", OpKind::kAdd, {l.input_of(n, 0), l.input_of(n, 1)});
}

void lower_mul(ScriptLowering& l, const torch::jit::Node* n) {
  if (lower_affine_constant(l, n)) return;
  need_tensors(l, n);
  l.add(n, "mul", OpKind::kMul, {l.input_of(n, 0), l.input_of(n, 1)});
}

}  // namespace

extern const TorchOpDef kAddTorchOp = {OpKind::kAdd,
                                       nullptr,
                                       add,
                                       {"aten::add", "aten::add_"},
                                       lower_add,
                                       nullptr,
                                       ChannelRole::kMixes,
                                       nullptr,
                                       nullptr,
                                       false,
                                       nullptr,
                                       false};
extern const TorchOpDef kMulTorchOp = {OpKind::kMul,
                                       nullptr,
                                       mul,
                                       {"aten::mul", "aten::mul_"},
                                       lower_mul,
                                       nullptr,
                                       ChannelRole::kMixes,
                                       nullptr,
                                       nullptr,
                                       false,
                                       nullptr,
                                       false};

}  // namespace mighty::compress
