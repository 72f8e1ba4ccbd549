// Executes an artifact's graph on the CPU without LibTorch. This increment runs every op of the graph IR in
// fp32 (weights float32 in the artifact): the runtime's own fp32 path, which the int8 path will be measured
// against. Tensors are checked against the graph (names, shapes, dtypes) when the session is built, so a run
// cannot read a tensor that is not there.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/artifact.h"
#include "runtime/graph.h"
#include "runtime/input_spec.h"
#include "runtime/tokenizer.h"

namespace mighty {

class Session {
 public:
  // `threads` splits the int8 GEMMs (results are identical for any count).
  explicit Session(Artifact artifact, int threads = 1);
  static Session load(const std::string& path, int threads = 1) {
    return Session(Artifact::open(path), threads);
  }
  Session(Session&&) noexcept;
  ~Session();

  const Graph& graph() const { return graph_; }
  const Artifact& artifact() const { return artifact_; }

  // Float input [batch, input_shape...] (already normalized); returns [batch, output_shape...] flattened.
  std::vector<float> run(const float* input, int64_t batch) const;
  // Token input [batch, length] with length <= the context; returns [batch, length, vocab] (language model)
  // or [batch, classes] (sequence classifier) flattened.
  std::vector<float> run_tokens(const int64_t* tokens, int64_t batch, int64_t length) const;

  // Incremental decoding of a causal language model (batch 1): the keys and values of every attention layer
  // for the positions seen so far, so each new token costs one position's work instead of the whole prefix.
  struct DecodeState {
    int64_t position = 0;  // tokens consumed so far
    std::vector<std::vector<float>> keys,
        values;  // per graph node (empty for non-attention nodes): [context][d]
  };
  // Feeds `length` more tokens; returns their logits [length][vocab]. The total may not exceed the context.
  std::vector<float> decode(const int64_t* tokens, int64_t length, DecodeState& state) const;

  // Document classifiers (input kind "documents"): the ids a raw text (an email) becomes — email_text, the
  // artifact's own tokenizer, at most max_tokens — and its class scores. Other models: an Error.
  std::vector<int64_t> document_ids(std::string_view raw) const;
  std::vector<float> run_document(std::string_view raw) const;

  // Output elements per example for a sequence of `length` (the whole input for image models).
  int64_t output_size(int64_t length = 0) const;

 private:
  struct Value {
    std::vector<float> data;
    std::vector<int64_t> shape;  // without the batch dimension
    // uint8 channels-last form ([batch][h][w][c], quantized with `params`) between int8 convolutions; when
    // set, `data` is unused.
    std::vector<uint8_t> u8;
    bool is_u8 = false;
    kernels::QuantParams params;
  };
  std::vector<float> execute(const float* input, const int64_t* tokens, int64_t batch, int64_t length,
                             DecodeState* state) const;
  const float* weights(const std::string& name) const;
  void load_tokenizer();
  // Repacks a static Linear's weights to read a channels-last uint8 `map` [C, H, W] flattened.
  void read_hwc(int node, const Shape& map);
  void setup_u8_outputs();  // validates and prepares the requantized (uint8) outputs of static convs
  // y[rows][out] = x[rows][in] W^T (+ bias) on the int8 kernels, for the int8 node `node`.
  // x: float rows, quantized here; or xq: uint8 rows already at the layer's input parameters.
  void linear_int8(int node, const float* x, int64_t rows, const float* bias, float* y,
                   const uint8_t* xq = nullptr) const;
  // y [batch][out][oh][ow] of the int8 Conv2d `node` from x [batch][cin][h][w].
  void conv_int8(int node, const Value& in, int64_t batch, const float* bias, Value& out) const;

  struct Int8Weights {
    kernels::PackedWeights packed;
    const float* scales = nullptr;  // [out]
    // Static activation quantization: the input's calibrated parameters and the per-channel dequantization
    // multipliers (input scale x weight scale). Otherwise each row is quantized with its own range.
    bool static_activation = false;
    kernels::QuantParams input;
    std::vector<float> multipliers;
    // Requantized uint8 output (a static conv feeding another through ReLU/max pooling only): the consumer's
    // input parameters, a fused ReLU as the clamp's low end, the bias in int32 at the accumulator's scale.
    bool u8_output = false;
    kernels::QuantParams output;
    bool relu = false;
    std::vector<int32_t> int_bias;
    std::vector<float> requant_multipliers;  // input scale x weight scale / output scale
    // A static Linear behind Flatten at the end of a uint8 chain reads the channels-last uint8 map as it is:
    // its weight columns are packed in (y, x, c) order instead of the graph's (c, y, x).
    bool hwc_input = false;
    // An int8 EmbeddingBag table: rows [num][dim], one scale per row (no packing).
    const int8_t* table = nullptr;
  };

  Artifact artifact_;
  Graph graph_;
  InputSpec documents_;                             // kind "documents" only
  std::unique_ptr<UnigramTokenizer> tokenizer_;     // documents: from the artifact's tensor
  std::vector<std::unique_ptr<Int8Weights>> int8_;  // per node; null for fp32 nodes
  // Per node: its fp32 tensors by name suffix ("bias", "in_proj.weight", ...), found once at load.
  std::vector<std::vector<std::pair<std::string, const float*>>> node_tensors_;
  // Per node: the integer attributes of Linear, Conv2d and pooling, read once at load (the graph has checked
  // them); a missing one holds its default (stride: -1, meaning the kernel size for pooling).
  struct LayerAttrs {
    int64_t in = 0, out = 0, kernel = 1, stride = -1, padding = 0;
    bool bias = true;
  };
  std::vector<LayerAttrs> layer_attrs_;
  std::unique_ptr<kernels::ThreadPool> pool_;
  std::unique_ptr<std::mutex>
      pool_mutex_;  // the pool serves one run at a time; concurrent runs go single-threaded
};

}  // namespace mighty
