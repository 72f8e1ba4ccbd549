// The ONNX op table: one import function per ONNX op type, mapping it (with its attributes checked) to IR
// ops, and the exporters' multi-node patterns folded back into one IR op (GELU from Erf, Linear from
// MatMul + Add).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "onnx_io/import_context.h"
#include "runtime/graph/affine.h"
#include "runtime/graph/op_def.h"

namespace mighty::onnx_io {
namespace {

int64_t numel(const Tensor& t) {
  return std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<>());
}

bool is_scalar(const Tensor& t, float value, float tolerance = 0.0f) {
  return numel(t) == 1 && std::abs(t.data[0] - value) <= tolerance;
}

// One square value from a per-axis list of two ([s, s]), or `fallback` when absent.
int64_t square(ImportContext& c, const char* name, int64_t fallback) {
  const auto v = c.attr_ints(name, {fallback, fallback});
  if (v.size() != 2 || v[0] != v[1])
    c.fail(fmt::format("{} [{}] must be two equal values", name, fmt::join(v, ", ")));
  return v[0];
}

// Symmetric padding of a 2-D window: pads [p, p, p, p] (or auto_pad VALID / SAME when it is symmetric).
int64_t symmetric_pad(ImportContext& c, int64_t kernel, int64_t stride, const Shape& in) {
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  if (auto_pad == "VALID") return 0;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    int64_t pad = -1;
    for (int d = 1; d <= 2; ++d) {
      const int64_t size = in[static_cast<size_t>(d)], out = (size + stride - 1) / stride;
      const int64_t total = std::max<int64_t>(0, (out - 1) * stride + kernel - size);
      if (total % 2 != 0 || (pad >= 0 && pad != total / 2))
        c.fail(fmt::format("auto_pad {} needs asymmetric padding here (only symmetric padding is supported)",
                           auto_pad));
      pad = total / 2;
    }
    return pad;
  }
  if (auto_pad != "NOTSET") c.fail(fmt::format("auto_pad '{}' is not supported", auto_pad));
  const auto pads = c.attr_ints("pads", {0, 0, 0, 0});
  if (pads.size() != 4 || std::any_of(pads.begin(), pads.end(), [&](int64_t p) { return p != pads[0]; }))
    c.fail(fmt::format("pads [{}] must be four equal values (symmetric padding)", fmt::join(pads, ", ")));
  return pads[0];
}

void need_rank(ImportContext& c, int k, size_t rank, const char* what) {
  if (c.shape(k).size() != rank)
    c.fail(fmt::format("input {} has per-example shape [{}]: {} expected", k, fmt::join(c.shape(k), ", "),
                       what));
}

void need_one_output(ImportContext& c) {
  for (int o = 1; o < c.node().output_size(); ++o)
    if (!c.node().output(o).empty() && c.consumers(c.node().output(o)).size() > 0)
      c.fail(
          fmt::format("output {} ('{}') is used; only the first output is supported", o, c.node().output(o)));
}

// ---- shape computations (x.view(x.size(0), -1) as exporters write it) ----

// A constant's values as integers: an integer tensor's exact values; a float tensor's only when each is whole
// and within +-2^62.
std::vector<int64_t> integers(ImportContext& c, const Tensor& t, int k) {
  if (t.data.empty() || !t.ints.empty()) return t.ints;
  std::vector<int64_t> out;
  for (float x : t.data) {
    if (!(std::abs(x) <= 0x1p62f) || x != std::trunc(x))
      c.fail(fmt::format("input {} holds {}, where an integer is needed", k, x));
    out.push_back(static_cast<int64_t>(x));
  }
  return out;
}

// Input k as a shape value: a computed shape, or an integer constant.
ImportContext::ShapeValue shape_value(ImportContext& c, int k) {
  if (const auto* v = c.has_input(k) ? c.find_shape_value(c.node().input(k)) : nullptr) return *v;
  ImportContext::ShapeValue out;
  for (int64_t x : integers(c, c.constant(k), k)) out.emplace_back(x);
  return out;
}

bool is_shape_input(ImportContext& c, int k) {
  return c.has_input(k) && c.find_shape_value(c.node().input(k)) != nullptr;
}

