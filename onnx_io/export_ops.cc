// One ONNX form per IR op (export_context.h): plain ONNX ops for fp32 nodes; Linear and Conv2d with an int8
// "quant" attribute as the QDQ pattern engines fuse into integer kernels (QGemm, QLinearConv):
//   x -> QuantizeLinear -> DequantizeLinear (the layer's input scale and zero point)
//   w (int8) -> DequantizeLinear (per-channel scales, axis 0)
//   a conv that requantizes: its bias in int32 -> DequantizeLinear (scale = input scale x weight scale);
//   a layer with a float output: the float bias added after the op, as the runtime adds it after
//   dequantizing.
#include <cfloat>
#include <cmath>

#include <fmt/format.h>

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
  if (!ctx.static_activation()) ctx.fail("int8 convolutions with dynamic activations have no ONNX form");
  o.int8 = true;
  o.input = ctx.input_params();
  o.requantizes = ctx.node().attrs["quant"].contains("output_scale");
  o.x = ctx.quantize_dequantize(o.x, o.input);
  o.w = ctx.int8_weight(transposed);
  return o;
}

// x [..., in] quantized per row as mighty's runtime does it (kernels::quantize_rows_dynamic): the row's
// range widened to hold 0, scale (hi - lo) / 255 (1 where that is 0), zero point round(-lo / scale) in
// [0, 255], q = clamp(round(x * (1 / scale)), -zp, 255 - zp) + zp. Returns q (uint8), scale and zero point
// (float, [..., 1]).
struct RowQuantized {
  std::string q, scale, zero_point;
};

RowQuantized quantize_rows_dynamic(Ctx& ctx, const std::string& x) {
  auto op = [&](const char* type, const std::vector<std::string>& in, const char* suffix) {
    return Ctx::output(ctx.add(type, in, suffix));
  };
  auto reduce = [&](const char* type, const char* suffix) {
    onnx::NodeProto& r = ctx.add(type, {x}, suffix);
    Ctx::attr(r, "axes", std::vector<int64_t>{-1});
    Ctx::attr(r, "keepdims", int64_t{1});
    return Ctx::output(r);
  };
  const std::string zero = ctx.floats(".zero", {}, {0.0f}), one = ctx.floats(".one", {}, {1.0f});
  const std::string q255 = ctx.floats(".q255", {}, {255.0f});
  const std::string lo = op("Min", {reduce("ReduceMin", ".row_min"), zero}, ".lo");
  const std::string hi = op("Max", {reduce("ReduceMax", ".row_max"), zero}, ".hi");
  std::string scale = op("Div", {op("Sub", {hi, lo}, ".range"), q255}, ".scale0");
  scale = op("Where", {op("Greater", {scale, zero}, ".scale_ok"), scale, one}, ".row_scale");
  onnx::NodeProto& zc = ctx.add(
      "Clip", {op("Round", {op("Div", {op("Neg", {lo}, ".neg_lo"), scale}, ".z0")}, ".z1"), zero, q255},
      ".row_zero_point");
  const std::string z = Ctx::output(zc);
  std::string v = op("Mul", {x, op("Reciprocal", {scale}, ".inv_scale")}, ".scaled");
  v = op("Max", {v, op("Neg", {z}, ".neg_z")}, ".clamp_lo");
  v = op("Min", {v, op("Sub", {q255, z}, ".z_hi")}, ".clamp_hi");
  onnx::NodeProto& cast = ctx.add("Cast", {op("Add", {op("Round", {v}, ".rounded"), z}, ".shifted")}, ".q");
  Ctx::attr(cast, "to", int64_t{onnx::TensorProto::UINT8});
  return {Ctx::output(cast), scale, z};
}

