// The ONNX export driver: the model and graph protos, the input, each IR node through the op table
// (export_ops.cc), the Q/DQ pairs of uint8 chains, the output, then ONNX's checker and strict shape
// inference.
#include "onnx_io/export.h"

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "onnx_io/export_context.h"
#include "runtime/error.h"
#include "runtime/exec/int8_layer.h"
#include "runtime/exec/u8_chain.h"
#include "runtime/graph/op_def.h"
#include "runtime/io/atomic_file.h"

namespace mighty::onnx_io {

void ExportContext::fail(const std::string& what) const {
  const Node& n = node();
  throw Error(fmt::format("{}: ONNX export of graph node {} ('{}', {}): {}", artifact_.name(), index_, n.name,
                          op_name(n.op), what));
}

const std::string& ExportContext::in(int k) const {
  return values_[static_cast<size_t>(node().inputs.at(static_cast<size_t>(k)))];
}

const Shape& ExportContext::in_shape(int k) const {
  return graph_.nodes()[static_cast<size_t>(node().inputs.at(static_cast<size_t>(k)))].shape;
}

std::string ExportContext::unique(const std::string& name) {
  std::string candidate = name;
  for (int i = 1; names_.count(candidate); ++i) candidate = fmt::format("{}_{}", name, i);
  names_.insert(candidate);
  return candidate;
}

onnx::NodeProto& ExportContext::add(const std::string& op_type, const std::vector<std::string>& inputs,
                                    const std::string& suffix) {
  onnx::NodeProto& n = *proto_.add_node();
  n.set_op_type(op_type);
  for (const std::string& i : inputs) n.add_input(i);
  const std::string out = unique(node().name + suffix);
  n.add_output(out);
  n.set_name(out);
  op_types_.insert(op_type);
  return n;
}

void ExportContext::attr(onnx::NodeProto& n, const char* name, int64_t v) {
  onnx::AttributeProto& a = *n.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
}

void ExportContext::attr(onnx::NodeProto& n, const char* name, const std::vector<int64_t>& v) {
  onnx::AttributeProto& a = *n.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
}

void ExportContext::attr(onnx::NodeProto& n, const char* name, float v) {
  onnx::AttributeProto& a = *n.add_attribute();
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(v);
}

std::string ExportContext::initializer(const std::string& suffix, int32_t data_type,
                                       const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  onnx::TensorProto& t = *proto_.add_initializer();
  const std::string name = unique(node().name + suffix);
  t.set_name(name);
  t.set_data_type(data_type);
  for (int64_t d : shape) t.add_dims(d);
  t.set_raw_data(std::string(static_cast<const char*>(data), bytes));  // little-endian, as ONNX wants
  return name;
}

std::string ExportContext::floats(const std::string& suffix, const std::vector<int64_t>& shape,
                                  const std::vector<float>& v) {
  return initializer(suffix, onnx::TensorProto::FLOAT, shape, v.data(), v.size() * sizeof(float));
}

std::string ExportContext::int64s(const std::string& suffix, const std::vector<int64_t>& v) {
  return initializer(suffix, onnx::TensorProto::INT64, {static_cast<int64_t>(v.size())}, v.data(),
                     v.size() * sizeof(int64_t));
}

const TensorView& ExportContext::tensor(const std::string& suffix) const {
  const std::string name = node().name + suffix;
  if (!artifact_.has_tensor(name)) fail(fmt::format("the artifact has no tensor '{}'", name));
  return artifact_.tensor(name);
}

std::string ExportContext::float_tensor(const std::string& suffix, const std::vector<int64_t>& shape) {
  const TensorView& t = tensor(suffix);
  if (t.type != TensorType::kFloat32) fail(fmt::format("tensor '{}' is not float32", t.name));
  std::vector<int64_t> dims = shape.empty() ? t.shape : shape;
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  if (count != t.numel()) fail(fmt::format("tensor '{}' does not have {} elements", t.name, count));
  return initializer(suffix, onnx::TensorProto::FLOAT, dims, t.data, t.bytes);
}

MetaValue ExportContext::quant() const {
  return MetaValue(node().attrs, artifact_.name(), fmt::format("/graph/nodes/{}/attrs", index_)).at("quant");
}

bool ExportContext::static_activation() const {
  const std::string mode = quant().string_or("activation", "");
  if (mode != "static" && mode != "dynamic") quant().fail("activation must be \"static\" or \"dynamic\"");
  return mode == "static";
}

kernels::QuantParams ExportContext::input_params() const {
  const MetaValue q = quant();
  kernels::QuantParams p;
  p.scale = static_cast<float>(q.at("input_scale").number(1e-30, 1e30));
  p.zero_point = static_cast<int32_t>(q.at("input_zero_point").integer(0, 255));
  return p;
}

std::string ExportContext::quantize_dequantize(const std::string& value, kernels::QuantParams p) {
  const auto known = dequantized_.find(value);
  if (known != dequantized_.end() && known->second.scale == p.scale &&
      known->second.zero_point == p.zero_point)
    return value;
  const std::string scale = floats("_scale", {}, {p.scale});
  const auto zp8 = static_cast<uint8_t>(p.zero_point);
  const std::string zp = initializer("_zero_point", onnx::TensorProto::UINT8, {}, &zp8, 1);
  const std::string q = output(add("QuantizeLinear", {value, scale, zp}, "_q"));
  const std::string dq = output(add("DequantizeLinear", {q, scale, zp}, "_dq"));
  dequantized_[dq] = p;
  return dq;
}

namespace {

// A row-major [rows][cols] matrix of T transposed.
template <class T>
std::vector<T> transpose(const T* m, int64_t rows, int64_t cols) {
  std::vector<T> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = m[r * cols + c];
  return t;
}

}  // namespace

std::string ExportContext::float_transposed(const std::string& suffix) {
  const TensorView& t = tensor(suffix);
  if (t.type != TensorType::kFloat32 || t.shape.size() != 2)
    fail(fmt::format("tensor '{}' is not a float32 matrix", t.name));
  const std::vector<float> v = transpose(t.as<float>(), t.shape[0], t.shape[1]);
  return floats(suffix + "_t", {t.shape[1], t.shape[0]}, v);
}

std::string ExportContext::int8_weight(bool transposed) {
  const TensorView& w = tensor(".weight");
  const TensorView& s = tensor(".weight_scale");
  if (w.type != TensorType::kInt8 || w.shape.empty() || (transposed && w.shape.size() != 2))
    fail(fmt::format("tensor '{}' is not an int8 weight", w.name));
  if (s.type != TensorType::kFloat32 || s.numel() != w.shape[0])
    fail(fmt::format("tensor '{}' is not {} float32 scales", s.name, w.shape[0]));
  std::string q;
  if (transposed) {
    const std::vector<int8_t> t = transpose(w.as<int8_t>(), w.shape[0], w.shape[1]);
    q = initializer(".weight_int8_t", onnx::TensorProto::INT8, {w.shape[1], w.shape[0]}, t.data(), t.size());
  } else {
    q = initializer(".weight_int8", onnx::TensorProto::INT8, w.shape, w.data, w.bytes);
  }
  const std::string scale =
      initializer(".weight_scale", onnx::TensorProto::FLOAT, {w.shape[0]}, s.data, s.bytes);
  const std::vector<int8_t> zeros(static_cast<size_t>(w.shape[0]), 0);
  const std::string zp =
      initializer(".weight_zero_point", onnx::TensorProto::INT8, {w.shape[0]}, zeros.data(), zeros.size());
  onnx::NodeProto& dq = add("DequantizeLinear", {q, scale, zp}, ".weight_dq");
  attr(dq, "axis", int64_t{transposed ? 1 : 0});
  return output(dq);
}

std::string ExportContext::int32_bias(kernels::QuantParams input) {
  const TensorView& b = tensor(".bias");
  const TensorView& s = tensor(".weight_scale");
  if (b.type != TensorType::kFloat32 || b.numel() != s.numel())
    fail(fmt::format("tensor '{}' is not {} float32 values", b.name, s.numel()));
  const int64_t out = b.numel();
  std::vector<int32_t> q(static_cast<size_t>(out));
  std::vector<float> scale(static_cast<size_t>(out));
  for (int64_t c = 0; c < out; ++c) {
    const float ws = s.as<float>()[c];
    if (!exec::accumulator_bias(b.as<float>()[c], input.scale, ws, q[static_cast<size_t>(c)]))
      fail(fmt::format("the bias of channel {} does not fit int32 at the accumulator's scale", c));
    scale[static_cast<size_t>(c)] = input.scale * ws;
  }
  const std::string qi = initializer(".bias_int32", onnx::TensorProto::INT32, {out}, q.data(), q.size() * 4);
  const std::string si = floats(".bias_scale", {out}, scale);
  const std::vector<int32_t> zeros(static_cast<size_t>(out), 0);
  const std::string zi =
      initializer(".bias_zero_point", onnx::TensorProto::INT32, {out}, zeros.data(), zeros.size() * 4);
  onnx::NodeProto& dq = add("DequantizeLinear", {qi, si, zi}, ".bias_dq");
  attr(dq, "axis", int64_t{0});
  return output(dq);
}

namespace {

constexpr int64_t kOpset = 17;

// [batch, per_example...]; with `length`, the first per-example dimension is the symbolic token count.
onnx::ValueInfoProto value_info(const std::string& name, int32_t elem, const Shape& per_example,
                                bool length = false) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem);
  auto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param("batch");
  for (size_t i = 0; i < per_example.size(); ++i) {
    if (length && i == 0) {
      shape->add_dim()->set_dim_param("length");
    } else {
      shape->add_dim()->set_dim_value(per_example[i]);
    }
  }
  return v;
}

