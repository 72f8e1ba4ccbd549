// What an ONNX op's import (import_ops.cc) sees: the node and its attributes, the values and constants it
// reads, the IR graph it adds to, and the nodes after it (for patterns that fold several nodes into one IR
// op). Errors name the file and the node.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "onnx_io/import.h"
#include "runtime/graph/graph.h"

namespace mighty::onnx_io {

class ImportContext {
 public:
  ImportContext(std::string file, const onnx::GraphProto& graph, int64_t opset)
      : file_(std::move(file)), graph_(graph), opset_(opset) {}

  // The node being imported.
  void begin(int index) { index_ = index; }
  const onnx::NodeProto& node() const { return graph_.node(index_); }
  int index() const { return index_; }
  int64_t opset() const { return opset_; }
  [[noreturn]] void fail(const std::string& what) const;

  // Attributes of the node (absent: the fallback); a wrong type is an error.
  bool has_attr(const char* name) const;
  int64_t attr_int(const char* name, int64_t fallback) const;
  float attr_float(const char* name, float fallback) const;
  std::string attr_string(const char* name, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const char* name, std::vector<int64_t> fallback) const;

  // Input k of the node: whether it is given (optional inputs may be empty or missing), whether it is a
  // constant (initializer, Constant node, bound input), its constant, its IR value and per-example shape.
  bool has_input(int k) const;
  bool is_constant(int k) const;
  const Tensor& constant(int k) const;
  int value(int k) const;
  const Shape& shape(int k) const;
  const Tensor* find_constant(const std::string& name) const;
  bool is_value(const std::string& name) const { return values_.count(name) != 0; }
  int value_of(const std::string& name) const;

  // Adds the IR node computing output `output` of node `at` (default: this node's output 0) and infers its
  // shape; returns the IR node's name (tensors are "<name>.weight", ...).
  std::string add(OpKind op, std::vector<int> inputs, nlohmann::json attrs = nlohmann::json::object());
  std::string add_for(const std::string& output, OpKind op, std::vector<int> inputs,
                      nlohmann::json attrs = nlohmann::json::object());
  void weight(const std::string& name, Tensor t) { tensors_[name] = std::move(t); }
  void alias(const std::string& output, int value) { values_[output] = value; }
  void set_constant(const std::string& output, Tensor t) { constants_[output] = std::move(t); }

  // Shapes computed in the graph (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write
  // x.view(x.size(0), -1)): integer vectors whose entries may be the batch size (nullopt).
  using ShapeValue = std::vector<std::optional<int64_t>>;
  const ShapeValue* find_shape_value(const std::string& name) const;
  void set_shape_value(const std::string& output, ShapeValue v) { shape_values_[output] = std::move(v); }

  // Patterns: the nodes that read `output`, and the node defining it; a node folded into an earlier one is
  // consumed and skipped when the walk reaches it.
  std::vector<int> consumers(const std::string& output) const;
  const onnx::NodeProto& node_at(int index) const { return graph_.node(index); }
  void consume(int index) { consumed_.insert(index); }
  bool consumed(int index) const { return consumed_.count(index) != 0; }

  // Used by the import driver.
  Graph& graph() { return g_; }
  std::map<std::string, Tensor>& tensors() { return tensors_; }
  std::map<std::string, Tensor>& constants() { return constants_; }
  const std::string& file() const { return file_; }

 private:
  const onnx::AttributeProto* attr(const char* name, onnx::AttributeProto::AttributeType type) const;
  std::string ir_name(const std::string& output);

  std::string file_;
  const onnx::GraphProto& graph_;
  int64_t opset_;
  int index_ = -1;
  Graph g_;
  std::map<std::string, int> values_;
  std::map<std::string, Tensor> constants_;
  std::map<std::string, ShapeValue> shape_values_;
  std::map<std::string, Tensor> tensors_;
  std::set<int> consumed_;
  std::set<std::string> names_;
};

// Converts a TensorProto to float (float32, float64, int32, int64 data; raw or typed fields); `what` names
// it.
Tensor tensor_from_proto(const onnx::TensorProto& t, const std::string& what);

// One entry per ONNX op type (import_ops.cc).
struct OnnxOpDef {
  const char* op_type;
  void (*import)(ImportContext& ctx);
};
const OnnxOpDef* find_onnx_op(const std::string& op_type);

}  // namespace mighty::onnx_io
