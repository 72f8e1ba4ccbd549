// Linear in LibTorch: torch::nn::Linear; lowered from aten::linear; a prunable weight layer (output
// features are units; it may read a flattened map); int8 weights.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  const auto& a = n.attrs;
  return torch::nn::Linear(
             torch::nn::LinearOptions(a.at("in_features").get<int64_t>(), a.at("out_features").get<int64_t>())
                 .bias(a.value("bias", true)))
      .ptr();
}

torch::Tensor forward(const TorchCall& c) { return c.module<torch::nn::LinearImpl>().forward(c.in()); }

void lower(ScriptLowering& l, const torch::jit::Node* n) {
  const auto w = l.tensor(n, 1);
  if (w.dim() != 2) l.fail(n, "the weight must be a matrix");
  const bool bias = l.has_tensor(n, 2);
  const std::string name = l.add(n, "linear", OpKind::kLinear, {l.input_of(n, 0)},
                                 {{"in_features", w.size(1)}, {"out_features", w.size(0)}, {"bias", bias}});
  l.weight(name + ".weight", w);
  if (bias) l.weight(name + ".bias", l.tensor(n, 2));
}

}  // namespace

extern const TorchOpDef kLinearTorchOp = {
    OpKind::kLinear,     module,         forward,       {"aten::linear"},    lower,   own_weight,
    ChannelRole::kLayer, "out_features", "in_features", /*flat_input=*/true, nullptr, /*int8_weights=*/true};

}  // namespace mighty::compress
