// One definition per op of the graph IR, reached through one table (op_def): its name and arity, how its
// attributes are checked and its output shape inferred, the tensors it owns, and how the runtime executes it
// (fp32, and int8 where the op quantizes). Each op's definition lives in its own file under runtime/ops/, so
// adding an op never grows the graph's shape inference or the session's executor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/graph/graph.h"

namespace mighty {

namespace exec {
class OpContext;
struct PreparedNode;
}  // namespace exec

// What an op's shape inference sees: the node, its index, its inputs' shapes (already inferred), and checks
// whose errors name the node ("graph node 3 ('features.0.conv', Conv2d): ...").
class ShapeContext {
 public:
  ShapeContext(const Graph& graph, const Node& node, int index) : graph_(graph), node_(node), index_(index) {}
  const Graph& graph() const { return graph_; }
  const Node& node() const { return node_; }
  int index() const { return index_; }
  const Shape& input(int k = 0) const;
  const Node& input_node(int k = 0) const;

  int64_t attr_int(const char* key, int64_t lo, int64_t hi) const;
  int64_t attr_int_or(const char* key, int64_t fallback, int64_t lo, int64_t hi) const;
  bool attr_bool_or(const char* key, bool fallback) const;  // types checked for every node beforehand
  double attr_number_or(const char* key, double fallback, double lo, double hi) const;  // finite
  void need_rank(size_t rank) const;
  void need_dim(int64_t found, int64_t expected, const char* what) const;
  [[noreturn]] void fail(const std::string& what) const;

 private:
  const Graph& graph_;
  const Node& node_;
  int index_;
};

// The largest dimension or feature count the IR accepts.
inline constexpr int64_t kMaxDim = int64_t{1} << 31;
// The most elements a node's output may hold per example (8 GiB of fp32), and a tensor (a weight): products
// of dimensions that are each in range can still overflow int64 in every byte count computed from them.
inline constexpr int64_t kMaxElements = int64_t{1} << 31;
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 40;

inline constexpr int kVariadic = -1;

struct OpDef {
  OpKind kind;
  const char* name;
  int arity;  // the number of inputs; kVariadic: one or more
  // Checks the node's attributes against its inputs and returns its output shape (without the batch).
  Shape (*infer)(const ShapeContext& ctx);
  // The node's parameters and buffers, with their full names; null for ops that own none.
  std::vector<TensorSpec> (*tensors)(const Node& node);
  // Runs the node on a batch (runtime/exec/op_context.h).
  void (*run)(exec::OpContext& ctx);
  // Whether a uint8 channels-last value (the output of a requantizing conv, exec/u8_chain.h) may flow in.
  bool takes_u8;
  // Optional, run once when a session loads the node (its fp32 tensors, attributes and int8 form already
  // there): weights in the layout its fp32 kernels read, into PreparedNode::repacked.
  void (*prepare)(const Node& node, exec::PreparedNode& prepared) = nullptr;
};

const OpDef& op_def(OpKind op);
const OpDef* find_op_def(const std::string& name);  // null for an unknown name

}  // namespace mighty
