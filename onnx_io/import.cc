// The ONNX import driver: parse and check the model, bind its input, initializers and Constant nodes, walk
// the nodes in order through the op table (import_ops.cc), check the graph, collect the weights.
#include "onnx_io/import.h"

#include <onnx/checker.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "onnx_io/import_context.h"
#include "runtime/error.h"
#include "runtime/graph/op_def.h"

namespace mighty::onnx_io {
namespace {

constexpr int64_t kMinOpset = 11, kMaxOpset = 17;
constexpr size_t kMaxFileBytes = size_t{1} << 31;  // protobuf's own limit is 2 GiB

std::string read_bytes(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the {}", path, what));
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(in.tellg());
  if (size > kMaxFileBytes)
    throw Error(fmt::format("{}: {} bytes is over the 2 GiB protobuf limit", path, size));
  std::string bytes(size, '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size)))
    throw Error(fmt::format("{}: could not read the {}", path, what));
  return bytes;
}

std::string describe_shape(const onnx::TypeProto& type) {
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return "(no shape)";
  std::vector<std::string> dims;
  for (const auto& d : type.tensor_type().shape().dim())
    dims.push_back(d.has_dim_value() ? std::to_string(d.dim_value())
                                     : (d.dim_param().empty() ? "?" : d.dim_param()));
  return "[" + fmt::format("{}", fmt::join(dims, ", ")) + "]";
}

// The data input's per-example shape (past the batch) from its declaration, checked against the caller's.
Shape input_shape(const std::string& file, const onnx::ValueInfoProto& in,
                  const std::vector<int64_t>& wanted) {
  const auto& type = in.type();
  if (!type.has_tensor_type() || type.tensor_type().elem_type() != onnx::TensorProto::FLOAT) {
    throw Error(fmt::format("{}: input '{}' must be a float32 tensor (images NCHW, features [batch, n])",
                            file, in.name()));
  }
  Shape shape;
  if (type.tensor_type().has_shape()) {
    const auto& dims = type.tensor_type().shape().dim();
    if (dims.size() < 2) {
      throw Error(fmt::format("{}: input '{}' has shape {}: expected [batch, ...] of rank 2 or more", file,
                              in.name(), describe_shape(type)));
    }
    for (int d = 1; d < dims.size(); ++d) {
      if (!dims[d].has_dim_value() || dims[d].dim_value() < 1) {
        if (!wanted.empty()) {
          shape.clear();
          break;
        }
        throw Error(fmt::format("{}: input '{}' has shape {}: every dimension past the batch must be fixed",
                                file, in.name(), describe_shape(type)));
      }
      shape.push_back(dims[d].dim_value());
    }
  }
  if (!wanted.empty()) {
    if (!shape.empty() && shape != Shape(wanted.begin(), wanted.end())) {
      throw Error(fmt::format("{}: input '{}' has shape {}, but the data gives examples of shape [{}]", file,
                              in.name(), describe_shape(type), fmt::join(wanted, ", ")));
    }
    return Shape(wanted.begin(), wanted.end());
  }
  if (shape.empty()) throw Error(fmt::format("{}: input '{}' declares no shape", file, in.name()));
  return shape;
}

int64_t default_opset(const onnx::ModelProto& m, const std::string& file) {
  int64_t opset = -1;
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  if (opset < kMinOpset || opset > kMaxOpset) {
    throw Error(fmt::format("{}: {} of the default ONNX domain; supported: opsets {}-{}", file,
                            opset < 0 ? std::string("no opset") : fmt::format("opset {}", opset), kMinOpset,
                            kMaxOpset));
  }
  return opset;
}

void import_nodes(ImportContext& ctx, const onnx::GraphProto& graph) {
  // Constant nodes first: they read nothing, and patterns look ahead at constants defined later in the file.
  for (int i = 0; i < graph.node_size(); ++i) {
    if (graph.node(i).op_type() != "Constant" || !graph.node(i).domain().empty()) continue;
    ctx.begin(i);
    find_onnx_op("Constant")->import(ctx);
    ctx.consume(i);
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    if (ctx.consumed(i)) continue;
    ctx.begin(i);
    const auto& n = graph.node(i);
    if (!n.domain().empty() && n.domain() != "ai.onnx")
      ctx.fail(fmt::format("domain '{}' is not supported", n.domain()));
    const OnnxOpDef* def = find_onnx_op(n.op_type());
    if (!def) {
      ctx.fail(fmt::format("op type '{}' has no equivalent in mighty's graph IR; supported: {}", n.op_type(),
                           fmt::join(supported_ops(), ", ")));
    }
    def->import(ctx);
  }
}

}  // namespace

Imported import_bytes(const std::string& bytes, const std::string& name, const ImportOptions& options) {
  onnx::ModelProto model;
  if (bytes.size() > kMaxFileBytes || !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(fmt::format("{}: not an ONNX model (the protobuf does not parse)", name));
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    std::string what = e.what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    for (char& c : what)
      if (c == '\n') c = ' ';
    throw Error(fmt::format("{}: ONNX's checker refuses the model: {}", name, what));
  }
  Imported out;
  out.opset = default_opset(model, name);
  out.producer = (model.producer_name() + " " + model.producer_version());
  const auto& graph = model.graph();
  ImportContext ctx(name, graph, out.opset);
  for (const auto& init : graph.initializer())
    ctx.constants()[init.name()] =
        tensor_from_proto(init, fmt::format("{}: initializer '{}'", name, init.name()));
  // The data input: the one graph input that is not an initializer or bound by the caller.
  const onnx::ValueInfoProto* data = nullptr;
  for (const auto& in : graph.input()) {
    if (ctx.constants().count(in.name())) continue;
    auto bound = options.constant_inputs.find(in.name());
    if (bound != options.constant_inputs.end()) {
      ctx.constants()[in.name()] = bound->second;
      continue;
    }
    if (data) {
      throw Error(fmt::format("{}: inputs '{}' and '{}' are both data; mighty models take one input", name,
                              data->name(), in.name()));
    }
    data = &in;
  }
  if (!data) throw Error(fmt::format("{}: the graph has no data input", name));
  if (graph.output_size() != 1)
    throw Error(
        fmt::format("{}: the graph has {} outputs; mighty models have one", name, graph.output_size()));
  out.input_name = data->name();
  out.output_name = graph.output(0).name();
  ctx.alias(data->name(), ctx.graph().add("input", OpKind::kInput, {},
                                          {{"shape", input_shape(name, *data, options.input_shape)},
                                           {"dtype", "float32"}}));
  ctx.graph().infer_shapes();
  import_nodes(ctx, graph);
  if (!ctx.is_value(out.output_name)) {
    throw Error(fmt::format("{}: output '{}' is {}", name, out.output_name,
                            ctx.find_constant(out.output_name)      ? "a constant"
                            : ctx.find_shape_value(out.output_name) ? "a shape, not a computed tensor"
                                                                    : "not computed by any node"));
  }
  Graph& g = ctx.graph();
  g.set_output(ctx.value_of(out.output_name));
  g.infer_shapes();
  for (const auto& spec : g.all_tensors()) {
    auto it = ctx.tensors().find(spec.name);
    if (it == ctx.tensors().end())
      throw Error(fmt::format("{}: no weights for tensor '{}'", name, spec.name));
    if (it->second.shape != spec.shape) {
      throw Error(fmt::format("{}: tensor '{}' has shape [{}], the graph needs [{}]", name, spec.name,
                              fmt::join(it->second.shape, ", "), fmt::join(spec.shape, ", ")));
    }
    out.tensors[spec.name] = std::move(it->second);
  }
  out.graph = std::move(g);
  return out;
}

Imported import_file(const std::string& path, const ImportOptions& options) {
  return import_bytes(read_bytes(path, "ONNX model"), path, options);
}

Tensor read_tensor_file(const std::string& path) {
  const std::string bytes = read_bytes(path, "tensor");
  onnx::TensorProto t;
  if (!t.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(fmt::format("{}: not a serialized ONNX TensorProto", path));
  return tensor_from_proto(t, path);
}

ArtifactWriter to_artifact(const Imported& model, const nlohmann::json& metadata) {
  ArtifactWriter w;
  nlohmann::json meta = metadata;
  meta["graph"] = model.graph.to_json();
  if (!meta.contains("producer")) meta["producer"] = "mighty (ONNX import)";
  w.set_metadata(meta);
  for (const auto& spec : model.graph.all_tensors())
    w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, model.tensors.at(spec.name).data.data());
  return w;
}

// ---- tensors ----

Tensor tensor_from_proto(const onnx::TensorProto& t, const std::string& what) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error(fmt::format(
        "{}: external tensor data is not supported (save the model with its weights inside)", what));
  Tensor out;
  int64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > (int64_t{1} << 31) || (d > 0 && count > (int64_t{1} << 40) / d))
      throw Error(fmt::format("{}: dimension {} is out of range", what, d));
    out.shape.push_back(d);
    count *= d;
  }
  const bool raw = t.has_raw_data();
  // The values are counted before anything is allocated: a few bytes of dims may claim terabytes.
  auto need = [&](size_t found) {
    if (found != static_cast<size_t>(count))
      throw Error(fmt::format("{}: {} values for shape [{}] ({} expected)", what, found,
                              fmt::join(out.shape, ", "), count));
    out.data.resize(static_cast<size_t>(count));
  };
  auto from_raw = [&](auto sample) {
    using T = decltype(sample);
    if (t.raw_data().size() != static_cast<size_t>(count) * sizeof(T))
      throw Error(fmt::format("{}: {} raw bytes for {} values of {} bytes", what, t.raw_data().size(), count,
                              sizeof(T)));
    out.data.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      T v;
      std::memcpy(&v, t.raw_data().data() + i * sizeof(T), sizeof(T));
      out.data[static_cast<size_t>(i)] = static_cast<float>(v);
      if constexpr (std::is_integral_v<T>) out.ints.push_back(v);
    }
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (raw) {
        from_raw(float{});
      } else {
        need(static_cast<size_t>(t.float_data_size()));
        std::copy(t.float_data().begin(), t.float_data().end(), out.data.begin());
      }
      break;
    case onnx::TensorProto::DOUBLE:
      if (raw) {
        from_raw(double{});
      } else {
        need(static_cast<size_t>(t.double_data_size()));
        std::transform(t.double_data().begin(), t.double_data().end(), out.data.begin(),
                       [](double v) { return static_cast<float>(v); });
      }
      break;
    case onnx::TensorProto::INT64:
      if (raw) {
        from_raw(int64_t{});
      } else {
        need(static_cast<size_t>(t.int64_data_size()));
        std::transform(t.int64_data().begin(), t.int64_data().end(), out.data.begin(),
                       [](int64_t v) { return static_cast<float>(v); });
        out.ints.assign(t.int64_data().begin(), t.int64_data().end());
      }
      break;
    case onnx::TensorProto::INT32:
      if (raw) {
        from_raw(int32_t{});
      } else {
        need(static_cast<size_t>(t.int32_data_size()));
        std::transform(t.int32_data().begin(), t.int32_data().end(), out.data.begin(),
                       [](int32_t v) { return static_cast<float>(v); });
        out.ints.assign(t.int32_data().begin(), t.int32_data().end());
      }
      break;
    default:
      throw Error(fmt::format(
          "{}: element type {} is not supported (float32, float64, int32, int64)", what,
          onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t.data_type()))));
  }
  for (float v : out.data)
    if (!std::isfinite(v)) throw Error(fmt::format("{}: holds a value that is not finite", what));
  return out;
}

