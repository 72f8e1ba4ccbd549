// Post-training int8 quantization: BatchNorm folding, SmoothQuant, calibration observers, per-channel
// weights, bias correction, and a LibTorch simulation of the quantized model that uses the runtime's own
// quantizer and the kernels' exact arithmetic, so simulated and deployed outputs agree.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"
#include "kernels/quantize.h"
#include "runtime/format/artifact.h"

namespace mighty::compress {

// A copy of `model` with every Conv2d -> BatchNorm2d pair folded into one Conv2d with a bias (eval-mode
// statistics): w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta.
GraphModule fold_batchnorm(GraphModule& model);

// A copy of `model` with every MultiHeadAttention split into Linear "<node>.in_proj" ->
// ScaledDotProductAttention "<node>" -> Linear "<node>.out_proj" (the same function and tensor names), so
// the projections are quantized as any Linear layer (observers, SmoothQuant after a LayerNorm, static or
// dynamic activations, int8 in the runtime and the ONNX export).
GraphModule split_attention(GraphModule& model);

// Range observers over a tensor's values: a first pass finds min and max, a second fills a histogram.
class RangeObserver {
 public:
  static constexpr int64_t kBins = 2048;
  void observe_range(const torch::Tensor& x);
  void observe_histogram(const torch::Tensor& x);
  // The calibrated range of `method`: minmax | percentile | mse | entropy (`percentile` in (0, 100]).
  std::pair<float, float> range(const std::string& method, double percentile) const;
  float min() const { return lo_; }
  float max() const { return hi_; }

 private:
  float lo_ = 0.0f, hi_ = 0.0f;  // the range always includes 0
  bool seen_ = false;
  std::vector<double> hist_;
  double bin_center(int64_t b) const;
};

// The quantization of one Linear or Conv2d node.
struct LayerQuant {
  int node = -1;
  std::string name;
  bool static_activation = true;
  kernels::QuantParams input;  // static only
  torch::Tensor weight_q;      // int8 [out, in...]
  torch::Tensor weight_scale;  // float [out]
  torch::Tensor bias;          // float [out] (after bias correction), or undefined
  std::string observer;
  // A static conv whose output goes (through ReLU / max pooling only) to another static conv is requantized
  // to that conv's input parameters in the kernel's epilogue (ReLU fused as the clamp), and stays uint8.
  bool u8_output = false;
  kernels::QuantParams output;
  bool relu = false;
  bool clip = false;                     // a Clip on the chain, clamping to [clip_lo, clip_hi]
  double clip_lo = 0.0, clip_hi = 0.0;   // the chain's interval (with a ReLU's 0) when clip
  int32_t clamp_lo = 0, clamp_hi = 255;  // the requantization clamp (runtime/exec/u8_chain.h's u8_clamp)
};

// An EmbeddingBag table as int8 rows, each with its own scale (max |row| / 127): the runtime sums the rows
// of a document's tokens in float after scaling, exactly what the simulation does.
struct TableQuant {
  int node = -1;
  std::string name;
  torch::Tensor weight_q;      // int8 [rows, dim]
  torch::Tensor weight_scale;  // float [rows]
};

class QuantizedModel {
 public:
  QuantizedModel(GraphModule fp32, std::map<int, LayerQuant> layers);
  // The simulation of the deployed int8 model (quantized layers exactly as the runtime computes them).
  torch::Tensor forward(const torch::Tensor& x);
  // As GraphModuleImpl::forward_capture (`captures_only`: up to the last captured node, no output).
  std::pair<torch::Tensor, std::vector<torch::Tensor>> forward_capture(const torch::Tensor& x,
                                                                       const std::vector<int>& nodes,
                                                                       bool captures_only = false);
  GraphModule& fp32() { return fp32_; }  // the float model it was made from (folded, smoothed)
  std::map<int, LayerQuant>& layers() { return layers_; }
  std::map<int, TableQuant>& tables() { return tables_; }
  ArtifactWriter export_artifact(const nlohmann::json& metadata);

 private:
  GraphModule fp32_;
  std::map<int, LayerQuant> layers_;
  std::map<int, TableQuant> tables_;
};

// Linear/Conv2d output of one layer as the runtime computes it from fp32 input.
torch::Tensor simulate_layer(const Node& node, const LayerQuant& q, const torch::Tensor& x);

// Batches of the calibration split (images: the data's calibration subset; text: windows from the start of
// the training split).
std::vector<torch::Tensor> calibration_batches(const Dataset& data, int64_t max_examples);

// The quantize stage on `student` (fp32, unchanged). `report` receives what was done and measured:
// per layer the observer, range, scale, zero point and SQNR of its output (simulation vs fp32).
QuantizedModel quantize_model(GraphModule& student, const QuantizeSpec& spec, const Dataset& data,
                              nlohmann::json& report);

// Signal-to-quantization-noise ratio in dB: 10 log10(sum(ref^2) / sum((test - ref)^2)).
double sqnr_db(const torch::Tensor& reference, const torch::Tensor& test);

// True when `name` matches the glob `pattern` ('*' any run of characters, '?' one character).
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace mighty::compress
