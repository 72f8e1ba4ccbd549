// The graph IR shared by compress/ (which builds it from the same architecture spec as the LibTorch module)
// and the runtime (which executes it). A node names its parameters with the same dotted names the LibTorch
// module uses, so export copies tensors by name and nothing is guessed. Shapes exclude the batch dimension; a
// text model's sequence dimension is its maximum context length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mighty {

enum class OpKind {
#define MIGHTY_OP(name) k##name,
#include "runtime/graph/op_list.h"
#undef MIGHTY_OP
};

const char* op_name(OpKind op);
OpKind op_from_name(const std::string& name);  // throws mighty::Error for an unknown name

enum class DType { kFloat32, kInt64 };

using Shape = std::vector<int64_t>;

struct TensorSpec {
  std::string name;
  Shape shape;
  bool trainable = true;  // false for buffers such as BatchNorm running statistics
  int64_t numel() const;
};

struct Node {
  std::string name;
  OpKind op = OpKind::kInput;
  std::vector<int> inputs;
  nlohmann::json attrs = nlohmann::json::object();
  Shape shape;  // output shape, filled by Graph::infer_shapes
};

// A MultiHeadAttention node's head width (attr head_dim, else d_model / heads) and projection width
// heads * head_dim (d_model unless heads were pruned away).
int64_t attention_head_dim(const Node& n);
int64_t attention_inner(const Node& n);

class Graph {
 public:
  // Appends a node and returns its index. Inputs must refer to earlier nodes, so the order is topological.
  int add(std::string name, OpKind op, std::vector<int> inputs,
          nlohmann::json attrs = nlohmann::json::object());

  const std::vector<Node>& nodes() const { return nodes_; }
  // The nodes that read node `index`, in order.
  const std::vector<int>& users(int index) const { return users_.at(static_cast<size_t>(index)); }
  int output() const { return output_; }
  void set_output(int index) { output_ = index; }

  // Checks references, arity and attributes and computes every node's output shape (each op's own inference,
  // runtime/ops/). Errors name the node.
  void infer_shapes();

  // Parameters and buffers of one node, with their full names and shapes.
  std::vector<TensorSpec> tensors(int node) const;
  std::vector<TensorSpec> all_tensors() const;
  int64_t parameter_count() const;  // trainable only

  DType input_dtype() const;
  const Shape& input_shape() const;
  const Shape& output_shape() const { return nodes_.at(output_).shape; }

  nlohmann::json to_json() const;
  static Graph from_json(const nlohmann::json& j);  // validated; errors name the node index and field

 private:
  std::vector<Node> nodes_;
  std::vector<std::vector<int>> users_;  // per node
  int output_ = -1;
};

}  // namespace mighty