// Whether a ReLU or Clip changes nothing on values dequantized at `p` (an engine then removes it and fuses
// the conv with the QuantizeLinear after it).
bool implied_by_range(const Node& act, kernels::QuantParams p) {
  if (act.op == OpKind::kReLU) return p.zero_point == 0;
  const double lo = -static_cast<double>(p.zero_point) * p.scale, hi = (255.0 - p.zero_point) * p.scale;
  return act.attrs.value("min", -DBL_MAX) <= lo && act.attrs.value("max", DBL_MAX) >= hi;
}

// For each node: the parameters of the Q/DQ pair that follows it in a uint8 chain (a static conv that
// requantizes, the ReLU / Clip / MaxPool2d / Flatten it hands the uint8 map through), where mighty's value
// is uint8. A pair goes after the last of consecutive activations, never between a conv and its ReLU: the
// runtime applies the activation as the requantization's clamp.
std::vector<std::optional<kernels::QuantParams>> chain_pairs(const Artifact& artifact, const Graph& graph) {
  const auto& nodes = graph.nodes();
  std::vector<std::optional<kernels::QuantParams>> pairs(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.op != OpKind::kConv2d || !n.attrs.contains("quant") || !n.attrs["quant"].contains("output_scale"))
      continue;
    const MetaValue q =
        MetaValue(n.attrs, artifact.name(), fmt::format("/graph/nodes/{}/attrs", i)).at("quant");
    kernels::QuantParams p;
    p.scale = static_cast<float>(q.at("output_scale").number(1e-30, 1e30));
    p.zero_point = static_cast<int32_t>(q.at("output_zero_point").integer(0, 255));
    const U8Chain chain = follow_u8_chain(graph, static_cast<int>(i));
    if (chain.end < 0 || !chain.consumer) {
      throw Error(
          fmt::format("{}: graph node {} ('{}'): quant.output_scale without a uint8 chain to an int8 "
                      "layer",
                      artifact.name(), i, n.name));
    }
    auto activation = [&](int v) {
      const OpKind k = nodes[static_cast<size_t>(v)].op;
      return v != chain.end && (k == OpKind::kReLU || k == OpKind::kClip);
    };
    // The activations right after the conv: an engine drops them only where the pair's range implies them;
    // otherwise the conv gets a pair of its own and they run between a DequantizeLinear and the next pair.
    for (int v = graph.users(static_cast<int>(i)).at(0); activation(v); v = graph.users(v).at(0))
      if (!implied_by_range(nodes[static_cast<size_t>(v)], p)) pairs[i] = p;
    for (int v = static_cast<int>(i); v != chain.end;) {
      const int next = graph.users(v).at(0);
      if (next == chain.end || !activation(next)) pairs[static_cast<size_t>(v)] = p;
      v = next;
    }
  }
  return pairs;
}

}  // namespace

