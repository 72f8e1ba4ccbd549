// Structured pruning: whole output channels of Conv2d layers, output neurons of Linear layers (CNN heads,
// transformer feed-forward width) and attention heads are zeroed while fine-tuning and then physically
// removed, rewriting the layers that read them, so the result is a smaller dense model.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "compress/models/zoo.h"
#include "runtime/graph/graph.h"

namespace mighty::compress {

// Units that can be removed together: the outputs of `producer` (a weight layer: Conv2d, Linear) that reach
// exactly one consumer (a weight layer) through per-channel ops only (BatchNorm, activations, pooling,
// flatten). Each op's role is its TorchOpDef's (compress/ops/torch_op.h: channels, out_units, in_units).
// Outputs that feed a residual sum, a LayerNorm, attention or the model's output are not prunable.
struct UnitGroup {
  std::string layer;   // the producer's name
  int producer = -1;   // node indices
  int batchnorm = -1;  // the per-channel op with per-channel tensors on the path (BatchNorm); -1: none
  int consumer = -1;
  int flatten = -1;   // -1: none; else the consumer reads unit u at columns [u * spatial, (u + 1) * spatial)
  int64_t units = 0;  // output channels / features
  int64_t spatial = 1;  // consumer inputs per unit (a flattened feature map's H * W)
  // Attention heads: the producer is a MultiHeadAttention node (no consumer to rewrite: its output keeps
  // d_model); a unit is one head, i.e. its head_dim rows of each of the q, k and v projections and its
  // head_dim columns of the output projection. Zeroed q, k and v rows make the head's context exactly 0.
  bool heads = false;
  int64_t head_dim = 0;
};
std::vector<UnitGroup> unit_groups(const Graph& graph);

// Importance of every unit: l1 / l2 norm of the producer's weights per output (per head: its q, k, v rows and
// output-projection columns), or bn_scale |gamma| (a producer without BatchNorm falls back to l2).
torch::Tensor unit_scores(GraphModule& model, const UnitGroup& group, const std::string& criterion);

// Makes the units where keep == 0 output exactly zero: the producer's weight rows and bias, and BatchNorm's
// gamma and beta. The consumer then receives zeros from them (ReLU, GELU and pooling keep 0 at 0). A head:
// its q, k, v rows and biases and its output-projection columns.
// Weights a group's units own (for reports): the producer's weight, or both projections of an attention.
int64_t unit_group_weights(GraphModule& model, const UnitGroup& group);
void zero_units(GraphModule& model, const UnitGroup& group, const torch::Tensor& keep);

// The model without the units where keep == 0 (keep[i] belongs to groups[i]); every other tensor is copied.
// Equal in function to `model` after zero_units.
GraphModule shrink_units(GraphModule& model, const std::vector<UnitGroup>& groups,
                         const std::vector<torch::Tensor>& keep);

}  // namespace mighty::compress
