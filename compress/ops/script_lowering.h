// What an op's TorchScript lowering (TorchOpDef::lower) sees: the node's constant arguments (weights and
// settings are constants after freezing), the IR values of its tensor arguments, and a way to add the IR node
// with its weights. Errors name the file and the TorchScript node. Implemented in compress/models/lower.cc.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/graph/graph.h"

namespace torch::jit {
struct Node;
struct Value;
}  // namespace torch::jit

namespace mighty::compress {

class ScriptLowering {
 public:
  explicit ScriptLowering(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const torch::jit::Node* n, const std::string& what) const;
  c10::IValue constant(const torch::jit::Node* n, size_t i) const;
  torch::Tensor tensor(const torch::jit::Node* n, size_t i) const;  // float32, contiguous
  bool has_tensor(const torch::jit::Node* n, size_t i) const;       // not None
  // A square size from an int list ([k] or [k, k]) or an int; -1 for an empty list.
  int64_t square(const torch::jit::Node* n, size_t i, const char* what) const;
  // The IR value of tensor argument i.
  int input_of(const torch::jit::Node* n, size_t i) const;
  // The IR values of the tensors in list argument i (aten::cat).
  std::vector<int> inputs_of_list(const torch::jit::Node* n, size_t i) const;
  // Int list argument i, where entries computed at run time (a traced batch size) are nullopt.
  std::vector<std::optional<int64_t>> int_list(const torch::jit::Node* n, size_t i) const;
  // Whether argument i is a constant (a weight or setting) rather than a lowered value.
  bool is_constant(const torch::jit::Node* n, size_t i) const;

  // Adds the IR node computing n's output, named "<prefix>_<count>"; returns the name (for weights).
  std::string add(const torch::jit::Node* n, const char* prefix, OpKind op, std::vector<int> inputs,
                  nlohmann::json attrs = nlohmann::json::object());
  void weight(const std::string& name, torch::Tensor t) { weights_[name] = std::move(t); }
  // n's output is the IR value `value` (ops that vanish at inference).
  void alias(const torch::jit::Node* n, int value);

  // Used by lower_torchscript.
  void bind_input(const torch::jit::Value* v, int value) { values_[v] = value; }
  bool has_value(const torch::jit::Value* v) const { return values_.count(v) != 0; }
  int value_of(const torch::jit::Value* v) const { return values_.at(v); }
  Graph& graph() { return g_; }
  const std::map<std::string, torch::Tensor>& weights() const { return weights_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  Graph g_;
  std::map<const torch::jit::Value*, int> values_;
  std::map<std::string, torch::Tensor> weights_;
  int count_ = 0;
};

// aten::add / sub / mul / div of a computed [B, C, H, W] map and a constant (a number, or a tensor of one
// value or one per channel): one per-channel affine, a BatchNorm2d with frozen statistics, as onnx_io imports
// the same ONNX ops (compress/ops/batch_norm.cc). Returns false unless exactly one operand is a constant.
bool lower_affine_constant(ScriptLowering& l, const torch::jit::Node* n);

}  // namespace mighty::compress
