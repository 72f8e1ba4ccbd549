// One definition per graph-IR op on the LibTorch side, reached through one table (torch_op), as the runtime's
// op_def is on the other: the module that holds the node's parameters under the IR's names, its forward, the
// TorchScript ops lowered to it, and its roles in pruning and quantization. Each op's definition lives in
// compress/ops/<op>.cc, beside runtime/ops/<op>.cc; nothing else in compress/ switches on an op.
#pragma once

#include <torch/torch.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "runtime/graph/graph.h"

namespace torch::jit {
struct Node;
}

namespace mighty::compress {

class ScriptLowering;

// What an op's forward sees: the node, the LibTorch module made for it (null when it owns no tensors), the
// outputs of the nodes before it and the model's input.
class TorchCall {
 public:
  TorchCall(const Node& node, torch::nn::Module* module, const std::vector<torch::Tensor>& values,
            const torch::Tensor& input)
      : node_(node), module_(module), values_(values), input_(input) {}
  const Node& node() const { return node_; }
  const torch::Tensor& in(int k = 0) const { return values_[static_cast<size_t>(node_.inputs.at(k))]; }
  const torch::Tensor& model_input() const { return input_; }
  template <class Impl>
  Impl& module() const {
    return *module_->as<Impl>();
  }

 private:
  const Node& node_;
  torch::nn::Module* module_;
  const std::vector<torch::Tensor>& values_;
  const torch::Tensor& input_;
};

// A weight that unstructured pruning sparsifies.
struct PrunableWeight {
  std::string layer;   // "features.0", "blocks.1.attn.in_proj"
  std::string param;   // its parameter name ("features.0.weight")
  bool table = false;  // rows are tokens, not GEMM columns: magnitude pruning only
};

// An op's part in structured (channel) pruning, compress/passes/structured.h.
enum class ChannelRole {
  kMixes,       // mixes channels (or is not on a channel path): a removable unit must not reach it
  kPerChannel,  // maps each channel to the same channel (activations, pooling, BatchNorm)
  kFlattens,    // per channel, but a [C, H, W] map becomes C runs of H * W features
  kLayer,       // a weight layer: its outputs are units (out_units), its inputs are read by in_units
};

struct TorchOpDef {
  OpKind kind;
  // The module that holds the node's tensors under its IR names (runtime op_def().tensors); null for an op
  // that owns none.
  std::shared_ptr<torch::nn::Module> (*module)(const Node& node);
  // The node's output for a batch (train and eval; "train_dropout" is applied by the caller).
  torch::Tensor (*forward)(const TorchCall& call);
  // TorchScript ops (qualified names; "_" variants are listed) lowered to this op, and how; empty when none.
  std::array<const char*, 6> script_ops;
  void (*lower)(ScriptLowering& lowering, const torch::jit::Node* node);
  // Pruning: the weights unstructured pruning may sparsify (null: none), the channel role and, for kLayer,
  // the attributes that count its output and input units. `flat_input`: a layer whose inputs may be a
  // flattened map (unit u at columns [u * H * W, (u + 1) * H * W)). `channel_tensors`: a per-channel op that
  // owns per-channel tensors (sliced with the units), named by this attribute.
  std::vector<PrunableWeight> (*prunable)(const Node& node);
  ChannelRole channels;
  const char* out_units;
  const char* in_units;
  bool flat_input;
  const char* channel_tensors;
  // Quantization: the quantizer gives the op int8 per-output-channel weights run by the int8 GEMM
  // (runtime/exec/int8_layer.h).
  bool int8_weights;
};

const TorchOpDef& torch_op(OpKind op);
// The op a TorchScript node kind lowers to; null when none does.
const TorchOpDef* find_script_op(const std::string& script_kind);
// Every TorchScript op kind some definition lowers, for error messages.
std::string script_ops_supported();

// Whether node `n` can have int8 weights with static (calibrated) or dynamic activations: its op's
// int8_weights; a grouped convolution only when depthwise (groups = in = out channels) with static
// activations, the runtime's depthwise kernel (other grouped convolutions stay fp32).
bool int8_layer(const Node& n, bool static_activation);

// The weights of a layer named after its node: {name, name + ".weight"}.
std::vector<PrunableWeight> own_weight(const Node& node);

}  // namespace mighty::compress