// ---- the context ----

void ImportContext::fail(const std::string& what) const {
  const auto& n = node();
  throw Error(fmt::format("{}: ONNX node {} ('{}', {}): {}", file_, index_, n.name(), n.op_type(), what));
}

const onnx::AttributeProto* ImportContext::attr(const char* name,
                                                onnx::AttributeProto::AttributeType type) const {
  for (const auto& a : node().attribute()) {
    if (a.name() != name) continue;
    if (a.type() != type) {
      fail(fmt::format("attribute '{}' is {}, expected {}", name,
                       onnx::AttributeProto::AttributeType_Name(a.type()),
                       onnx::AttributeProto::AttributeType_Name(type)));
    }
    return &a;
  }
  return nullptr;
}

bool ImportContext::has_attr(const char* name) const {
  for (const auto& a : node().attribute())
    if (a.name() == name) return true;
  return false;
}

int64_t ImportContext::attr_int(const char* name, int64_t fallback) const {
  const auto* a = attr(name, onnx::AttributeProto::INT);
  return a ? a->i() : fallback;
}

float ImportContext::attr_float(const char* name, float fallback) const {
  const auto* a = attr(name, onnx::AttributeProto::FLOAT);
  if (a && !std::isfinite(a->f())) fail(fmt::format("attribute '{}' is not finite", name));
  return a ? a->f() : fallback;
}

