// The uint8 chain rule, in one place for the runtime and the quantize simulation in compress/: a static int8
// Conv2d may requantize its output to uint8 (channels-last) and hand it on without a float round trip when
// its single consumers lead through ReLU (fused into the clamp), MaxPool2d (commutes with the quantization)
// and at most one Flatten to the next layer: a Conv2d when no Flatten was passed, a Linear after one. That
// layer must itself be static int8 with the input parameters the conv requantizes to (the caller checks
// that).
#pragma once

#include "runtime/graph/graph.h"

namespace mighty {

struct U8Chain {
  int end = -1;       // the node where the walk stopped; -1 when a node had several users or was the output
  int flatten = -1;   // the Flatten passed on the way, if any
  bool relu = false;  // a ReLU was passed
  bool consumer = false;  // `end` is of the consumer's kind (Conv2d, or Linear after Flatten)
};

// Follows the chain from node `from` (a Conv2d).
U8Chain follow_u8_chain(const Graph& graph, int from);

}  // namespace mighty
