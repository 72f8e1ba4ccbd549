#include "runtime/graph.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"

namespace mighty {
namespace {

struct OpInfo {
  OpKind op;
  const char* name;
  int arity;
};

constexpr OpInfo kOps[] = {
    {OpKind::kInput, "Input", 0},
    {OpKind::kLinear, "Linear", 1},
    {OpKind::kConv2d, "Conv2d", 1},
    {OpKind::kBatchNorm2d, "BatchNorm2d", 1},
    {OpKind::kReLU, "ReLU", 1},
    {OpKind::kGELU, "GELU", 1},
    {OpKind::kMaxPool2d, "MaxPool2d", 1},
    {OpKind::kAvgPool2d, "AvgPool2d", 1},
    {OpKind::kGlobalAvgPool, "GlobalAvgPool", 1},
    {OpKind::kFlatten, "Flatten", 1},
    {OpKind::kAdd, "Add", 2},
    {OpKind::kEmbedding, "Embedding", 1},
    {OpKind::kEmbeddingBag, "EmbeddingBag", 1},
    {OpKind::kLayerNorm, "LayerNorm", 1},
    {OpKind::kMultiHeadAttention, "MultiHeadAttention", 1},
    {OpKind::kSoftmax, "Softmax", 1},
};

const OpInfo& info(OpKind op) {
  for (const auto& i : kOps)
    if (i.op == op) return i;
  throw Error("unknown op kind");
}

std::string where(const Node& n, int index) {
  return fmt::format("graph node {} ('{}', {})", index, n.name, op_name(n.op));
}

int64_t attr_int(const Node& n, int index, const char* key, int64_t lo, int64_t hi) {
  auto it = n.attrs.find(key);
  if (it == n.attrs.end() || !it->is_number_integer()) {
    throw Error(fmt::format("{}: attribute '{}' must be an integer", where(n, index), key));
  }
  const auto v = it->get<int64_t>();
  if (v < lo || v > hi) {
    throw Error(fmt::format("{}: attribute '{}' = {} is outside [{}, {}]", where(n, index), key, v, lo, hi));
  }
  return v;
}

int64_t attr_int_or(const Node& n, int index, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  return n.attrs.contains(key) ? attr_int(n, index, key, lo, hi) : fallback;
}

bool attr_bool_or(const Node& n, const char* key, bool fallback) {
  auto it = n.attrs.find(key);
  return (it != n.attrs.end() && it->is_boolean()) ? it->get<bool>() : fallback;
}

// Attributes every op may carry: their types are checked once here, so later readers can rely on them.
void check_common_attrs(const Node& n, int index) {
  for (const char* key : {"bias", "positional", "causal"}) {
    auto it = n.attrs.find(key);
    if (it != n.attrs.end() && !it->is_boolean()) {
      throw Error(fmt::format("{}: attribute '{}' must be true or false", where(n, index), key));
    }
  }
  auto it = n.attrs.find("train_dropout");
  if (it != n.attrs.end() && (!it->is_number() || !(it->get<double>() >= 0.0 && it->get<double>() < 1.0))) {
    throw Error(fmt::format("{}: attribute 'train_dropout' must be a number in [0, 1)", where(n, index)));
  }
}

constexpr int64_t kMaxDim = int64_t{1} << 31;

}  // namespace

const char* op_name(OpKind op) { return info(op).name; }

int64_t attention_head_dim(const Node& n) {
  const int64_t heads = n.attrs.at("heads").get<int64_t>();
  return n.attrs.contains("head_dim") ? n.attrs.at("head_dim").get<int64_t>()
                                      : n.attrs.at("d_model").get<int64_t>() / heads;
}

int64_t attention_inner(const Node& n) { return n.attrs.at("heads").get<int64_t>() * attention_head_dim(n); }

OpKind op_from_name(const std::string& name) {
  for (const auto& i : kOps)
    if (name == i.name) return i.op;
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
  nodes_.push_back(std::move(n));
  output_ = static_cast<int>(nodes_.size()) - 1;
  return output_;
}

DType Graph::input_dtype() const {
  if (nodes_.empty() || nodes_[0].op != OpKind::kInput) throw Error("graph: node 0 must be Input");
  return nodes_[0].attrs.value("dtype", std::string("float32")) == "int64" ? DType::kInt64 : DType::kFloat32;
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
    Node& n = nodes_[i];
    check_common_attrs(n, i);
    const int arity = info(n.op).arity;
    if (static_cast<int>(n.inputs.size()) != arity) {
      throw Error(fmt::format("{}: has {} inputs, expected {}", where(n, i), n.inputs.size(), arity));
    }
    for (int in : n.inputs) {
      if (in < 0 || in >= i) {
        throw Error(fmt::format("{}: input index {} is not an earlier node (must be in [0, {}))", where(n, i),
                                in, i));
      }
    }
    if (n.op == OpKind::kInput && i != 0)
      throw Error(fmt::format("{}: only node 0 may be Input", where(n, i)));
    const Shape in = arity > 0 ? nodes_[n.inputs[0]].shape : Shape{};
    auto need_rank = [&](size_t rank) {
      if (in.size() != rank) {
        throw Error(fmt::format("{}: input shape [{}] has rank {}, expected {}", where(n, i),
                                fmt::join(in, ", "), in.size(), rank));
      }
    };
    auto need_dim = [&](int64_t found, int64_t expected, const char* what) {
      if (found != expected) {
        throw Error(fmt::format("{}: {} is {}, expected {}", where(n, i), what, found, expected));
      }
    };
    switch (n.op) {
      case OpKind::kInput: {
        if (!n.attrs.contains("shape") || !n.attrs["shape"].is_array() || n.attrs["shape"].empty()) {
          throw Error(fmt::format("{}: attribute 'shape' must be a non-empty array", where(n, i)));
        }
        n.shape.clear();
        for (const auto& d : n.attrs["shape"]) {
          if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxDim) {
            throw Error(fmt::format("{}: shape entries must be integers in [1, 2^31]", where(n, i)));
          }
          n.shape.push_back(d.get<int64_t>());
        }
        const std::string dtype = n.attrs.value("dtype", std::string("float32"));
        if (dtype != "float32" && dtype != "int64") {
          throw Error(fmt::format("{}: dtype '{}' is not float32 or int64", where(n, i), dtype));
        }
        break;
      }
      case OpKind::kLinear: {
        const int64_t in_f = attr_int(n, i, "in_features", 1, kMaxDim);
        const int64_t out_f = attr_int(n, i, "out_features", 1, kMaxDim);
        if (in.empty()) throw Error(fmt::format("{}: input has rank 0", where(n, i)));
        need_dim(in.back(), in_f, "input's last dimension");
        n.shape = in;
        n.shape.back() = out_f;
        break;
      }
      case OpKind::kConv2d: {
        need_rank(3);
        const int64_t cin = attr_int(n, i, "in_channels", 1, kMaxDim);
        const int64_t cout = attr_int(n, i, "out_channels", 1, kMaxDim);
        const int64_t k = attr_int(n, i, "kernel", 1, 64);
        const int64_t s = attr_int_or(n, i, "stride", 1, 1, 64);
        const int64_t p = attr_int_or(n, i, "padding", 0, 0, 64);
        need_dim(in[0], cin, "input channels");
        const int64_t h = (in[1] + 2 * p - k) / s + 1, w = (in[2] + 2 * p - k) / s + 1;
        if (in[1] + 2 * p < k || in[2] + 2 * p < k) {
          throw Error(fmt::format("{}: kernel {} is larger than the padded input {}x{}", where(n, i), k,
                                  in[1], in[2]));
        }
        n.shape = {cout, h, w};
        break;
      }
      case OpKind::kBatchNorm2d:
        need_rank(3);
        need_dim(in[0], attr_int(n, i, "channels", 1, kMaxDim), "input channels");
        n.shape = in;
        break;
      case OpKind::kReLU:
      case OpKind::kGELU:
      case OpKind::kSoftmax:
        n.shape = in;
        break;
      case OpKind::kMaxPool2d:
      case OpKind::kAvgPool2d: {
        need_rank(3);
        const int64_t k = attr_int(n, i, "kernel", 1, 64);
        const int64_t s = attr_int_or(n, i, "stride", k, 1, 64);
        if (in[1] < k || in[2] < k) {
          throw Error(
              fmt::format("{}: pool {} is larger than the input {}x{}", where(n, i), k, in[1], in[2]));
        }
        n.shape = {in[0], (in[1] - k) / s + 1, (in[2] - k) / s + 1};
        break;
      }
      case OpKind::kGlobalAvgPool:
        // Over the spatial dimensions of [C, H, W], or over the sequence of [T, D].
        if (in.size() == 3) {
          n.shape = {in[0]};
        } else {
          need_rank(2);
          n.shape = {in[1]};
        }
        break;
      case OpKind::kFlatten: {
        int64_t total = 1;
        for (auto d : in) total *= d;
        n.shape = {total};
        break;
      }
      case OpKind::kAdd:
        if (nodes_[n.inputs[1]].shape != in) {
          throw Error(fmt::format("{}: operand shapes [{}] and [{}] differ", where(n, i), fmt::join(in, ", "),
                                  fmt::join(nodes_[n.inputs[1]].shape, ", ")));
        }
        n.shape = in;
        break;
      case OpKind::kEmbedding: {
        const int64_t num = attr_int(n, i, "num_embeddings", 1, kMaxDim);
        const int64_t dim = attr_int(n, i, "dim", 1, kMaxDim);
        need_rank(1);
        if (nodes_[n.inputs[0]].op != OpKind::kInput || input_dtype() != DType::kInt64) {
          throw Error(fmt::format("{}: Embedding reads the int64 token input", where(n, i)));
        }
        // A positional table is indexed by position 0..T-1, so it must cover the context length.
        if (attr_bool_or(n, "positional", false) && in[0] > num) {
          throw Error(fmt::format("{}: {} positions cannot cover a context of {}", where(n, i), num, in[0]));
        }
        n.shape = {in[0], dim};
        break;
      }
      case OpKind::kEmbeddingBag: {
        attr_int(n, i, "num_embeddings", 1, kMaxDim);
        const int64_t dim = attr_int(n, i, "dim", 1, kMaxDim);
        need_rank(1);
        if (nodes_[n.inputs[0]].op != OpKind::kInput || input_dtype() != DType::kInt64) {
          throw Error(fmt::format("{}: EmbeddingBag reads the int64 token input", where(n, i)));
        }
        n.shape = {dim};
        break;
      }
      case OpKind::kLayerNorm:
        if (in.empty()) throw Error(fmt::format("{}: input has rank 0", where(n, i)));
        need_dim(in.back(), attr_int(n, i, "dim", 1, kMaxDim), "input's last dimension");
        n.shape = in;
        break;
      case OpKind::kMultiHeadAttention: {
        need_rank(2);
        const int64_t d = attr_int(n, i, "d_model", 1, kMaxDim);
        const int64_t heads = attr_int(n, i, "heads", 1, 4096);
        need_dim(in[1], d, "model width");
        // head_dim: given when heads were pruned away (heads * head_dim < d_model), else d_model / heads.
        if (!n.attrs.contains("head_dim") && d % heads != 0)
          throw Error(fmt::format("{}: d_model {} is not divisible by {} heads", where(n, i), d, heads));
        attr_int_or(n, i, "head_dim", d / heads, 1, kMaxDim);
        n.shape = in;
        break;
      }
    }
  }
}

