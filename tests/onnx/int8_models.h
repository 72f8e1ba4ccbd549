// A small int8 artifact built by hand (random int8 weights and scales, fixed activation parameters) for the
// ONNX export tests: test_export.cc (the QDQ structure) and ort_agreement.cc (ONNX Runtime computes it).
#pragma once

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

namespace mighty::test {

// An int8 artifact: conv (static, requantized to uint8) -> ReLU -> MaxPool -> conv (static, uint8 out) ->
// Clip(0, 6) -> Flatten -> Linear (static, float out) -> ReLU -> Linear (static).
inline std::string int8_cnn_artifact() {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {2, 6, 6}}, {"dtype", "float32"}});
  auto quant = [](double in_scale, int in_zp, double out_scale = 0, int out_zp = 0, bool relu = false) {
    nlohmann::json q = {
        {"weight", "int8"}, {"activation", "static"}, {"input_scale", in_scale}, {"input_zero_point", in_zp}};
    if (out_scale > 0) {
      q["output_scale"] = out_scale;
      q["output_zero_point"] = out_zp;
      q["output_relu"] = relu;
    }
    return q;
  };
  x = g.add("c1", OpKind::kConv2d, {x},
            {{"in_channels", 2},
             {"out_channels", 4},
             {"kernel", 3},
             {"padding", 1},
             {"quant", quant(0.02, 100, 0.05, 0, true)}});
  x = g.add("c1_act", OpKind::kReLU, {x});
  x = g.add("c1_pool", OpKind::kMaxPool2d, {x}, {{"kernel", 2}});
  nlohmann::json q2 = quant(0.05, 0, 0.03, 0);
  q2["output_clip"] = {0.0, 6.0};
  x = g.add("c2", OpKind::kConv2d, {x},
            {{"in_channels", 4}, {"out_channels", 3}, {"kernel", 3}, {"padding", 1}, {"quant", q2}});
  x = g.add("c2_act", OpKind::kClip, {x}, {{"min", 0.0}, {"max", 6.0}});
  x = g.add("flat", OpKind::kFlatten, {x});
  x = g.add("fc", OpKind::kLinear, {x},
            {{"in_features", 27}, {"out_features", 5}, {"quant", quant(0.03, 0)}});
  x = g.add("fc_act", OpKind::kReLU, {x});
  x = g.add("out", OpKind::kLinear, {x}, {{"in_features", 5}, {"out_features", 3}, {"quant", quant(0.1, 7)}});
  g.set_output(x);
  g.infer_shapes();
  std::mt19937 rng(11);
  // Weights within 7 bits: ONNX Runtime's u8 x s8 kernels on AVX2 without VNNI add pairs of products in int16
  // (vpmaddubsw) and saturate where both are near 255 x 127; mighty's kernels do not. With |w| <= 63 no pair
  // can, so ONNX Runtime's integers are mighty's on every x86 path.
  std::uniform_int_distribution<int> s8(-63, 63);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), sc(0.001f, 0.01f);
  ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()}});
  for (const auto& spec : g.all_tensors()) {
    if (spec.name.find(".weight") != std::string::npos) {
      std::vector<int8_t> q(static_cast<size_t>(spec.numel()));
      for (auto& v : q) v = static_cast<int8_t>(s8(rng));
      w.add_tensor(spec.name, TensorType::kInt8, spec.shape, q.data());
      std::vector<float> scales(static_cast<size_t>(spec.shape[0]));
      for (auto& v : scales) v = sc(rng);
      w.add_tensor(spec.name + "_scale", TensorType::kFloat32, {spec.shape[0]}, scales.data());
    } else {
      std::vector<float> v(static_cast<size_t>(spec.numel()));
      for (auto& b : v) b = u(rng);
      w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, v.data());
    }
  }
  return w.serialize();
}

// Random tensors for every node of `g`: a node with "quant" gets an int8 weight within 7 bits (see above)
// and per-row scales ("<node>.weight_scale"); everything else floats in [-1, 1] (LayerNorm gains near 1).
inline std::string artifact_with_random_tensors(Graph g, uint32_t seed) {
  g.infer_shapes();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> s8(-63, 63);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), sc(0.002f, 0.02f);
  ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()}});
  for (int i = 0; i < static_cast<int>(g.nodes().size()); ++i) {
    const Node& n = g.nodes()[static_cast<size_t>(i)];
    for (const auto& spec : g.tensors(i)) {
      if (n.attrs.contains("quant") && spec.name == n.name + ".weight") {
        std::vector<int8_t> q(static_cast<size_t>(spec.numel()));
        for (auto& v : q) v = static_cast<int8_t>(s8(rng));
        w.add_tensor(spec.name, TensorType::kInt8, spec.shape, q.data());
        std::vector<float> scales(static_cast<size_t>(spec.shape[0]));
        for (auto& v : scales) v = sc(rng);
        w.add_tensor(spec.name + "_scale", TensorType::kFloat32, {spec.shape[0]}, scales.data());
        continue;
      }
      const bool gain = n.op == OpKind::kLayerNorm && spec.name == n.name + ".weight";
      std::vector<float> v(static_cast<size_t>(spec.numel()));
      for (auto& b : v) b = gain ? 1.0f + 0.2f * u(rng) : u(rng);
      w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, v.data());
    }
  }
  return w.serialize();
}