// Shape(x) = [batch, dims...] with the batch symbolic.
void shape(ImportContext& c) {
  if (c.has_attr("start") || c.has_attr("end")) c.fail("start and end are not supported");
  ImportContext::ShapeValue v = {std::nullopt};
  for (int64_t d : c.shape(0)) v.emplace_back(d);
  c.set_shape_value(c.node().output(0), v);
}

void gather(ImportContext& c) {
  if (!is_shape_input(c, 0)) c.fail("Gather is supported only on shapes (Shape -> Gather)");
  const auto v = shape_value(c, 0);
  const Tensor& idx = c.constant(1);
  if (c.attr_int("axis", 0) != 0 || idx.shape.size() > 1) c.fail("only indices into a shape vector");
  ImportContext::ShapeValue out;
  for (const int64_t index : integers(c, idx, 1)) {
    int64_t i = index;
    if (i < 0) i += static_cast<int64_t>(v.size());
    if (i < 0 || i >= static_cast<int64_t>(v.size()))
      c.fail(fmt::format("index {} is outside the shape", index));
    out.push_back(v[static_cast<size_t>(i)]);
  }
  c.set_shape_value(c.node().output(0),
                    out);  // a scalar index gives a one-entry vector (rank is not tracked)
}

void unsqueeze(ImportContext& c) {
  if (!is_shape_input(c, 0)) c.fail("Unsqueeze is supported only on shape values (x.size(0) into a shape)");
  const auto axes = c.opset() >= 13 ? shape_value(c, 1) : ImportContext::ShapeValue{};
  const auto attr_axes = c.attr_ints("axes", {0});
  if (c.opset() >= 13 ? (axes.size() != 1 || axes[0] != 0) : attr_axes != std::vector<int64_t>{0})
    c.fail("only axes [0]");
  c.set_shape_value(c.node().output(0), shape_value(c, 0));
}

void concat_shapes(ImportContext& c) {
  if (c.attr_int("axis", 0) != 0) c.fail("shape vectors join along axis 0");
  ImportContext::ShapeValue out;
  for (int k = 0; k < c.node().input_size(); ++k) {
    const auto v = shape_value(c, k);
    out.insert(out.end(), v.begin(), v.end());
  }
  c.set_shape_value(c.node().output(0), out);
}

// ---- convolution and linear layers ----

void conv(ImportContext& c) {
  need_rank(c, 0, 3, "[C, H, W] (2-D convolution)");
  const Tensor& w = c.constant(1);
  if (w.shape.size() != 4 || w.shape[2] != w.shape[3])
    c.fail(fmt::format("weight shape [{}]: only square 2-D kernels", fmt::join(w.shape, ", ")));
  const int64_t groups = c.attr_int("group", 1);
  if (square(c, "dilations", 1) != 1) c.fail("dilations must be 1");
  const auto kernel = c.attr_ints("kernel_shape", {w.shape[2], w.shape[3]});
  if (kernel != std::vector<int64_t>{w.shape[2], w.shape[3]})
    c.fail("kernel_shape differs from the weight's");
  const int64_t stride = square(c, "strides", 1);
  const int64_t pad = symmetric_pad(c, w.shape[2], stride, c.shape(0));
  const bool bias = c.has_input(2);
  const std::string name = c.add(OpKind::kConv2d, {c.value(0)},
                                 {{"in_channels", w.shape[1] * groups},
                                  {"out_channels", w.shape[0]},
                                  {"kernel", w.shape[2]},
                                  {"stride", stride},
                                  {"padding", pad},
                                  {"groups", groups},
                                  {"bias", bias}});
  c.weight(name + ".weight", w);
  if (bias) c.weight(name + ".bias", c.constant(2));
}

// weight [out][in] (row-major) from a matrix `m` [rows][cols], transposed when `transpose`.
Tensor matrix(const Tensor& m, bool transpose, float scale) {
  Tensor w;
  const int64_t rows = m.shape[0], cols = m.shape[1];
  w.shape = transpose ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows, cols};
  w.data.resize(m.data.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      w.data[static_cast<size_t>(transpose ? k * rows + r : r * cols + k)] =
          m.data[static_cast<size_t>(r * cols + k)] * scale;
  return w;
}

