// Universal Sentence Encoder Lite in LibTorch, loaded from its TensorFlow.js files (model.json: topology and
// weight manifest; the binary shards: float32/int32 values back to back in manifest order). Written from the
// graph in model.json (see docs/spam.md for the walk through it) and checked against the JavaScript model.
//
// ids [B, T] (int64, -1 = padding; the real tokens first) -> [B, 512] L2-normalized sentence embeddings:
//   x = 2 * embedding(ids) + timing(position)            (the graph adds the embedding twice)
//   layer 0: x -> dense(x) + out(attn(LN(x))) (256 -> 512); then x + FFN(LN(x))
//   layer 1: x -> x + out(attn(LN(x)));                   then x + FFN(LN(x))
//   mean over the real tokens -> tanh(W x + b) -> x / sqrt(max(|x|^2, 1e-12))
// Tokens past the 128th are dropped (the graph's ClipToMaxLength).
#pragma once

#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/teacher.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

struct UseLiteLayer {
  torch::Tensor ln_scale, ln_bias;          // before attention
  torch::Tensor qkv_w, qkv_b;               // [in, 3 * width]
  torch::Tensor out_w, out_b;               // [width, 512]
  torch::Tensor dense_w, dense_b;           // layer 0's residual projection (in -> 512); undefined in layer 1
  torch::Tensor ffn_ln_scale, ffn_ln_bias;  // before the feed-forward block
  torch::Tensor conv1_w, conv1_b, conv2_w, conv2_b;
  int64_t heads = 0, head_dim = 0;
  double scale = 0.0;  // the query scale the graph multiplies by
};

class UseLiteEncoderImpl : public torch::nn::Module {
 public:
  // Reads DIR/model.json and its shards; every bad or missing piece is a mighty::Error naming the file.
  explicit UseLiteEncoderImpl(const std::string& model_json);

  torch::Tensor forward(const torch::Tensor& ids);  // -> [B, 512]

  static constexpr int64_t kMaxTokens = 128;
  int64_t embedding_dim() const { return tanh_w_.size(1); }
  int64_t vocabulary_rows() const { return embeddings_.size(0); }
  int64_t embeddings_width() const { return embeddings_.size(1); }
  // Its pieces, for use_lite_graph.
  const torch::Tensor& embeddings() const { return embeddings_; }
  const std::vector<UseLiteLayer>& layers() const { return layers_; }
  const torch::Tensor& tanh_w() const { return tanh_w_; }
  const torch::Tensor& tanh_b() const { return tanh_b_; }
  double ln_epsilon() const { return ln_epsilon_; }
  double l2_epsilon() const { return l2_epsilon_; }
  // The timing signal [positions, width]: sin and cos of position x each inverse timescale.
  torch::Tensor timing(int64_t positions) const;

 private:
  torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& scale,
                           const torch::Tensor& bias) const;

  torch::Tensor embeddings_, inv_timescales_, tanh_w_, tanh_b_;
  std::vector<UseLiteLayer> layers_;
  double ln_epsilon_ = 1e-6, l2_epsilon_ = 1e-12;
};
TORCH_MODULE(UseLiteEncoder);

// USE-Lite with a classification head (an MLP on the 512-d embedding): the spam recipe's teacher.
class UseLiteClassifierImpl : public torch::nn::Module {
 public:
  UseLiteClassifierImpl(const std::string& model_json, const std::vector<int64_t>& hidden, int64_t classes);
  torch::Tensor forward(const torch::Tensor& ids);     // -> logits [B, classes]
  torch::Tensor head(const torch::Tensor& embedding);  // [B, 512] -> logits
  torch::nn::Sequential& head_layers() { return head_; }
  UseLiteEncoder encoder{nullptr};

 private:
  torch::nn::Sequential head_{nullptr};
};
TORCH_MODULE(UseLiteClassifier);

// The classifier as a graph of the IR with its weights (fp32), so the runtime can run it without LibTorch:
// token ids [T] (T <= context, no padding: one document per run) -> logits. The same computation as forward
// on an unpadded document, up to rounding (the queries are scaled after q k^T instead of before; LayerNorm
// and the final normalization are the runtime's): Embedding (the table doubled, as the graph adds it twice)
// + a positional Embedding holding the timing signal; per layer LayerNorm -> Linear (qkv) ->
// ScaledDotProductAttention -> Linear (out) + the residual (layer 0: a Linear 256 -> 512), LayerNorm ->
// Linear -> ReLU -> Linear + residual; GlobalAvgPool -> Linear -> Tanh -> L2Normalize -> the head.
// Throws mighty::Error when a layer's query scale is not 1 / sqrt(head width) (the runtime's).
GraphModule use_lite_graph(UseLiteClassifier& model, int64_t context);

// Trains the head (encoder frozen: the embeddings of every document are computed once) or, with
// `finetune`, encoder and head together, on the training split; per-epoch validation metrics in the result.
nlohmann::json train_use_lite(UseLiteClassifier& model, const TrainSpec& spec, bool finetune,
                              const Dataset& data, uint64_t seed);

// The teacher: a trained UseLiteClassifier. Inputs repeat exactly (documents are not augmented), so the
// logits of every document seen are remembered: distillation runs the 7M-parameter encoder once per document,
// not once per epoch.
class UseLiteTeacher : public Teacher {
 public:
  explicit UseLiteTeacher(UseLiteClassifier model);
  torch::Tensor logits(const torch::Tensor& x) override;
  std::pair<torch::Tensor, std::vector<torch::Tensor>> logits_and_features(
      const torch::Tensor& x, const std::vector<int>& nodes) override;
  const Graph* graph() const override { return nullptr; }
  int64_t parameter_count() const override { return params_; }
  int64_t fp32_bytes() const override { return bytes_; }
  std::string describe() const override { return "Universal Sentence Encoder Lite + head"; }
  void remember_outputs(bool on) override { remember_ = on; }
  UseLiteClassifier& model() { return model_; }

 private:
  UseLiteClassifier model_;
  int64_t params_ = 0, bytes_ = 0;
  bool remember_ = false;
  std::unordered_map<std::string, torch::Tensor> remembered_;
};

// The float32/int32 tensors of a TF.js weight manifest, by name, in manifest order.
std::vector<std::pair<std::string, torch::Tensor>> read_tfjs_weights(const std::string& model_json);

}  // namespace mighty::compress
