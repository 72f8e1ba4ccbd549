// Pooling in LibTorch: MaxPool2d and AvgPool2d (square windows, symmetric padding, count_include_pad),
// GlobalAvgPool (the mean over H and W of a map, kept as [C, 1, 1] with `keepdim`; over T of a sequence);
// lowered from aten::max_pool2d, aten::avg_pool2d, aten::adaptive_avg_pool2d to 1x1 and aten::mean over H and
// W. All per channel.
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

int64_t kernel(const Node& n) { return n.attrs.at("kernel").get<int64_t>(); }

torch::Tensor max_pool(const TorchCall& c) {
  const int64_t k = kernel(c.node());
  return torch::max_pool2d(c.in(), k, c.node().attrs.value("stride", k), c.node().attrs.value("padding", 0));
}

torch::Tensor avg_pool(const TorchCall& c) {
  const int64_t k = kernel(c.node());
  return torch::avg_pool2d(c.in(), k, c.node().attrs.value("stride", k), c.node().attrs.value("padding", 0),
                           /*ceil_mode=*/false, c.node().attrs.value("count_include_pad", true));
}

torch::Tensor global_avg_pool(const TorchCall& c) {
  return c.in().dim() == 4 ? c.in().mean({2, 3}, c.node().attrs.value("keepdim", false)) : c.in().mean(1);
}

// aten::max_pool2d(input, kernel, stride, padding, dilation, ceil_mode) and
// aten::avg_pool2d(input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override).
void lower_window(ScriptLowering& l, const torch::jit::Node* n, bool is_max) {
  const int64_t k = l.square(n, 1, "kernel");
  int64_t stride = l.square(n, 2, "stride");
  if (stride < 0) stride = k;  // an empty stride list means the kernel size
  const int64_t padding = l.square(n, 3, "padding");
  if (padding < 0 || padding > k / 2) l.fail(n, "padding must be at most half the window");
  if (is_max && l.square(n, 4, "dilation") != 1) l.fail(n, "dilation must be 1");
  if (l.constant(n, is_max ? 5 : 4).toBool()) l.fail(n, "ceil_mode must be False");
  nlohmann::json attrs = {{"kernel", k}, {"stride", stride}, {"padding", padding}};
  if (!is_max) {
    attrs["count_include_pad"] = l.constant(n, 5).toBool();
    if (!l.constant(n, 6).isNone()) l.fail(n, "divisor_override must be None");
  }
  l.add(n, is_max ? "maxpool" : "avgpool", is_max ? OpKind::kMaxPool2d : OpKind::kAvgPool2d,
        {l.input_of(n, 0)}, attrs);
}

void lower_max(ScriptLowering& l, const torch::jit::Node* n) { lower_window(l, n, true); }
void lower_avg(ScriptLowering& l, const torch::jit::Node* n) { lower_window(l, n, false); }

void lower_adaptive(ScriptLowering& l, const torch::jit::Node* n) {
  if (l.square(n, 1, "output size") != 1) l.fail(n, "only a 1x1 output (global average pooling)");
  l.add(n, "gap", OpKind::kGlobalAvgPool, {l.input_of(n, 0)}, {{"keepdim", true}});
}

// aten::mean(input, dims, keepdim, dtype) over H and W of [B, C, H, W] (dims {2, 3} in any order, or
// {-1, -2}).
void lower_mean(ScriptLowering& l, const torch::jit::Node* n) {
  std::vector<int64_t> dims;
  for (const auto& d : l.int_list(n, 1)) {
    if (!d) l.fail(n, "the reduced dimensions must be constants");
    dims.push_back(*d < 0 ? *d + 4 : *d);
  }
  std::sort(dims.begin(), dims.end());
  if (dims != std::vector<int64_t>{2, 3}) l.fail(n, "only the mean over H and W of an NCHW map");
  if (n->inputs().size() > 3 && !l.constant(n, 3).isNone()) l.fail(n, "dtype must be None");
  l.add(n, "gap", OpKind::kGlobalAvgPool, {l.input_of(n, 0)}, {{"keepdim", l.constant(n, 2).toBool()}});
}

void lower_global(ScriptLowering& l, const torch::jit::Node* n) {
  if (std::string(n->kind().toQualString()) == "aten::mean") return lower_mean(l, n);
  lower_adaptive(l, n);
}

}  // namespace

extern const TorchOpDef kMaxPool2dTorchOp = {OpKind::kMaxPool2d,
                                             nullptr,
                                             max_pool,
                                             {"aten::max_pool2d"},
                                             lower_max,
                                             nullptr,
                                             ChannelRole::kPerChannel,
                                             nullptr,
                                             nullptr,
                                             false,
                                             nullptr,
                                             false};
extern const TorchOpDef kAvgPool2dTorchOp = {OpKind::kAvgPool2d,
                                             nullptr,
                                             avg_pool,
                                             {"aten::avg_pool2d"},
                                             lower_avg,
                                             nullptr,
                                             ChannelRole::kPerChannel,
                                             nullptr,
                                             nullptr,
                                             false,
                                             nullptr,
                                             false};
extern const TorchOpDef kGlobalAvgPoolTorchOp = {OpKind::kGlobalAvgPool,
                                                 nullptr,
                                                 global_avg_pool,
                                                 {"aten::adaptive_avg_pool2d", "aten::mean"},
                                                 lower_global,
                                                 nullptr,
                                                 ChannelRole::kPerChannel,
                                                 nullptr,
                                                 nullptr,
                                                 false,
                                                 nullptr,
                                                 false};

}  // namespace mighty::compress