// A bias of `n` entries from a constant that broadcasts along the last axis ([n], [1, n], or a scalar).
bool bias_vector(const Tensor& t, int64_t n, float scale, Tensor& out) {
  const int64_t count = numel(t);
  for (size_t d = 0; d + 1 < t.shape.size(); ++d)
    if (t.shape[d] != 1) return false;
  if (count != n && count != 1) return false;
  out.shape = {n};
  out.data.assign(static_cast<size_t>(n), 0.0f);
  for (int64_t j = 0; j < n; ++j)
    out.data[static_cast<size_t>(j)] = t.data[static_cast<size_t>(count == 1 ? 0 : j)] * scale;
  return true;
}

void add_linear(ImportContext& c, const std::string& output, int input, const Tensor& weight,
                const Tensor* bias) {
  const std::string name = c.add_for(
      output, OpKind::kLinear, {input},
      {{"in_features", weight.shape[1]}, {"out_features", weight.shape[0]}, {"bias", bias != nullptr}});
  c.weight(name + ".weight", weight);
  if (bias) c.weight(name + ".bias", *bias);
}

// Gemm(A, B, C) = alpha A' B' + beta C with A a value [batch, K]: a Linear (alpha and beta folded into the
// weights and bias).
void gemm(ImportContext& c) {
  need_rank(c, 0, 1, "[K] (the batch is the Gemm's M)");
  if (c.attr_int("transA", 0) != 0) c.fail("transA must be 0 (the batch is the rows of A)");
  const Tensor& b = c.constant(1);
  if (b.shape.size() != 2) c.fail("B must be a matrix");
  const float alpha = c.attr_float("alpha", 1.0f), beta = c.attr_float("beta", 1.0f);
  const Tensor weight = matrix(b, c.attr_int("transB", 0) == 0, alpha);
  Tensor bias;
  const bool has_bias = c.has_input(2) && beta != 0.0f;
  if (has_bias && !bias_vector(c.constant(2), weight.shape[0], beta, bias))
    c.fail(fmt::format("C of shape [{}] is not a bias (one value per output, or a scalar)",
                       fmt::join(c.constant(2).shape, ", ")));
  add_linear(c, c.node().output(0), c.value(0), weight, has_bias ? &bias : nullptr);
}

// MatMul(A, B) with B a constant [K, N]: a Linear over A's last axis; an Add of a bias right after it is
// folded in.
void matmul(ImportContext& c) {
  if (!c.is_constant(1)) c.fail("only a product with a constant matrix (a weight) is supported");
  const Tensor& b = c.constant(1);
  if (b.shape.size() != 2) c.fail("B must be a matrix");
  const Tensor weight = matrix(b, true, 1.0f);
  const std::string out = c.node().output(0);
  const auto users = c.consumers(out);
  if (users.size() == 1 && users[0] >= 0) {
    const auto& next = c.node_at(users[0]);
    if (next.op_type() == "Add" && next.input_size() == 2) {
      const std::string other = next.input(0) == out ? next.input(1) : next.input(0);
      Tensor bias;
      if (const Tensor* t = c.find_constant(other); t && bias_vector(*t, weight.shape[0], 1.0f, bias)) {
        c.consume(users[0]);
        return add_linear(c, next.output(0), c.value(0), weight, &bias);
      }
    }
  }
  add_linear(c, out, c.value(0), weight, nullptr);
}

void batch_norm(ImportContext& c) {
  need_rank(c, 0, 3, "[C, H, W]");
  if (c.attr_int("training_mode", 0) != 0) c.fail("training_mode must be 0 (inference)");
  need_one_output(c);
  const int64_t channels = c.shape(0)[0];
  const char* names[] = {"weight", "bias", "running_mean", "running_var"};
  for (int k = 1; k <= 4; ++k)
    if (c.constant(k).shape != std::vector<int64_t>{channels})
      c.fail(fmt::format("input {} must be a vector of {} values", k, channels));
  const std::string name = c.add(OpKind::kBatchNorm2d, {c.value(0)},
                                 {{"channels", channels}, {"eps", c.attr_float("epsilon", 1e-5f)}});
  for (int k = 1; k <= 4; ++k) c.weight(name + "." + names[k - 1], c.constant(k));
}

