// BatchNorm2d in LibTorch: torch::nn::BatchNorm2d (eps from the node, 1e-5 by default, as the runtime's;
// `frozen_statistics`: running statistics in training mode too);
// lowered from aten::batch_norm in eval mode; per channel, with per-channel tensors (sliced by channel
// pruning).
#include <torch/csrc/jit/ir/ir.h>

#include <cmath>

#include <fmt/format.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"
#include "runtime/graph/affine.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(n.attrs.at("channels").get<int64_t>())
                                    .eps(n.attrs.value("eps", 1e-5)))
      .ptr();
}

// A node with `frozen_statistics` (an imported per-channel affine, onnx_io) always uses its running
// statistics: in training mode too, so training never turns it into a normalization.
torch::Tensor forward(const TorchCall& c) {
  auto& bn = c.module<torch::nn::BatchNorm2dImpl>();
  if (!c.node().attrs.value("frozen_statistics", false)) return bn.forward(c.in());
  return torch::batch_norm(c.in(), bn.weight, bn.bias, bn.running_mean, bn.running_var, /*training=*/false,
                           /*momentum=*/0.0, bn.options.eps(), /*cudnn_enabled=*/false);
}

// aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn); aten::sub
// and aten::div, which lower only with a constant operand (lower_affine_constant).
void lower(ScriptLowering& l, const torch::jit::Node* n) {
  const std::string kind = n->kind().toQualString();
  if (kind != "aten::batch_norm") {
    if (!lower_affine_constant(l, n)) l.fail(n, "supported only with one constant operand");
    return;
  }
  if (l.constant(n, 5).toBool()) l.fail(n, "batch_norm must be in eval mode (training=False)");
  const double eps = l.constant(n, 7).toDouble();
  if (!(eps >= 1e-12 && eps <= 1.0)) l.fail(n, fmt::format("eps {} is outside [1e-12, 1]", eps));
  if (!l.has_tensor(n, 1) || !l.has_tensor(n, 2)) l.fail(n, "batch_norm needs an affine weight and bias");
  const auto mean = l.tensor(n, 3);
  const std::string name =
      l.add(n, "bn", OpKind::kBatchNorm2d, {l.input_of(n, 0)}, {{"channels", mean.size(0)}, {"eps", eps}});
  l.weight(name + ".weight", l.tensor(n, 1));
  l.weight(name + ".bias", l.tensor(n, 2));
  l.weight(name + ".running_mean", mean);
  l.weight(name + ".running_var", l.tensor(n, 4));
}

}  // namespace

bool lower_affine_constant(ScriptLowering& l, const torch::jit::Node* n) {
  const std::string kind = n->kind().toQualString();
  const bool first = l.is_constant(n, 0), second = l.is_constant(n, 1);
  if (first == second) return false;
  const size_t xi = first ? 1 : 0;
  const bool add = kind.rfind("aten::add", 0) == 0, sub = kind.rfind("aten::sub", 0) == 0;
  const bool div = kind.rfind("aten::div", 0) == 0;
  if ((add || sub) && l.constant(n, 2).toScalar().toDouble() != 1.0) l.fail(n, "alpha must be 1");
  if (div && n->inputs().size() > 2 && !l.constant(n, 2).isNone()) l.fail(n, "rounding_mode must be None");
  if (div && xi == 1) l.fail(n, "a constant divided by a computed value is not supported");
  const int x = l.input_of(n, xi);
  l.graph().infer_shapes();
  const Shape shape = l.graph().nodes()[static_cast<size_t>(x)].shape;
  if (shape.size() != 3) l.fail(n, "a constant operand applies to a [C, H, W] map only");
  const int64_t channels = shape[0];
  const c10::IValue k = l.constant(n, 1 - xi);
  torch::Tensor v = k.isTensor() ? k.toTensor().to(torch::kFloat32).contiguous()
                                 : torch::tensor({static_cast<float>(k.toScalar().toDouble())});
  std::vector<int64_t> dims = v.sizes().vec();
  while (dims.size() > 3 && dims.front() == 1) dims.erase(dims.begin());
  if (v.numel() == 1) {
    v = v.reshape({1}).expand({channels}).contiguous();
  } else if (dims == std::vector<int64_t>{channels, 1, 1}) {
    v = v.reshape({channels});
  } else {
    l.fail(n,
           fmt::format("the constant operand must be one value or one per channel ([{}, 1, 1])", channels));
  }
  torch::Tensor scale = torch::empty({channels}), shift = torch::empty({channels});
  const std::string op = kind.substr(kind.find("::") + 2, 3);  // add, sub, mul, div (of add_, div_ too)
  v = v.contiguous();
  for (int64_t ch = 0; ch < channels; ++ch)
    affine_of(op, xi == 1, v.data_ptr<float>()[ch], scale.data_ptr<float>() + ch,
              shift.data_ptr<float>() + ch);
  const std::string name = l.add(n, "affine", OpKind::kBatchNorm2d, {x},
                                 {{"channels", channels}, {"eps", 1e-12}, {"frozen_statistics", true}});
  l.weight(name + ".weight", scale);
  l.weight(name + ".bias", shift);
  l.weight(name + ".running_mean", torch::zeros({channels}));
  l.weight(name + ".running_var", torch::ones({channels}));
  return true;
}

extern const TorchOpDef kBatchNorm2dTorchOp = {
    OpKind::kBatchNorm2d,
    module,
    forward,
    {"aten::batch_norm", "aten::sub", "aten::sub_", "aten::div", "aten::div_"},
    lower,
    nullptr,
    ChannelRole::kPerChannel,
    nullptr,
    nullptr,
    false,
    "channels",
    false};

}  // namespace mighty::compress