// A Linear with dynamic (per-row) int8 activations, as the runtime computes it: MatMulInteger of the
// row-quantized input and the int8 weight, minus zero point x column sums, times row scale x weight scale,
// plus the float bias.
void linear_dynamic(Ctx& ctx) {
  const Node& n = ctx.node();
  const RowQuantized rq = quantize_rows_dynamic(ctx, ctx.in());
  const TensorView& w = ctx.tensor(".weight");
  const TensorView& ws = ctx.tensor(".weight_scale");
  if (w.type != TensorType::kInt8 || w.shape.size() != 2) ctx.fail("the weight is not an int8 matrix");
  if (ws.type != TensorType::kFloat32 || ws.numel() != w.shape[0])
    ctx.fail(fmt::format("tensor '{}' is not {} float32 scales", ws.name, w.shape[0]));
  const int64_t out = w.shape[0], in = w.shape[1];
  std::vector<int8_t> t(static_cast<size_t>(in * out));
  std::vector<int32_t> sums(static_cast<size_t>(out), 0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < in; ++k) {
      const int8_t v = w.as<int8_t>()[o * in + k];
      t[static_cast<size_t>(k * out + o)] = v;
      sums[static_cast<size_t>(o)] += v;
    }
  const std::string wt =
      ctx.initializer(".weight_int8_t", onnx::TensorProto::INT8, {in, out}, t.data(), t.size());
  const std::string colsum =
      ctx.initializer(".weight_column_sums", onnx::TensorProto::INT32, {out}, sums.data(), sums.size() * 4);
  const std::string scale =
      ctx.initializer(".weight_scale", onnx::TensorProto::FLOAT, {out}, ws.data, ws.bytes);
  auto op = [&](const char* type, const std::vector<std::string>& in_values, const char* suffix) {
    return Ctx::output(ctx.add(type, in_values, suffix));
  };
  auto cast = [&](const std::string& v, int64_t to, const char* suffix) {
    onnx::NodeProto& c = ctx.add("Cast", {v}, suffix);
    Ctx::attr(c, "to", to);
    return Ctx::output(c);
  };
  const std::string acc = op("MatMulInteger", {rq.q, wt}, ".matmul_integer");
  const std::string z32 = cast(rq.zero_point, onnx::TensorProto::INT32, ".zero_point_i32");
  const std::string corrected = op("Sub", {acc, op("Mul", {z32, colsum}, ".zero_point_sums")}, ".acc");
  const std::string mult = op("Mul", {rq.scale, scale}, ".multiplier");
  std::string y = op("Mul", {cast(corrected, onnx::TensorProto::FLOAT, ".acc_f"), mult}, ".dequantized");
  if (n.attrs.value("bias", true)) y = op("Add", {y, ctx.float_tensor(".bias")}, ".add_bias");
  ctx.set_result(y);
}

