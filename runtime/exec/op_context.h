// What an op's run function sees (OpDef::run): its node, its inputs and output, its tensors and int8 form as
// prepared at load, and the call's batch, tokens and decoding state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/thread_pool.h"
#include "runtime/exec/int8_layer.h"
#include "runtime/exec/value.h"
#include "runtime/graph/graph.h"

namespace mighty::exec {

// The integer attributes of Linear, Conv2d and pooling, read once at load (the graph has checked them); a
// missing one holds its default (stride: -1, meaning the kernel size for pooling, 1 for convolution).
struct LayerAttrs {
  int64_t in = 0, out = 0, kernel = 1, stride = -1, padding = 0, groups = 1;
  bool bias = true;
  bool relu = false;  // fp32 Conv2d: the ReLU after it is applied here (exec/fp32_fusion.h)
};

// A node as the session prepared it at load.
struct PreparedNode {
  std::vector<std::pair<std::string, const float*>> tensors;  // fp32 tensors by name suffix ("bias", ...)
  // Weights rearranged once at load by the op's OpDef::prepare, by name (the fp32 Linear and attention
  // matrices transposed, a convolution's weights per kernel tap).
  std::vector<std::pair<std::string, std::vector<float>>> repacked;
  LayerAttrs attrs;
  std::unique_ptr<Int8Layer> int8;  // null for fp32 nodes
  // Fused into its producer (exec/fp32_fusion.h): the node hands its input on unchanged.
  bool pass_through = false;

  // The fp32 tensor `<node>.<suffix>`, or null.
  const float* find(const std::string& suffix) const {
    for (const auto& [name, data] : tensors)
      if (name == suffix) return data;
    return nullptr;
  }
};

// Incremental decoding of a causal language model: each attention node's keys and values so far.
struct DecodeCache {
  int64_t position = 0;
  std::vector<std::vector<float>>* keys = nullptr;    // per node: [context][e]
  std::vector<std::vector<float>>* values = nullptr;  // per node
};

// One call of the executor.
struct RunCall {
  const float* input = nullptr;     // float models: [batch, input shape...]
  const int64_t* tokens = nullptr;  // token models: [batch][length]
  int64_t batch = 1, length = 0;
  int64_t context = 0;            // the graph's sequence capacity (token models)
  DecodeCache* decode = nullptr;  // incremental decoding (batch 1), else null
  kernels::ThreadPool* pool = nullptr;
};

class OpContext {
 public:
  OpContext(const Node& node, int index, const PreparedNode& prepared, const RunCall& call,
            std::vector<Value>& values)
      : node_(node), index_(index), prepared_(prepared), call_(call), values_(values) {}

  const Node& node() const { return node_; }
  int index() const { return index_; }
  const RunCall& call() const { return call_; }
  int64_t batch() const { return call_.batch; }
  const LayerAttrs& attrs() const { return prepared_.attrs; }
  const Int8Layer* int8() const { return prepared_.int8.get(); }

  const Value& in(int k = 0) const {
    return values_[static_cast<size_t>(node_.inputs[static_cast<size_t>(k)])];
  }
  // The first input's uint8 buffer, handed on (a pass-through op of a uint8 chain is its producer's only
  // user).
  U8Buffer take_u8() { return std::move(values_[static_cast<size_t>(node_.inputs[0])].u8); }
  Value& out() { return values_[static_cast<size_t>(index_)]; }

  // The node's fp32 tensor `<node>.<suffix>`; an Error if it has none of that name.
  const float* tensor(const char* suffix) const;
  // The node's repacked weights `name` (PreparedNode::repacked); an Error if it has none of that name.
  const float* repacked(const char* name) const;
  // The same, or null when the op's prepare made none.
  const float* find_repacked(const char* name) const;
  // Integer attribute `key` (checked by shape inference).
  int64_t attr(const char* key) const { return node_.attrs.at(key).get<int64_t>(); }
  bool attr_bool(const char* key, bool fallback) const;

 private:
  const Node& node_;
  int index_;
  const PreparedNode& prepared_;
  const RunCall& call_;
  std::vector<Value>& values_;
};

}  // namespace mighty::exec