void layer_norm(ImportContext& c) {
  const Shape& in = c.shape(0);
  const int64_t axis = c.attr_int("axis", -1);
  if (axis != -1 && axis != static_cast<int64_t>(in.size())) c.fail("only normalization over the last axis");
  need_one_output(c);
  const int64_t dim = in.back();
  if (c.constant(1).shape != std::vector<int64_t>{dim} ||
      (c.has_input(2) && c.constant(2).shape != std::vector<int64_t>{dim}))
    c.fail(fmt::format("scale and bias must be vectors of {} values", dim));
  const std::string name =
      c.add(OpKind::kLayerNorm, {c.value(0)}, {{"dim", dim}, {"eps", c.attr_float("epsilon", 1e-5f)}});
  c.weight(name + ".weight", c.constant(1));
  c.weight(name + ".bias", c.has_input(2)
                               ? c.constant(2)
                               : Tensor{{dim}, std::vector<float>(static_cast<size_t>(dim), 0.0f), {}});
}

// ---- elementwise ----

void relu(ImportContext& c) { c.add(OpKind::kReLU, {c.value(0)}); }
void sigmoid(ImportContext& c) { c.add(OpKind::kSigmoid, {c.value(0)}); }
void tanh_op(ImportContext& c) { c.add(OpKind::kTanh, {c.value(0)}); }
void hardswish(ImportContext& c) { c.add(OpKind::kHardSwish, {c.value(0)}); }

void hardsigmoid(ImportContext& c) {
  c.add(OpKind::kHardSigmoid, {c.value(0)},
        {{"alpha", c.attr_float("alpha", 0.2f)}, {"beta", c.attr_float("beta", 0.5f)}});
}

void clip(ImportContext& c) {
  nlohmann::json attrs = nlohmann::json::object();
  for (int k : {1, 2}) {
    if (!c.has_input(k)) continue;
    const Tensor& t = c.constant(k);
    if (numel(t) != 1) c.fail(fmt::format("input {} must be a scalar", k));
    attrs[k == 1 ? "min" : "max"] = t.data[0];
  }
  if (attrs.contains("min") && attrs.contains("max") && attrs["min"].get<float>() > attrs["max"].get<float>())
    c.fail("min is above max");
  c.add(OpKind::kClip, {c.value(0)}, attrs);
}

void softmax(ImportContext& c) {
  const int64_t rank = static_cast<int64_t>(c.shape(0).size()) + 1;
  const int64_t axis = c.attr_int("axis", c.opset() >= 13 ? -1 : 1);
  if (axis != -1 && axis != rank - 1)
    c.fail(fmt::format("only softmax over the last axis (axis {} of rank {})", axis, rank));
  c.add(OpKind::kSoftmax, {c.value(0)});
}

// x * 0.5 * (1 + erf(x / sqrt 2)) as exporters write it: Div(x, sqrt 2) or Mul(x, 1 / sqrt 2) -> Erf ->
// Add 1 -> Mul by x -> Mul 0.5 (the two Muls in either order). Returns whether this node starts one.
bool gelu(ImportContext& c) {
  const auto& n = c.node();
  const int x_index = c.is_constant(0) ? 1 : 0;
  if (!c.is_constant(1 - x_index) || c.is_constant(x_index)) return false;
  const Tensor& k = c.constant(1 - x_index);
  const bool scaled = n.op_type() == "Div" ? x_index == 0 && is_scalar(k, std::sqrt(2.0f), 1e-4f)
                                           : is_scalar(k, 1.0f / std::sqrt(2.0f), 1e-4f);
  if (!scaled) return false;
  const std::string x = n.input(x_index);
  // Follows the single consumer of `from` when it is `op` with (optionally) a constant operand equal to
  // `value` or the operand `x`; returns its index or -1.
  auto next = [&](const std::string& from, const char* op, float value, bool with_x) {
    const auto users = c.consumers(from);
    if (users.size() != 1 || users[0] < 0) return -1;
    const auto& m = c.node_at(users[0]);
    if (m.op_type() != op) return -1;
    if (std::string(op) == "Erf") return users[0];
    if (m.input_size() != 2) return -1;
    const std::string other = m.input(0) == from ? m.input(1) : m.input(0);
    if (with_x) return other == x ? users[0] : -1;
    const Tensor* t = c.find_constant(other);
    return t && is_scalar(*t, value, 1e-6f) ? users[0] : -1;
  };
  const int erf = next(n.output(0), "Erf", 0.0f, false);
  if (erf < 0) return false;
  const int plus = next(c.node_at(erf).output(0), "Add", 1.0f, false);
  if (plus < 0) return false;
  int times_x = next(c.node_at(plus).output(0), "Mul", 0.0f, true), half = -1;
  if (times_x >= 0) {
    half = next(c.node_at(times_x).output(0), "Mul", 0.5f, false);
  } else {  // 0.5 * (1 + erf) first, then x
    half = next(c.node_at(plus).output(0), "Mul", 0.5f, false);
    if (half >= 0) times_x = next(c.node_at(half).output(0), "Mul", 0.0f, true);
  }
  if (half < 0 || times_x < 0) return false;
  const int last = std::max(half, times_x);
  for (int i : {erf, plus, times_x, half}) c.consume(i);
  c.add_for(c.node_at(last).output(0), OpKind::kGELU, {c.value_of(x)});
  return true;
}

