#include "runtime/graph/graph.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"
#include "runtime/graph/op_def.h"

namespace mighty {
namespace {

// Attributes every op may carry: their types are checked once here, so later readers can rely on them.
void check_common_attrs(const ShapeContext& ctx) {
  const Node& n = ctx.node();
  for (const char* key : {"bias", "positional", "causal", "keepdim"}) {
    auto it = n.attrs.find(key);
    if (it != n.attrs.end() && !it->is_boolean())
      ctx.fail(fmt::format("attribute '{}' must be true or false", key));
  }
  auto it = n.attrs.find("train_dropout");
  if (it != n.attrs.end() && (!it->is_number() || !(it->get<double>() >= 0.0 && it->get<double>() < 1.0)))
    ctx.fail("attribute 'train_dropout' must be a number in [0, 1)");
}

// Whether a shape's element count is above `limit`, computed without overflowing.
bool elements_over(const Shape& shape, int64_t limit) {
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (d <= 0) return false;  // nothing to hold (the ops' own checks refuse negative dimensions)
    if (elements > limit / d) return true;
    elements *= d;
  }
  return false;
}

}  // namespace

const char* op_name(OpKind op) { return op_def(op).name; }

int64_t attention_head_dim(const Node& n) {
  const int64_t heads = n.attrs.at("heads").get<int64_t>();
  return n.attrs.contains("head_dim") ? n.attrs.at("head_dim").get<int64_t>()
                                      : n.attrs.at("d_model").get<int64_t>() / heads;
}

int64_t attention_inner(const Node& n) { return n.attrs.at("heads").get<int64_t>() * attention_head_dim(n); }

OpKind op_from_name(const std::string& name) {
  if (const OpDef* def = find_op_def(name)) return def->kind;
  throw Error(fmt::format("unknown op '{}'", name));
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int Graph::add(std::string name, OpKind op, std::vector<int> inputs, nlohmann::json attrs) {
  Node n;
  n.name = std::move(name);
  n.op = op;
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  const int index = static_cast<int>(nodes_.size());
  users_.emplace_back();
  for (int in : n.inputs)
    if (in >= 0 && in < index) users_[static_cast<size_t>(in)].push_back(index);
  nodes_.push_back(std::move(n));
  output_ = index;
  return output_;
}

DType Graph::input_dtype() const {
  if (nodes_.empty() || nodes_[0].op != OpKind::kInput) throw Error("graph: node 0 must be Input");
  const auto dtype = nodes_[0].attrs.find("dtype");  // a string (checked by Input's shape inference)
  return dtype != nodes_[0].attrs.end() && *dtype == "int64" ? DType::kInt64 : DType::kFloat32;
}

const Shape& Graph::input_shape() const {
  if (nodes_.empty() || nodes_[0].op != OpKind::kInput) throw Error("graph: node 0 must be Input");
  return nodes_[0].shape;
}

void Graph::infer_shapes() {
  if (nodes_.empty() || nodes_[0].op != OpKind::kInput) throw Error("graph: node 0 must be Input");
  if (output_ < 0 || output_ >= static_cast<int>(nodes_.size())) {
    throw Error(fmt::format("graph: output index {} is outside [0, {})", output_, nodes_.size()));
  }
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    Node& n = nodes_[static_cast<size_t>(i)];
    const OpDef& def = op_def(n.op);
    const ShapeContext ctx(*this, n, i);
    check_common_attrs(ctx);
    if (def.arity == kVariadic ? n.inputs.empty() : static_cast<int>(n.inputs.size()) != def.arity) {
      ctx.fail(def.arity == kVariadic
                   ? std::string("has no inputs, expected one or more")
                   : fmt::format("has {} inputs, expected {}", n.inputs.size(), def.arity));
    }
    for (int in : n.inputs) {
      if (in < 0 || in >= i)
        ctx.fail(fmt::format("input index {} is not an earlier node (must be in [0, {}))", in, i));
      // Token ids are no floats: only the embeddings read them (each op reads node 0 as floats otherwise).
      if (in == 0 && i > 0 && input_dtype() == DType::kInt64 && n.op != OpKind::kEmbedding &&
          n.op != OpKind::kEmbeddingBag)
        ctx.fail("reads the int64 token input; only Embedding and EmbeddingBag do");
    }
    n.shape = def.infer(ctx);
    if (elements_over(n.shape, kMaxElements)) {
      ctx.fail(fmt::format("output shape [{}] holds more than 2^31 elements per example",
                           fmt::join(n.shape, ", ")));
    }
    if (def.tensors) {
      for (const auto& t : def.tensors(n)) {
        if (elements_over(t.shape, kMaxTensorElements))
          ctx.fail(fmt::format("tensor '{}' of shape [{}] holds more than 2^40 elements", t.name,
                               fmt::join(t.shape, ", ")));
      }
    }
  }
}

std::vector<TensorSpec> Graph::tensors(int index) const {
  const Node& n = nodes_.at(static_cast<size_t>(index));
  const OpDef& def = op_def(n.op);
  return def.tensors ? def.tensors(n) : std::vector<TensorSpec>{};
}

std::vector<TensorSpec> Graph::all_tensors() const {
  std::vector<TensorSpec> out;
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    auto t = tensors(i);
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

int64_t Graph::parameter_count() const {
  int64_t total = 0;
  for (const auto& t : all_tensors())
    if (t.trainable) total += t.numel();
  return total;
}

nlohmann::json Graph::to_json() const {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : nodes_) {
    nodes.push_back({{"name", n.name}, {"op", op_name(n.op)}, {"inputs", n.inputs}, {"attrs", n.attrs}});
  }
  return {{"nodes", nodes}, {"output", output_}};
}

Graph Graph::from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("nodes") || !j["nodes"].is_array())
    throw Error("graph: 'nodes' must be an array");
  if (!j.contains("output") || !j["output"].is_number_integer())
    throw Error("graph: 'output' must be an integer");
  Graph g;
  int index = 0;
  for (const auto& nj : j["nodes"]) {
    auto fail = [&](const char* field, const char* expected) {
      throw Error(fmt::format("graph node {}: '{}' must be {}", index, field, expected));
    };
    if (!nj.is_object()) fail("node", "an object");
    if (!nj.contains("name") || !nj["name"].is_string()) fail("name", "a string");
    if (!nj.contains("op") || !nj["op"].is_string()) fail("op", "a string");
    if (!nj.contains("inputs") || !nj["inputs"].is_array()) fail("inputs", "an array");
    std::vector<int> inputs;
    for (const auto& in : nj["inputs"]) {
      if (!in.is_number_integer()) fail("inputs", "an array of integers");
      const auto v = in.get<int64_t>();
      if (v < 0 || v >= index)
        throw Error(fmt::format("graph node {}: input {} is not an earlier node", index, v));
      inputs.push_back(static_cast<int>(v));
    }
    const auto attrs = nj.value("attrs", nlohmann::json::object());
    if (!attrs.is_object()) fail("attrs", "an object");
    OpKind op;
    try {
      op = op_from_name(nj["op"].get<std::string>());
    } catch (const Error& e) {
      throw Error(fmt::format("graph node {}: {}", index, e.what()));
    }
    g.add(nj["name"].get<std::string>(), op, std::move(inputs), attrs);
    ++index;
  }
  const auto out = j["output"].get<int64_t>();
  if (out < 0 || out >= index) throw Error(fmt::format("graph: output {} is outside [0, {})", out, index));
  g.set_output(static_cast<int>(out));
  g.infer_shapes();
  return g;
}

}  // namespace mighty
