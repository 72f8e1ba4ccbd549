// Concat in LibTorch: tensors joined along a per-example dimension (`axis` 0: channels); lowered from
// aten::cat over lowered values. Mixes channel paths (the joined units come from several layers), so channel
// pruning stops at it.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor forward(const TorchCall& c) {
  std::vector<torch::Tensor> parts;
  for (size_t k = 0; k < c.node().inputs.size(); ++k) parts.push_back(c.in(static_cast<int>(k)));
  return torch::cat(parts, c.node().attrs.value("axis", int64_t{0}) + 1);
}

// aten::cat(tensors, dim): dim counts the batch; negative from the end.
void lower(ScriptLowering& l, const torch::jit::Node* n) {
  const auto rank = n->output(0)->type()->cast<c10::TensorType>();
  int64_t dim = l.constant(n, 1).toInt();
  if (dim < 0) {
    const auto dims = rank ? rank->dim() : c10::nullopt;
    if (!dims) l.fail(n, "a negative dim needs the tensor's rank, which the graph does not record");
    dim += static_cast<int64_t>(*dims);
  }
  if (dim < 1) l.fail(n, "cannot concatenate along the batch dimension");
  l.add(n, "concat", OpKind::kConcat, l.inputs_of_list(n, 0), {{"axis", dim - 1}});
}

}  // namespace

extern const TorchOpDef kConcatTorchOp = {
    OpKind::kConcat,     nullptr, forward, {"aten::cat"}, lower,   nullptr,
    ChannelRole::kMixes, nullptr, nullptr, false,         nullptr, false};

}  // namespace mighty::compress
