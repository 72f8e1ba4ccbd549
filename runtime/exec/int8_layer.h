// The int8 form of a Linear, Conv2d or EmbeddingBag node, prepared once when a session loads (weights packed
// for the GEMM, scales and multipliers checked and precomputed), and the int8 Linear and Conv2d computations
// the ops call.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/depthwise.h"
#include "kernels/gemm.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/exec/value.h"
#include "runtime/format/metadata.h"
#include "runtime/graph/graph.h"

namespace mighty {
class Artifact;
}

namespace mighty::exec {

struct Int8Layer {
  int64_t outputs = 0;  // output features or channels
  kernels::PackedWeights packed;
  // A static convolution's weights with each kernel row's run padded to 64 bytes, packed only when the
  // selected kernel path reads patches in place with them (KernelTable::direct_conv: AMX).
  kernels::PackedWeights packed_runs64;
  // A depthwise Conv2d (groups = in = out channels, static activations only) runs its own kernel on these
  // instead of the GEMM on `packed`.
  bool depthwise = false;
  kernels::DepthwiseWeights depthwise_weights;
  const float* scales = nullptr;  // [out]
  // Static activation quantization: the input's calibrated parameters and the per-channel dequantization
  // multipliers (input scale x weight scale). Otherwise each row is quantized with its own range.
  bool static_activation = false;
  kernels::QuantParams input;
  std::vector<float> multipliers;
  // Requantized uint8 output (a static conv at the head of a uint8 chain): the consumer's input parameters, a
  // fused ReLU as the clamp's low end, the bias in int32 at the accumulator's scale.
  bool u8_output = false;
  kernels::QuantParams output;
  bool relu = false;
  int32_t clamp_lo = 0, clamp_hi = 255;  // of the chain's ReLU and Clip (exec/u8_chain.h)
  std::vector<int32_t> int_bias;
  std::vector<float> requant_multipliers;  // input scale x weight scale / output scale
  // A static Linear behind Flatten at the end of a uint8 chain reads the channels-last uint8 map as it is:
  // its weight columns are packed in (y, x, c) order instead of the graph's (c, y, x).
  bool hwc_input = false;
  // An int8 EmbeddingBag table: rows [num][dim], one scale per row (no packing).
  const int8_t* table = nullptr;
};

// A float bias in int32 at the accumulator's scale (input scale x weight scale), as a requantizing layer adds
// it: nearbyint(bias / scale) in double precision; false when that does not fit (|q| >= 1e9).
bool accumulator_bias(float bias, float input_scale, float weight_scale, int32_t& q);

// Reads node `index`'s "quant" attribute (`quant`, already known to exist) and its int8 tensors from the
// artifact; every value is checked. Returns the prepared layer.
std::unique_ptr<Int8Layer> prepare_int8(const Artifact& artifact, const Graph& graph, int index,
                                        const MetaValue& quant);
// Makes the static conv `index` requantize to uint8 for the consumer at the end of its uint8 chain, as its
// "quant" attribute's output_* entries say; checks the chain (exec/u8_chain.h). `layers`: every node's int8
// form (null for fp32 nodes); the consumer's may be repacked to read the uint8 map.
void prepare_u8_output(const Artifact& artifact, const Graph& graph, int index, const MetaValue& quant,
                       const std::vector<Int8Layer*>& layers);

// y[rows][out] = x[rows][in] W^T (+ bias) on the int8 kernels. x: float rows, quantized here; or xq: uint8
// rows already at the layer's input parameters. `pool`: null runs on the calling thread.
void linear_int8(const Int8Layer& layer, const float* x, int64_t rows, const float* bias, float* y,
                 const uint8_t* xq, kernels::ThreadPool* pool);
// out [batch][cout][oh][ow] float, or [batch][oh][ow][cout] uint8 for a uint8 output, of an int8 Conv2d.
void conv_int8(const Int8Layer& layer, const Node& node, int64_t kernel, int64_t stride, int64_t padding,
               const Value& in, int64_t batch, const float* bias, Value& out, kernels::ThreadPool* pool);

}  // namespace mighty::exec