// Add and Mul of two computed values (broadcast over dimensions of size 1).
void binary(ImportContext& c, OpKind op) {
  if (c.is_constant(0) || c.is_constant(1)) c.fail("both operands are constants (no constant folding here)");
  if (c.shape(0).size() != c.shape(1).size())
    c.fail(fmt::format("operands of shapes [{}] and [{}] have different ranks", fmt::join(c.shape(0), ", "),
                       fmt::join(c.shape(1), ", ")));
  c.add(op, {c.value(0), c.value(1)});
}

// x + k, x - k, k - x, x * k, x / k with a constant k of one value or one per channel ([C, 1, 1], [1, C, 1,
// 1]) on a [C, H, W] map: one per-channel affine x * scale + shift, carried as a BatchNorm2d with mean 0,
// variance 1 and eps 1e-12 (1 + eps is 1 in float, so it computes exactly x * weight + bias; x / k becomes x
// * (1 / k)) and `frozen_statistics` (training never makes it a normalization); quantize folds it into a
// convolution before it. Returns false when no operand is a constant.
bool affine_constant(ImportContext& c) {
  const int x_index = c.is_constant(0) ? 1 : 0;
  if (!c.is_constant(1 - x_index) || c.is_constant(x_index)) return false;
  const std::string& op = c.node().op_type();
  const Tensor& k = c.constant(1 - x_index);
  const Shape& in = c.shape(x_index);
  if (in.size() != 3)
    c.fail(fmt::format("a constant operand applies to a [C, H, W] map only; here the other operand is [{}]",
                       fmt::join(in, ", ")));
  const int64_t channels = in[0];
  std::vector<int64_t> dims = k.shape;
  while (dims.size() > 3 && dims.front() == 1) dims.erase(dims.begin());
  const bool one = k.data.size() == 1, per_channel = dims == std::vector<int64_t>{channels, 1, 1};
  if (!one && !per_channel)
    c.fail(fmt::format("the constant operand of shape [{}] must be one value or one per channel ([{}, 1, 1])",
                       fmt::join(k.shape, ", "), channels));
  if (op == "Div" && x_index == 1) c.fail("a constant divided by a computed value is not supported");
  Tensor scale{{channels}, std::vector<float>(static_cast<size_t>(channels), 1.0f), {}};
  Tensor shift{{channels}, std::vector<float>(static_cast<size_t>(channels), 0.0f), {}};
  for (int64_t ch = 0; ch < channels; ++ch) {
    const float value = k.data[static_cast<size_t>(one ? 0 : ch)];
    affine_of(op, x_index == 1, value, &scale.data[static_cast<size_t>(ch)],
              &shift.data[static_cast<size_t>(ch)]);
    // x / k is x * (1 / k): a zero or subnormal k has no finite reciprocal (training and quantization need
    // one).
    if (!std::isfinite(scale.data[static_cast<size_t>(ch)]))
      c.fail(fmt::format("dividing by {} has no finite reciprocal in float", value));
  }
  const std::string name = c.add(OpKind::kBatchNorm2d, {c.value(x_index)},
                                 {{"channels", channels}, {"eps", 1e-12}, {"frozen_statistics", true}});
  c.weight(name + ".weight", scale);
  c.weight(name + ".bias", shift);
  c.weight(name + ".running_mean",
           Tensor{{channels}, std::vector<float>(static_cast<size_t>(channels), 0.0f), {}});
  c.weight(name + ".running_var",
           Tensor{{channels}, std::vector<float>(static_cast<size_t>(channels), 1.0f), {}});
  return true;
}