std::vector<TensorSpec> Graph::tensors(int index) const {
  const Node& n = nodes_.at(index);
  auto a = [&](const char* key) { return n.attrs.at(key).get<int64_t>(); };
  const std::string& p = n.name;
  const bool bias = n.attrs.value("bias", true);
  std::vector<TensorSpec> out;
  switch (n.op) {
    case OpKind::kLinear:
      out.push_back({p + ".weight", {a("out_features"), a("in_features")}});
      if (bias) out.push_back({p + ".bias", {a("out_features")}});
      break;
    case OpKind::kConv2d:
      out.push_back({p + ".weight", {a("out_channels"), a("in_channels"), a("kernel"), a("kernel")}});
      if (bias) out.push_back({p + ".bias", {a("out_channels")}});
      break;
    case OpKind::kBatchNorm2d:
      out.push_back({p + ".weight", {a("channels")}});
      out.push_back({p + ".bias", {a("channels")}});
      out.push_back({p + ".running_mean", {a("channels")}, false});
      out.push_back({p + ".running_var", {a("channels")}, false});
      break;
    case OpKind::kEmbedding:
    case OpKind::kEmbeddingBag:
      out.push_back({p + ".weight", {a("num_embeddings"), a("dim")}});
      break;
    case OpKind::kLayerNorm:
      out.push_back({p + ".weight", {a("dim")}});
      out.push_back({p + ".bias", {a("dim")}});
      break;
    case OpKind::kMultiHeadAttention: {
      const int64_t d = a("d_model"), inner = attention_inner(n);
      out.push_back({p + ".in_proj.weight", {3 * inner, d}});
      out.push_back({p + ".in_proj.bias", {3 * inner}});
      out.push_back({p + ".out_proj.weight", {d, inner}});
      out.push_back({p + ".out_proj.bias", {d}});
      break;
    }
    default:
      break;
  }
  return out;
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