void linear(Ctx& ctx) {
  const Node& n = ctx.node();
  if (ctx.quantized() && !ctx.static_activation()) return linear_dynamic(ctx);
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

// x / sqrt(max(sum of squares over the last axis, eps)) (opset 17: ReduceSumSquare takes axes as an
// attribute).
void l2_normalize(Ctx& ctx) {
  onnx::NodeProto& r = ctx.add("ReduceSumSquare", {ctx.in()}, ".sumsq");
  Ctx::attr(r, "axes", std::vector<int64_t>{-1});
  Ctx::attr(r, "keepdims", int64_t{1});
  const auto eps = static_cast<float>(ctx.node().attrs.value("eps", 1e-12));
  const std::string m = Ctx::output(ctx.add("Max", {Ctx::output(r), ctx.floats(".eps", {}, {eps})}, ".max"));
  const std::string q = Ctx::output(ctx.add("Sqrt", {m}, ".sqrt"));
  ctx.set_result(Ctx::output(ctx.add("Div", {ctx.in(), q})));
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

// The node's table [num, dim] as a float value: fp32 as it is, int8 (one scale per row) dequantized (axis 0),
// q x scale, as the runtime reads it.
std::string embedding_table(Ctx& ctx) {
  if (!ctx.quantized()) return ctx.float_tensor(".weight");
  const TensorView& w = ctx.tensor(".weight");
  const TensorView& s = ctx.tensor(".weight_scale");
  if (w.type != TensorType::kInt8 || w.shape.size() != 2) ctx.fail("the table is not an int8 matrix");
  if (s.type != TensorType::kFloat32 || s.numel() != w.shape[0])
    ctx.fail(fmt::format("tensor '{}' is not {} float32 scales", s.name, w.shape[0]));
  const std::string q = ctx.initializer(".weight_int8", onnx::TensorProto::INT8, w.shape, w.data, w.bytes);
  const std::string scale =
      ctx.initializer(".weight_scale", onnx::TensorProto::FLOAT, {w.shape[0]}, s.data, s.bytes);
  const std::vector<int8_t> zeros(static_cast<size_t>(w.shape[0]), 0);
  const std::string zp = ctx.initializer(".weight_zero_point", onnx::TensorProto::INT8, {w.shape[0]},
                                         zeros.data(), zeros.size());
  onnx::NodeProto& dq = ctx.add("DequantizeLinear", {q, scale, zp}, ".weight_dq");
  Ctx::attr(dq, "axis", int64_t{0});
  return Ctx::output(dq);
}

// The token input's length T (int64 scalar): Shape(ids)[1].
std::string token_length(Ctx& ctx) {
  const std::string shape = Ctx::output(ctx.add("Shape", {ctx.in()}, ".ids_shape"));
  onnx::NodeProto& g = ctx.add("Gather", {shape, ctx.int64s(".one_index", {1})}, ".length1");
  Ctx::attr(g, "axis", int64_t{0});
  onnx::NodeProto& sq = ctx.add("Squeeze", {Ctx::output(g)}, ".length");
  return Ctx::output(sq);
}

// Embedding: ids [batch, T] -> rows [batch, T, dim]; a positional table: rows 0..T-1, [1, T, dim] (it is
// added to the token rows, broadcasting over the batch).
void embedding(Ctx& ctx) {
  const std::string table = embedding_table(ctx);
  if (!ctx.node().attrs.value("positional", false)) {
    onnx::NodeProto& g = ctx.add("Gather", {table, ctx.in()});
    Ctx::attr(g, "axis", int64_t{0});
    ctx.set_result(Ctx::output(g));
    return;
  }
  const int64_t zero = 0, one = 1;
  const std::string start = ctx.initializer(".start", onnx::TensorProto::INT64, {}, &zero, 8);
  const std::string step = ctx.initializer(".step", onnx::TensorProto::INT64, {}, &one, 8);
  const std::string positions = Ctx::output(ctx.add("Range", {start, token_length(ctx), step}, ".positions"));
  onnx::NodeProto& g = ctx.add("Gather", {table, positions}, ".rows");
  Ctx::attr(g, "axis", int64_t{0});
  ctx.set_result(Ctx::output(ctx.add("Unsqueeze", {Ctx::output(g), ctx.int64s(".batch_axis", {0})})));
}

// EmbeddingBag: the mean of the rows of each document's ids, ids < 0 being padding (an empty document: 0).
void embedding_bag(Ctx& ctx) {
  auto op = [&](const char* type, const std::vector<std::string>& in, const char* suffix) {
    return Ctx::output(ctx.add(type, in, suffix));
  };
  const std::string ids = ctx.in();
  const int64_t zero = 0;
  const std::string zero_id = ctx.initializer(".zero_id", onnx::TensorProto::INT64, {}, &zero, 8);
  const std::string kept = op("GreaterOrEqual", {ids, zero_id}, ".kept");
  onnx::NodeProto& g =
      ctx.add("Gather", {embedding_table(ctx), op("Where", {kept, ids, zero_id}, ".ids")}, ".rows");
  Ctx::attr(g, "axis", int64_t{0});
  onnx::NodeProto& mask = ctx.add("Cast", {kept}, ".mask");
  Ctx::attr(mask, "to", int64_t{onnx::TensorProto::FLOAT});
  const std::string mask3 = op("Unsqueeze", {Ctx::output(mask), ctx.int64s(".last_axis", {2})}, ".mask3");
  const std::string tokens_axis = ctx.int64s(".tokens_axis", {1});
  onnx::NodeProto& sum =
      ctx.add("ReduceSum", {op("Mul", {Ctx::output(g), mask3}, ".masked"), tokens_axis}, ".sum");
  Ctx::attr(sum, "keepdims", int64_t{0});
  onnx::NodeProto& count = ctx.add("ReduceSum", {mask3, tokens_axis}, ".count0");
  Ctx::attr(count, "keepdims", int64_t{0});
  const std::string n = op("Max", {Ctx::output(count), ctx.floats(".one", {}, {1.0f})}, ".count");
  ctx.set_result(op("Mul", {Ctx::output(sum), op("Reciprocal", {n}, ".inv_count")}, ""));
}

// The attention between the projections over the packed q|k|v [batch, T, 3e]: heads as
// [batch, heads, T, head_dim], scores q k^T x 1/sqrt(head_dim), the causal mask (-inf above the diagonal),
// Softmax, the context [batch, T, e] (returned).
std::string attend(Ctx& ctx, const std::string& qkv, int64_t heads, int64_t dh, bool causal) {
  const int64_t e = heads * dh;
  auto op = [&](const char* type, const std::vector<std::string>& in, const char* suffix) {
    return Ctx::output(ctx.add(type, in, suffix));
  };
  auto transpose = [&](const std::string& v, std::vector<int64_t> perm, const char* suffix) {
    onnx::NodeProto& t = ctx.add("Transpose", {v}, suffix);
    Ctx::attr(t, "perm", perm);
    return Ctx::output(t);
  };
  onnx::NodeProto& split = ctx.add("Split", {qkv, ctx.int64s(".split", {e, e, e})}, ".q");
  Ctx::attr(split, "axis", int64_t{-1});
  split.add_output(ctx.fresh(".k"));
  split.add_output(ctx.fresh(".v"));
  const std::string heads_shape = ctx.int64s(".heads_shape", {0, 0, heads, dh});
  auto by_head = [&](int k, const char* suffix) {
    return op("Reshape", {split.output(k), heads_shape}, suffix);
  };
  const std::string q = transpose(by_head(0, ".q_heads"), {0, 2, 1, 3}, ".q_t");
  const std::string kt = transpose(by_head(1, ".k_heads"), {0, 2, 3, 1}, ".k_t");
  const std::string v = transpose(by_head(2, ".v_heads"), {0, 2, 1, 3}, ".v_t");
  std::string scores =
      op("Mul",
         {op("MatMul", {q, kt}, ".qk"), ctx.floats(".scale", {}, {1.0f / std::sqrt(static_cast<float>(dh))})},
         ".scores");
  if (causal) {
    // mask[r][c] = c > r, from positions 0..T-1 (T from the packed input's shape)
    const std::string shape = op("Shape", {qkv}, ".x_shape");
    onnx::NodeProto& g = ctx.add("Gather", {shape, ctx.int64s(".t_index", {1})}, ".t1");
    Ctx::attr(g, "axis", int64_t{0});
    const std::string t = op("Squeeze", {Ctx::output(g)}, ".t");
    const int64_t zero = 0, one = 1;
    const std::string pos = op("Range",
                               {ctx.initializer(".start", onnx::TensorProto::INT64, {}, &zero, 8), t,
                                ctx.initializer(".step", onnx::TensorProto::INT64, {}, &one, 8)},
                               ".pos");
    const std::string rows = op("Unsqueeze", {pos, ctx.int64s(".row_axis", {1})}, ".pos_rows");
    const std::string future = op("Greater", {pos, rows}, ".future");
    scores = op("Where", {future, ctx.floats(".minus_inf", {}, {-INFINITY}), scores}, ".masked");
  }
  onnx::NodeProto& sm = ctx.add("Softmax", {scores}, ".probs");
  Ctx::attr(sm, "axis", int64_t{-1});
  const std::string context =
      transpose(op("MatMul", {Ctx::output(sm), v}, ".context_heads"), {0, 2, 1, 3}, ".context_t");
  return op("Reshape", {context, ctx.int64s(".context_shape", {0, 0, e})}, ".context");
}

// MultiHeadAttention in fp32 over x [batch, T, d]: the packed in_proj, `attend`, out_proj.
void attention(Ctx& ctx) {
  const Node& n = ctx.node();
  auto op = [&](const char* type, const std::vector<std::string>& in, const char* suffix) {
    return Ctx::output(ctx.add(type, in, suffix));
  };
  const std::string qkv = op("Add",
                             {op("MatMul", {ctx.in(), ctx.float_transposed(".in_proj.weight")}, ".qkv0"),
                              ctx.float_tensor(".in_proj.bias")},
                             ".qkv");
  const std::string flat = attend(ctx, qkv, n.attrs.at("heads").get<int64_t>(), attention_head_dim(n),
                                  n.attrs.value("causal", false));
  ctx.set_result(op("Add",
                    {op("MatMul", {flat, ctx.float_transposed(".out_proj.weight")}, ".out0"),
                     ctx.float_tensor(".out_proj.bias")},
                    ""));
}

// ScaledDotProductAttention: `attend` over its packed input; its result is the context.
void scaled_dot_product_attention(Ctx& ctx) {
  const Node& n = ctx.node();
  ctx.set_result(attend(ctx, ctx.in(), n.attrs.at("heads").get<int64_t>(),
                        n.attrs.at("head_dim").get<int64_t>(), n.attrs.value("causal", false)));
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
    {OpKind::kTanh, [](Ctx& c) { unary(c, "Tanh"); }},
    {OpKind::kL2Normalize, l2_normalize},
    {OpKind::kClip, clip},
    {OpKind::kSoftmax, softmax},
    {OpKind::kMaxPool2d, [](Ctx& c) { pool(c, true); }},
    {OpKind::kAvgPool2d, [](Ctx& c) { pool(c, false); }},
    {OpKind::kGlobalAvgPool, global_pool},
    {OpKind::kFlatten, flatten},
    {OpKind::kAdd, [](Ctx& c) { binary(c, "Add"); }},
    {OpKind::kMul, [](Ctx& c) { binary(c, "Mul"); }},
    {OpKind::kConcat, concat},
    {OpKind::kEmbedding, embedding},
    {OpKind::kEmbeddingBag, embedding_bag},
    {OpKind::kMultiHeadAttention, attention},
    {OpKind::kScaledDotProductAttention, scaled_dot_product_attention},
};

}  // namespace

const std::vector<OnnxExportDef>& export_table() { return kTable; }

const OnnxExportDef* find_export(OpKind op) {
  for (const OnnxExportDef& d : kTable)
    if (d.op == op) return &d;
  return nullptr;
}

}  // namespace mighty::onnx_io
