// The uint8 chain rule, in one place for the runtime and the quantize simulation in compress/: a static int8
// Conv2d may requantize its output to uint8 (channels-last) and hand it on without a float round trip when
// its single consumers lead through ReLU and Clip (ReLU6; fused into the clamp: quantization is monotonic,
// so clamping before or after it is the same), MaxPool2d (commutes with the quantization) and at most one
// Flatten to the next layer: a Conv2d when no Flatten was passed, a Linear after one. That layer must itself
// be static int8 with the input parameters the conv requantizes to (the caller checks that).
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/quantize.h"

#include "runtime/graph/graph.h"

namespace mighty {

struct U8Chain {
  int end = -1;       // the node where the walk stopped; -1 when a node had several users or was the output
  int flatten = -1;   // the Flatten passed on the way, if any
  bool relu = false;  // a ReLU was passed
  bool clip = false;  // a Clip was passed
  // The float interval every ReLU and Clip passed on the way clamps to (ReLU: [0, inf)).
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool consumer = false;  // `end` is of the consumer's kind (Conv2d, or Linear after Flatten)
};

// The requantization clamp [lo, hi] in uint8 of a chain's interval at the output parameters: the quantized
// bounds, nearbyint(bound / scale) + zero point in double precision, within [0, 255]; ReLU's bound 0 is the
// zero point.
void u8_clamp(const U8Chain& chain, const kernels::QuantParams& out, int32_t& lo, int32_t& hi);

// Follows the chain from node `from` (a Conv2d).
U8Chain follow_u8_chain(const Graph& graph, int from);

}  // namespace mighty
