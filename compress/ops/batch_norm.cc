// BatchNorm2d in LibTorch: torch::nn::BatchNorm2d (eps from the node, 1e-5 by default, as the runtime's);
// lowered from aten::batch_norm in eval mode; per channel, with per-channel tensors (sliced by channel
// pruning).
#include <torch/csrc/jit/ir/ir.h>

#include <cmath>

#include <fmt/format.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(n.attrs.at("channels").get<int64_t>())
                                    .eps(n.attrs.value("eps", 1e-5)))
      .ptr();
}

torch::Tensor forward(const TorchCall& c) { return c.module<torch::nn::BatchNorm2dImpl>().forward(c.in()); }

// aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
void lower(ScriptLowering& l, const torch::jit::Node* n) {
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

extern const TorchOpDef kBatchNorm2dTorchOp = {OpKind::kBatchNorm2d,
                                               module,
                                               forward,
                                               {"aten::batch_norm"},
                                               lower,
                                               nullptr,
                                               ChannelRole::kPerChannel,
                                               nullptr,
                                               nullptr,
                                               false,
                                               "channels",
                                               false};

}  // namespace mighty::compress
