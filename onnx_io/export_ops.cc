// One ONNX form per IR op (export_context.h): plain ONNX ops for fp32 nodes; Linear and Conv2d with an int8
// "quant" attribute as the QDQ pattern engines fuse into integer kernels (QGemm, QLinearConv):
//   x -> QuantizeLinear -> DequantizeLinear (the layer's input scale and zero point)
//   w (int8) -> DequantizeLinear (per-channel scales, axis 0)
//   a conv that requantizes: its bias in int32 -> DequantizeLinear (scale = input scale x weight scale);
//   a layer with a float output: the float bias added after the op, as the runtime adds it after
//   dequantizing.
#include <cfloat>
#include <cmath>

#include "onnx_io/export_context.h"

namespace mighty::onnx_io {
namespace {

using Ctx = ExportContext;

int64_t attr_or(const Node& n, const char* key, int64_t fallback) { return n.attrs.value(key, fallback); }

// The weight and (static) input of a Linear or Conv2d, int8 or fp32.
struct Operands {
  std::string x, w;
  bool int8 = false, requantizes = false;
  kernels::QuantParams input;
};

// `transposed`: a Linear over the last axis of [..., in], which MatMul computes with W^T.
Operands operands(Ctx& ctx, bool transposed = false) {
  Operands o;
  o.x = ctx.in();
  if (!ctx.quantized()) {
    o.w = transposed ? ctx.float_transposed(".weight") : ctx.float_tensor(".weight");
    return o;
  }
  if (!ctx.static_activation())
    ctx.fail("int8 layers with dynamic (per-row) activations have no ONNX form yet");
  o.int8 = true;
  o.input = ctx.input_params();
  o.requantizes = ctx.node().attrs["quant"].contains("output_scale");
  o.x = ctx.quantize_dequantize(o.x, o.input);
  o.w = ctx.int8_weight(transposed);
  return o;
}

void linear(Ctx& ctx) {
  const Node& n = ctx.node();
  const bool bias = n.attrs.value("bias", true);
  const bool matrix = ctx.in_shape().size() == 1;
  const Operands o = operands(ctx, !matrix);
  std::string y;
  if (matrix) {
    std::vector<std::string> inputs = {o.x, o.w};
    if (bias && !o.int8) inputs.push_back(ctx.float_tensor(".bias"));
    onnx::NodeProto& gemm = ctx.add("Gemm", inputs);
    Ctx::attr(gemm, "transB", int64_t{1});
    y = Ctx::output(gemm);
    if (bias && o.int8) y = Ctx::output(ctx.add("Add", {y, ctx.float_tensor(".bias")}, ".add_bias"));
  } else {  // [..., in] x W^T over the last dimension
    y = Ctx::output(ctx.add("MatMul", {o.x, o.w}));
    if (bias) y = Ctx::output(ctx.add("Add", {y, ctx.float_tensor(".bias")}, ".add_bias"));
  }
  ctx.set_result(y);
}

void conv2d(Ctx& ctx) {
  const Node& n = ctx.node();
  const bool bias = n.attrs.value("bias", true);
  const int64_t k = attr_or(n, "kernel", 1), s = attr_or(n, "stride", 1), p = attr_or(n, "padding", 0);
  const int64_t out = attr_or(n, "out_channels", 1);
  const Operands o = operands(ctx);
  std::vector<std::string> inputs = {o.x, o.w};
  if (bias && !o.int8) inputs.push_back(ctx.float_tensor(".bias"));
  if (bias && o.requantizes) inputs.push_back(ctx.int32_bias(o.input));
  onnx::NodeProto& conv = ctx.add("Conv", inputs);
  Ctx::attr(conv, "kernel_shape", std::vector<int64_t>{k, k});
  Ctx::attr(conv, "strides", std::vector<int64_t>{s, s});
  Ctx::attr(conv, "pads", std::vector<int64_t>{p, p, p, p});
  Ctx::attr(conv, "dilations", std::vector<int64_t>{1, 1});
  Ctx::attr(conv, "group", attr_or(n, "groups", 1));
  std::string y = Ctx::output(conv);
  if (bias && o.int8 && !o.requantizes)
    y = Ctx::output(ctx.add("Add", {y, ctx.float_tensor(".bias", {out, 1, 1})}, ".add_bias"));
  ctx.set_result(y);
}

void batch_norm(Ctx& ctx) {
  onnx::NodeProto& bn =
      ctx.add("BatchNormalization", {ctx.in(), ctx.float_tensor(".weight"), ctx.float_tensor(".bias"),
                                     ctx.float_tensor(".running_mean"), ctx.float_tensor(".running_var")});
  Ctx::attr(bn, "epsilon", static_cast<float>(ctx.node().attrs.value("eps", 1e-5)));
  ctx.set_result(Ctx::output(bn));
}

void layer_norm(Ctx& ctx) {
  onnx::NodeProto& ln =
      ctx.add("LayerNormalization", {ctx.in(), ctx.float_tensor(".weight"), ctx.float_tensor(".bias")});
  Ctx::attr(ln, "axis", int64_t{-1});
  Ctx::attr(ln, "epsilon", static_cast<float>(ctx.node().attrs.value("eps", 1e-5)));
  ctx.set_result(Ctx::output(ln));
}

void unary(Ctx& ctx, const char* op_type) { ctx.set_result(Ctx::output(ctx.add(op_type, {ctx.in()}))); }

void gelu(Ctx& ctx) {  // 0.5 x (1 + erf(x / sqrt(2))), as exporters write it before opset 20
  const std::string x = ctx.in();
  const std::string d = Ctx::output(ctx.add("Div", {x, ctx.floats(".sqrt2", {}, {std::sqrt(2.0f)})}, ".div"));
  const std::string e = Ctx::output(ctx.add("Erf", {d}, ".erf"));
  const std::string a = Ctx::output(ctx.add("Add", {e, ctx.floats(".one", {}, {1.0f})}, ".add"));
  const std::string m = Ctx::output(ctx.add("Mul", {x, a}, ".mul"));
  ctx.set_result(Ctx::output(ctx.add("Mul", {m, ctx.floats(".half", {}, {0.5f})})));
}

void silu(Ctx& ctx) {
  const std::string s = Ctx::output(ctx.add("Sigmoid", {ctx.in()}, ".sigmoid"));
  ctx.set_result(Ctx::output(ctx.add("Mul", {ctx.in(), s})));
}

void hard_sigmoid(Ctx& ctx) {
  onnx::NodeProto& h = ctx.add("HardSigmoid", {ctx.in()});
  Ctx::attr(h, "alpha", static_cast<float>(ctx.node().attrs.value("alpha", 1.0 / 6.0)));
  Ctx::attr(h, "beta", static_cast<float>(ctx.node().attrs.value("beta", 0.5)));
  ctx.set_result(Ctx::output(h));
}

void clip(Ctx& ctx) {
  const float lo = ctx.node().attrs.value("min", -FLT_MAX), hi = ctx.node().attrs.value("max", FLT_MAX);
  ctx.set_result(
      Ctx::output(ctx.add("Clip", {ctx.in(), ctx.floats(".min", {}, {lo}), ctx.floats(".max", {}, {hi})})));
}

void softmax(Ctx& ctx) {
  onnx::NodeProto& s = ctx.add("Softmax", {ctx.in()});
  Ctx::attr(s, "axis", int64_t{-1});
  ctx.set_result(Ctx::output(s));
}

void pool(Ctx& ctx, bool is_max) {
  const Node& n = ctx.node();
  const int64_t k = attr_or(n, "kernel", 1), s = attr_or(n, "stride", k), p = attr_or(n, "padding", 0);
  onnx::NodeProto& pl = ctx.add(is_max ? "MaxPool" : "AveragePool", {ctx.in()});
  Ctx::attr(pl, "kernel_shape", std::vector<int64_t>{k, k});
  Ctx::attr(pl, "strides", std::vector<int64_t>{s, s});
  Ctx::attr(pl, "pads", std::vector<int64_t>{p, p, p, p});
  if (!is_max) Ctx::attr(pl, "count_include_pad", int64_t{n.attrs.value("count_include_pad", true) ? 1 : 0});
  ctx.set_result(Ctx::output(pl));
}

void global_pool(Ctx& ctx) {
  if (ctx.in_shape().size() == 3) {
    std::string y = Ctx::output(ctx.add("GlobalAveragePool", {ctx.in()}, ".pool"));
    if (!ctx.node().attrs.value("keepdim", false)) {
      onnx::NodeProto& f = ctx.add("Flatten", {y});
      Ctx::attr(f, "axis", int64_t{1});
      y = Ctx::output(f);
    }
    ctx.set_result(y);
    return;
  }
  onnx::NodeProto& m = ctx.add("ReduceMean", {ctx.in()});  // [batch, T, d] over T
  Ctx::attr(m, "axes", std::vector<int64_t>{1});
  Ctx::attr(m, "keepdims", int64_t{0});
  ctx.set_result(Ctx::output(m));
}

void flatten(Ctx& ctx) {
  onnx::NodeProto& f = ctx.add("Flatten", {ctx.in()});
  Ctx::attr(f, "axis", int64_t{1});
  ctx.set_result(Ctx::output(f));
}

void binary(Ctx& ctx, const char* op_type) {
  ctx.set_result(Ctx::output(ctx.add(op_type, {ctx.in(0), ctx.in(1)})));
}

void concat(Ctx& ctx) {
  std::vector<std::string> inputs;
  for (size_t k = 0; k < ctx.node().inputs.size(); ++k) inputs.push_back(ctx.in(static_cast<int>(k)));
  onnx::NodeProto& c = ctx.add("Concat", inputs);
  Ctx::attr(c, "axis", attr_or(ctx.node(), "axis", 0) + 1);  // past the batch
  ctx.set_result(Ctx::output(c));
}

const std::vector<OnnxExportDef> kTable = {
    {OpKind::kLinear, linear},
    {OpKind::kConv2d, conv2d},
    {OpKind::kBatchNorm2d, batch_norm},
    {OpKind::kLayerNorm, layer_norm},
    {OpKind::kReLU, [](Ctx& c) { unary(c, "Relu"); }},
    {OpKind::kGELU, gelu},
    {OpKind::kSiLU, silu},
    {OpKind::kHardSwish, [](Ctx& c) { unary(c, "HardSwish"); }},
    {OpKind::kHardSigmoid, hard_sigmoid},
    {OpKind::kSigmoid, [](Ctx& c) { unary(c, "Sigmoid"); }},
    {OpKind::kClip, clip},
    {OpKind::kSoftmax, softmax},
    {OpKind::kMaxPool2d, [](Ctx& c) { pool(c, true); }},
    {OpKind::kAvgPool2d, [](Ctx& c) { pool(c, false); }},
    {OpKind::kGlobalAvgPool, global_pool},
    {OpKind::kFlatten, flatten},
    {OpKind::kAdd, [](Ctx& c) { binary(c, "Add"); }},
    {OpKind::kMul, [](Ctx& c) { binary(c, "Mul"); }},
    {OpKind::kConcat, concat},
};

}  // namespace

const std::vector<OnnxExportDef>& export_table() { return kTable; }

const OnnxExportDef* find_export(OpKind op) {
  for (const OnnxExportDef& d : kTable)
    if (d.op == op) return &d;
  return nullptr;
}

}  // namespace mighty::onnx_io