inline nlohmann::json dynamic_int8() { return {{"weight", "int8"}, {"activation", "dynamic"}}; }

// An MLP on float features with dynamic (per-row) int8 activations: Linear -> ReLU -> Linear.
inline std::string dynamic_mlp_artifact() {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {24}}, {"dtype", "float32"}});
  x = g.add("fc1", OpKind::kLinear, {x},
            {{"in_features", 24}, {"out_features", 16}, {"quant", dynamic_int8()}});
  x = g.add("act", OpKind::kReLU, {x});
  x = g.add("fc2", OpKind::kLinear, {x},
            {{"in_features", 16}, {"out_features", 4}, {"quant", dynamic_int8()}});
  g.set_output(x);
  return artifact_with_random_tensors(g, 5);
}

// The bag model (token ids in, -1 = padding): EmbeddingBag with an int8 table (a scale per row) -> Linear
// (dynamic) -> ReLU -> Linear (dynamic).
inline std::string bag_artifact(int64_t vocabulary, int64_t length) {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {length}}, {"dtype", "int64"}});
  x = g.add(
      "bag", OpKind::kEmbeddingBag, {x},
      {{"num_embeddings", vocabulary}, {"dim", 16}, {"quant", {{"weight", "int8"}, {"scale", "per_row"}}}});
  x = g.add("fc1", OpKind::kLinear, {x},
            {{"in_features", 16}, {"out_features", 12}, {"quant", dynamic_int8()}});
  x = g.add("act", OpKind::kReLU, {x});
  x = g.add("out", OpKind::kLinear, {x},
            {{"in_features", 12}, {"out_features", 2}, {"quant", dynamic_int8()}});
  g.set_output(x);
  return artifact_with_random_tensors(g, 6);
}

// A character language model: token and positional Embedding -> one pre-norm block (LayerNorm, causal
// MultiHeadAttention, Add; LayerNorm, Linear (dynamic), GELU, Linear (dynamic), Add) -> LayerNorm -> Linear
// head (dynamic) -> logits per position [T, vocabulary].
inline std::string transformer_lm_artifact(int64_t vocabulary, int64_t context) {
  const int64_t d = 16;
  Graph g;
  const int ids = g.add("input", OpKind::kInput, {}, {{"shape", {context}}, {"dtype", "int64"}});
  const int tok = g.add("tok", OpKind::kEmbedding, {ids}, {{"num_embeddings", vocabulary}, {"dim", d}});
  const int pos = g.add("pos", OpKind::kEmbedding, {ids},
                        {{"num_embeddings", context}, {"dim", d}, {"positional", true}});
  int x = g.add("embed", OpKind::kAdd, {tok, pos});
  int h = g.add("ln1", OpKind::kLayerNorm, {x}, {{"dim", d}});
  h = g.add("attn", OpKind::kMultiHeadAttention, {h}, {{"d_model", d}, {"heads", 2}, {"causal", true}});
  x = g.add("res1", OpKind::kAdd, {x, h});
  h = g.add("ln2", OpKind::kLayerNorm, {x}, {{"dim", d}});
  h = g.add("fc1", OpKind::kLinear, {h},
            {{"in_features", d}, {"out_features", 32}, {"quant", dynamic_int8()}});
  h = g.add("gelu", OpKind::kGELU, {h});
  h = g.add("fc2", OpKind::kLinear, {h},
            {{"in_features", 32}, {"out_features", d}, {"quant", dynamic_int8()}});
  x = g.add("res2", OpKind::kAdd, {x, h});
  x = g.add("ln_f", OpKind::kLayerNorm, {x}, {{"dim", d}});
  x = g.add("head", OpKind::kLinear, {x},
            {{"in_features", d}, {"out_features", vocabulary}, {"quant", dynamic_int8()}});
  g.set_output(x);
  return artifact_with_random_tensors(g, 7);
}

}  // namespace mighty::test