void add(ImportContext& c) {
  if (!affine_constant(c)) binary(c, OpKind::kAdd);
}

void sub(ImportContext& c) {
  if (!affine_constant(c)) c.fail("Sub is supported with one constant operand only");
}

void mul(ImportContext& c) {
  if (gelu(c) || affine_constant(c)) return;
  binary(c, OpKind::kMul);
}

void div(ImportContext& c) {
  if (gelu(c) || affine_constant(c)) return;
  c.fail("Div is supported with a constant divisor only (or as the x / sqrt(2) of an Erf-based GELU)");
}

void concat(ImportContext& c) {
  for (int k = 0; k < c.node().input_size(); ++k)
    if (is_shape_input(c, k)) return concat_shapes(c);
  const int64_t rank = static_cast<int64_t>(c.shape(0).size()) + 1;
  int64_t axis = c.attr_int("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 1 || axis >= rank)
    c.fail(fmt::format("axis {} (rank {}): cannot concatenate along the batch", axis, rank));
  std::vector<int> inputs;
  for (int k = 0; k < c.node().input_size(); ++k) inputs.push_back(c.value(k));
  c.add(OpKind::kConcat, inputs, {{"axis", axis - 1}});
}

void identity(ImportContext& c) {
  need_one_output(c);
  if (c.is_constant(0)) return c.set_constant(c.node().output(0), c.constant(0));
  c.alias(c.node().output(0), c.value(0));
}

void dropout(ImportContext& c) {
  if (c.has_input(2) && !(c.is_constant(2) && is_scalar(c.constant(2), 0.0f)))
    c.fail("training_mode must be a constant false");
  identity(c);
}

// ---- pooling and shapes ----

void pool(ImportContext& c, OpKind op) {
  need_rank(c, 0, 3, "[C, H, W]");
  need_one_output(c);
  const auto kernel = c.attr_ints("kernel_shape", {});
  if (kernel.size() != 2 || kernel[0] != kernel[1]) c.fail("kernel_shape must be two equal values");
  const int64_t stride = square(c, "strides", 1);
  const int64_t pad = symmetric_pad(c, kernel[0], stride, c.shape(0));
  if (pad > kernel[0] / 2) c.fail(fmt::format("pads {} exceed half the window {}", pad, kernel[0]));
  if (c.attr_int("ceil_mode", 0) != 0) c.fail("ceil_mode must be 0");
  if (square(c, "dilations", 1) != 1) c.fail("dilations must be 1");
  if (c.attr_int("storage_order", 0) != 0) c.fail("storage_order must be 0");
  nlohmann::json attrs = {{"kernel", kernel[0]}, {"stride", stride}, {"padding", pad}};
  // ONNX's default leaves the padding out of the average (PyTorch's exporter writes 1 for its default).
  if (op == OpKind::kAvgPool2d) attrs["count_include_pad"] = c.attr_int("count_include_pad", 0) != 0;
  c.add(op, {c.value(0)}, attrs);
}

void max_pool(ImportContext& c) { pool(c, OpKind::kMaxPool2d); }
void average_pool(ImportContext& c) { pool(c, OpKind::kAvgPool2d); }

void global_average_pool(ImportContext& c) {
  need_rank(c, 0, 3, "[C, H, W]");
  c.add(OpKind::kGlobalAvgPool, {c.value(0)}, {{"keepdim", true}});
}

void reduce_mean(ImportContext& c) {
  need_rank(c, 0, 3, "[C, H, W] (the mean over H and W)");
  auto axes = c.attr_ints("axes", {});
  for (auto& a : axes) a = a < 0 ? a + 4 : a;
  std::sort(axes.begin(), axes.end());
  if (axes != std::vector<int64_t>{2, 3}) c.fail("only the mean over H and W (axes 2 and 3)");
  c.add(OpKind::kGlobalAvgPool, {c.value(0)}, {{"keepdim", c.attr_int("keepdims", 1) != 0}});
}

void flatten(ImportContext& c) {
  const int64_t rank = static_cast<int64_t>(c.shape(0).size()) + 1;
  int64_t axis = c.attr_int("axis", 1);
  if (axis < 0) axis += rank;
  if (axis != 1) c.fail(fmt::format("only axis 1 (flatten each example; axis {} of rank {})", axis, rank));
  c.add(OpKind::kFlatten, {c.value(0)});
}

// Reshape to [batch, -1] (or [batch, n] with n the example's size; batch given as 0, -1, a number or the
// computed batch size).
void reshape(ImportContext& c) {
  const auto target = shape_value(c, 1);
  const Shape& in = c.shape(0);
  const int64_t features = std::accumulate(in.begin(), in.end(), int64_t{1}, std::multiplies<>());
  const bool flat = target.size() == 2 && target[1] && (*target[1] == -1 || *target[1] == features) &&
                    !(target[0] && *target[0] == -1 && *target[1] == -1);
  if (!flat) {
    std::vector<std::string> shown;
    for (const auto& d : target) shown.push_back(d ? std::to_string(*d) : "batch");
    c.fail(
        fmt::format("only a reshape to [batch, -1] (a flatten) is supported; shape [{}] of input [batch, {}]",
                    fmt::join(shown, ", "), fmt::join(in, ", ")));
  }
  if (in.size() == 1) return c.alias(c.node().output(0), c.value(0));
  c.add(OpKind::kFlatten, {c.value(0)});
}

void constant(ImportContext& c) {
  const auto& n = c.node();
  if (n.attribute_size() != 1) c.fail("a Constant needs exactly one value attribute");
  const auto& a = n.attribute(0);
  Tensor t;
  if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) {
    t = tensor_from_proto(a.t(), fmt::format("{}: Constant node {}", c.file(), c.index()));
  } else if (a.name() == "value_float") {
    t = {{}, {a.f()}, {}};
  } else if (a.name() == "value_floats") {
    t = {{a.floats_size()}, std::vector<float>(a.floats().begin(), a.floats().end()), {}};
  } else if (a.name() == "value_int") {
    t = {{}, {static_cast<float>(a.i())}, {a.i()}};
  } else if (a.name() == "value_ints") {
    t.shape = {a.ints_size()};
    for (int64_t v : a.ints()) t.data.push_back(static_cast<float>(v));
    t.ints.assign(a.ints().begin(), a.ints().end());
  } else {
    c.fail(fmt::format("Constant attribute '{}' is not supported", a.name()));
  }
  c.set_constant(n.output(0), std::move(t));
}