std::string ImportContext::attr_string(const char* name, const std::string& fallback) const {
  const auto* a = attr(name, onnx::AttributeProto::STRING);
  return a ? a->s() : fallback;
}

std::vector<int64_t> ImportContext::attr_ints(const char* name, std::vector<int64_t> fallback) const {
  const auto* a = attr(name, onnx::AttributeProto::INTS);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}

bool ImportContext::has_input(int k) const { return k < node().input_size() && !node().input(k).empty(); }

const Tensor* ImportContext::find_constant(const std::string& name) const {
  auto it = constants_.find(name);
  return it == constants_.end() ? nullptr : &it->second;
}

const ImportContext::ShapeValue* ImportContext::find_shape_value(const std::string& name) const {
  auto it = shape_values_.find(name);
  return it == shape_values_.end() ? nullptr : &it->second;
}

bool ImportContext::is_constant(int k) const { return has_input(k) && find_constant(node().input(k)); }

const Tensor& ImportContext::constant(int k) const {
  if (!has_input(k)) fail(fmt::format("input {} is missing", k));
  const Tensor* t = find_constant(node().input(k));
  if (!t) fail(fmt::format("input {} ('{}') must be a constant (an initializer)", k, node().input(k)));
  return *t;
}

int ImportContext::value_of(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) fail(fmt::format("'{}' is not computed by an earlier node", name));
  return it->second;
}

