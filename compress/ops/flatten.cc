// Flatten in LibTorch: [B, d...] -> [B, product]; lowered from aten::flatten(x, 1, -1) and from
// aten::view / aten::reshape to [B, -1] or [B, product] (the batch size a constant or read at run time, as a
// traced x.view(x.size(0), -1) records it). For channel pruning a [C, H, W] map becomes C runs of H * W
// features.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor forward(const TorchCall& c) { return c.in().flatten(1); }

// The flattened size of n's input, from the traced tensor type; -1 when the graph does not record it.
int64_t features(const torch::jit::Node* n) {
  const auto type = n->input(0)->type()->cast<c10::TensorType>();
  if (!type) return -1;
  const auto sizes = type->sizes().concrete_sizes();
  if (!sizes || sizes->empty()) return -1;
  int64_t product = 1;
  for (size_t d = 1; d < sizes->size(); ++d) product *= (*sizes)[d];
  return product;
}

void lower(ScriptLowering& l, const torch::jit::Node* n) {
  const std::string kind = n->kind().toQualString();
  if (kind == "aten::flatten") {
    if (l.constant(n, 1).toInt() != 1 || l.constant(n, 2).toInt() != -1) l.fail(n, "only flatten(x, 1, -1)");
  } else {
    const auto shape = l.int_list(n, 1);
    const bool to_rows =
        shape.size() == 2 && shape[1] && (*shape[1] == -1 || (*shape[1] > 0 && *shape[1] == features(n)));
    if (!to_rows) l.fail(n, "only a reshape to [batch, -1] (a flatten); other shapes are not supported");
  }
  l.add(n, "flatten", OpKind::kFlatten, {l.input_of(n, 0)});
}

}  // namespace

extern const TorchOpDef kFlattenTorchOp = {OpKind::kFlatten,
                                           nullptr,
                                           forward,
                                           {"aten::flatten", "aten::view", "aten::reshape"},
                                           lower,
                                           nullptr,
                                           ChannelRole::kFlattens,
                                           nullptr,
                                           nullptr,
                                           false,
                                           nullptr,
                                           false};

}  // namespace mighty::compress