void erf(ImportContext& c) {
  c.fail("Erf is supported only inside the GELU pattern x * 0.5 * (1 + erf(x / sqrt 2))");
}

const OnnxOpDef kOps[] = {
    {"Add", add},
    {"AveragePool", average_pool},
    {"BatchNormalization", batch_norm},
    {"Clip", clip},
    {"Concat", concat},
    {"Constant", constant},
    {"Conv", conv},
    {"Div", div},
    {"Dropout", dropout},
    {"Erf", erf},
    {"Flatten", flatten},
    {"Gather", gather},
    {"Gemm", gemm},
    {"GlobalAveragePool", global_average_pool},
    {"HardSigmoid", hardsigmoid},
    {"HardSwish", hardswish},
    {"Identity", identity},
    {"LayerNormalization", layer_norm},
    {"MatMul", matmul},
    {"MaxPool", max_pool},
    {"Mul", mul},
    {"ReduceMean", reduce_mean},
    {"Relu", relu},
    {"Reshape", reshape},
    {"Shape", shape},
    {"Sigmoid", sigmoid},
    {"Softmax", softmax},
    {"Sub", sub},
    {"Tanh", tanh_op},
    {"Unsqueeze", unsqueeze},
};

}  // namespace

const OnnxOpDef* find_onnx_op(const std::string& op_type) {
  for (const auto& def : kOps)
    if (op_type == def.op_type) return &def;
  return nullptr;
}

const std::vector<std::string>& supported_ops() {
  static const std::vector<std::string> ops = [] {
    std::vector<std::string> out;
    for (const auto& def : kOps) out.push_back(def.op_type);
    return out;
  }();
  return ops;
}

}  // namespace mighty::onnx_io