int ImportContext::value(int k) const {
  if (!has_input(k)) fail(fmt::format("input {} is missing", k));
  if (find_constant(node().input(k)) || find_shape_value(node().input(k)))
    fail(
        fmt::format("input {} ('{}') is a constant where mighty needs a computed value", k, node().input(k)));
  return value_of(node().input(k));
}

const Shape& ImportContext::shape(int k) const { return g_.nodes()[static_cast<size_t>(value(k))].shape; }

std::string ImportContext::ir_name(const std::string& output) {
  std::string base = node().name().empty() ? fmt::format("{}_{}", node().op_type(), index_) : node().name();
  for (char& c : base)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '/')) c = '_';
  if (output != node().output(0)) base += "_" + output;
  std::string name = base;
  for (int k = 1; names_.count(name); ++k) name = fmt::format("{}_{}", base, k);
  names_.insert(name);
  return name;
}

std::string ImportContext::add(OpKind op, std::vector<int> inputs, nlohmann::json attrs) {
  if (node().output_size() < 1) fail("the node has no output");
  return add_for(node().output(0), op, std::move(inputs), std::move(attrs));
}

std::string ImportContext::add_for(const std::string& output, OpKind op, std::vector<int> inputs,
                                   nlohmann::json attrs) {
  const std::string name = ir_name(output);
  const int index = g_.add(name, op, std::move(inputs), std::move(attrs));
  g_.set_output(index);
  try {
    g_.infer_shapes();
  } catch (const Error& e) {
    fail(e.what());
  }
  values_[output] = index;
  return name;
}

std::vector<int> ImportContext::consumers(const std::string& output) const {
  std::vector<int> out;
  for (int i = 0; i < graph_.node_size(); ++i)
    for (const auto& in : graph_.node(i).input())
      if (in == output) {
        out.push_back(i);
        break;
      }
  bool is_graph_output = false;
  for (const auto& o : graph_.output()) is_graph_output = is_graph_output || o.name() == output;
  if (is_graph_output) out.push_back(-1);
  return out;
}

}  // namespace mighty::onnx_io