OnnxExport export_onnx(const Artifact& artifact) {
  const MetaValue meta(artifact.metadata(), artifact.name());
  Graph graph = Graph::from_json(meta.at("graph").json());
  graph.infer_shapes();
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("mighty");
  model.set_producer_version(meta.string_or("producer_version", ""));
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  if (meta.has("input")) {
    onnx::StringStringEntryProto* e = model.add_metadata_props();
    e->set_key("mighty.input");
    e->set_value(meta.at("input").json().dump());
  }
  for (const char* key : {"recipe_hash", "data_hash", "role"}) {
    if (!meta.has(key)) continue;
    onnx::StringStringEntryProto* e = model.add_metadata_props();
    e->set_key(std::string("mighty.") + key);
    e->set_value(meta.at(key).string());
  }
  onnx::GraphProto& g = *model.mutable_graph();
  g.set_name("mighty");
  ExportContext ctx(artifact, graph, g);
  const bool tokens = graph.input_dtype() == DType::kInt64;
  const auto pairs = chain_pairs(artifact, graph);
  OnnxExport result;
  const auto& nodes = graph.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    ctx.begin(static_cast<int>(i));
    if (n.op == OpKind::kInput) {  // normalized floats, or token ids [batch, length]
      *g.add_input() = tokens ? value_info("input", onnx::TensorProto::INT64, n.shape, true)
                              : value_info("input", onnx::TensorProto::FLOAT, n.shape);
      ctx.set_result("input");
      continue;
    }
    const OnnxExportDef* def = find_export(n.op);
    if (!def) {
      ctx.fail(fmt::format("{} has no ONNX export yet (exported ops: {})", op_name(n.op),
                           fmt::join(exportable_ops(), ", ")));
    }
    def->write(ctx);
    if (n.attrs.contains("quant")) {
      result.quantized = true;
      result.int8_nodes.push_back(n.name);
    }
    if (pairs[i]) ctx.set_result(ctx.quantize_dequantize(ctx.value(static_cast<int>(i)), *pairs[i]));
  }
  // The graph's output under the name "output" (an Identity when the last node's value has another name).
  const int last = graph.output();
  ctx.begin(last);
  onnx::NodeProto& id = ctx.add("Identity", {ctx.value(last)}, "_output");
  id.set_output(0, "output");
  // A token model's per-token output [T, ...] has the input's length; a pooled one does not.
  *g.add_output() = value_info("output", onnx::TensorProto::FLOAT, graph.output_shape(),
                               tokens && graph.output_shape().size() > 1);
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1, false));
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: the ONNX model written from it fails ONNX's checker: {}", artifact.name(),
                            e.what()));
  }
  result.op_types.assign(ctx.op_types().begin(), ctx.op_types().end());
  result.bytes = model.SerializeAsString();
  return result;
}

OnnxExport write_onnx(const Artifact& artifact, const std::string& path) {
  OnnxExport e = export_onnx(artifact);
  write_file_atomic(path, e.bytes);
  return e;
}

std::vector<std::string> model_op_types(const std::string& bytes, const std::string& name) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes))
    throw Error(fmt::format("{}: not an ONNX model (protobuf does not parse)", name));
  std::vector<std::string> types;
  for (const auto& n : m.graph().node())
    types.push_back(n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type()
                                                                  : n.domain() + ":" + n.op_type());
  return types;
}

std::vector<std::string> exportable_ops() {
  std::vector<std::string> names;
  for (const OnnxExportDef& d : export_table()) names.emplace_back(op_name(d.op));
  return names;
}

}  // namespace mighty::onnx_io
