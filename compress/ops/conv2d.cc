// Conv2d in LibTorch: torch::nn::Conv2d (square kernel, stride, padding, groups); lowered from aten::conv2d
// and a traced model's aten::_convolution; a prunable weight layer (output channels are units; channel
// pruning leaves grouped convolutions alone, compress/passes/structured.cc); int8 weights.
#include <torch/csrc/jit/ir/ir.h>

#include <fmt/format.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  const auto& a = n.attrs;
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(a.at("in_channels").get<int64_t>(),
                                                    a.at("out_channels").get<int64_t>(),
                                                    a.at("kernel").get<int64_t>())
                               .stride(a.value("stride", 1))
                               .padding(a.value("padding", 0))
                               .groups(a.value("groups", 1))
                               .bias(a.value("bias", true)))
      .ptr();
}

torch::Tensor forward(const TorchCall& c) { return c.module<torch::nn::Conv2dImpl>().forward(c.in()); }

// aten::conv2d(input, weight, bias, stride, padding, dilation, groups) and
// aten::_convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
// ...).
void lower(ScriptLowering& l, const torch::jit::Node* n) {
  const bool traced = std::string(n->kind().toQualString()) == "aten::_convolution";
  const auto w = l.tensor(n, 1);
  if (w.dim() != 4 || w.size(2) != w.size(3)) l.fail(n, "only square 2-D kernels are supported");
  if (l.square(n, 5, "dilation") != 1) l.fail(n, "dilation must be 1");
  if (traced && l.constant(n, 6).toBool()) l.fail(n, "transposed convolution is not supported");
  const int64_t groups = l.constant(n, traced ? 8 : 6).toInt();
  if (groups < 1 || w.size(0) % groups != 0)
    l.fail(n, fmt::format("groups {} do not divide the outputs", groups));
  const bool bias = l.has_tensor(n, 2);
  nlohmann::json attrs = {{"in_channels", w.size(1) * groups},
                          {"out_channels", w.size(0)},
                          {"kernel", w.size(2)},
                          {"stride", l.square(n, 3, "stride")},
                          {"padding", l.square(n, 4, "padding")},
                          {"bias", bias}};
  if (groups != 1) attrs["groups"] = groups;
  const std::string name = l.add(n, "conv", OpKind::kConv2d, {l.input_of(n, 0)}, attrs);
  l.weight(name + ".weight", w);
  if (bias) l.weight(name + ".bias", l.tensor(n, 2));
}

}  // namespace

extern const TorchOpDef kConv2dTorchOp = {OpKind::kConv2d,
                                          module,
                                          forward,
                                          {"aten::conv2d", "aten::_convolution"},
                                          lower,
                                          own_weight,
                                          ChannelRole::kLayer,
                                          "out_channels",
                                          "in_channels",
                                          /*flat_input=*/false,
                                          nullptr,
                                          /*int8_weights=*/true};

}  // namespace mighty::compress
