// Load-time fusion of an fp32 convolution with the BatchNorm2d and ReLU after it, in one place for the
// runtime: a Conv2d without an int8 form whose only user is a BatchNorm2d takes the normalization into its
// weights and bias (folded in double precision, rounded once to fp32); a ReLU that is then its only user is
// applied in the convolution's GEMM epilogue (LayerAttrs::relu). The fused nodes pass their input through
// (PreparedNode::pass_through) and cost nothing at run time.
//
// Numerics: the folded form rounds differently from running the two nodes (one multiply-add chain per output
// instead of the conv's sum followed by (x - mean) * inv * weight + bias), so results move by a few fp32 ulps
// of the normalized value; every kernel path computes the folded form alike, bit for bit. int8 convolutions
// never meet a BatchNorm2d: compress folds it before quantizing.
#pragma once

#include <vector>

#include "runtime/exec/op_context.h"
#include "runtime/graph/graph.h"

namespace mighty::exec {

// Runs after every node's tensors and attributes are prepared and before the ops' own prepare hooks (which
// then see the folded weights).
void fuse_fp32_convolutions(const Graph& graph, std::vector<PreparedNode>& nodes);

}  // namespace mighty::exec
