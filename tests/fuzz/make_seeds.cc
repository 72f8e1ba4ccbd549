// Writes seed artifacts for the fuzzer corpus (argument: output directory): small valid files of every dtype,
// and a small model with a graph in fp32 and with an int8 layer, so mutations reach the session's checks.
#include <string>
#include <vector>

#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  mighty::ArtifactWriter w;
  w.set_metadata({{"producer", "seed"}, {"labels", {"a", "b"}}});
  const float f[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  const int8_t i8[3] = {-127, 0, 127};
  w.add_tensor("w", mighty::TensorType::kFloat32, {2, 2}, f);
  w.add_tensor("q", mighty::TensorType::kInt8, {3}, i8);
  w.write(dir + "/two_tensors.mighty");
  mighty::ArtifactWriter empty;
  empty.write(dir + "/empty.mighty");

  for (bool int8 : {false, true}) {
    mighty::Graph g;
    int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {2}}});
    x = g.add("fc", mighty::OpKind::kLinear, {x}, {{"in_features", 2}, {"out_features", 2}});
    x = g.add("act", mighty::OpKind::kReLU, {x});
    g.add("out", mighty::OpKind::kLinear, {x}, {{"in_features", 2}, {"out_features", 2}, {"bias", false}});
    g.infer_shapes();
    nlohmann::json graph = g.to_json();
    if (int8) graph["nodes"][1]["attrs"]["quant"] = {{"weight", "int8"}, {"activation", "dynamic"}};
    mighty::ArtifactWriter m;
    m.set_metadata(
        {{"graph", graph}, {"input", {{"kind", "images"}, {"shape", {2}}, {"mean", 0}, {"std", 1}}}});
    const float bias[2] = {0.1f, -0.1f}, scales[2] = {0.01f, 0.02f};
    const int8_t q4[4] = {-127, 3, 0, 127};
    if (int8) {
      m.add_tensor("fc.weight", mighty::TensorType::kInt8, {2, 2}, q4);
      m.add_tensor("fc.weight_scale", mighty::TensorType::kFloat32, {2}, scales);
    } else {
      m.add_tensor("fc.weight", mighty::TensorType::kFloat32, {2, 2}, f);
    }
    m.add_tensor("fc.bias", mighty::TensorType::kFloat32, {2}, bias);
    m.add_tensor("out.weight", mighty::TensorType::kFloat32, {2, 2}, f);
    m.write(dir + (int8 ? "/mlp_int8.mighty" : "/mlp_fp32.mighty"));
  }
  // Two static int8 convs with a uint8 activation between them (requantizing epilogue, fused ReLU).
  {
    mighty::Graph g;
    int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {1, 4, 4}}});
    nlohmann::json qa = {{"weight", "int8"},        {"activation", "static"}, {"input_scale", 0.02},
                         {"input_zero_point", 128}, {"output_scale", 0.05},   {"output_zero_point", 0},
                         {"output_relu", true}};
    x = g.add("a", mighty::OpKind::kConv2d, {x},
              {{"in_channels", 1}, {"out_channels", 2}, {"kernel", 3}, {"padding", 1}, {"quant", qa}});
    x = g.add("act", mighty::OpKind::kReLU, {x});
    nlohmann::json qb = {
        {"weight", "int8"}, {"activation", "static"}, {"input_scale", 0.05}, {"input_zero_point", 0}};
    x = g.add("b", mighty::OpKind::kConv2d, {x},
              {{"in_channels", 2}, {"out_channels", 1}, {"kernel", 1}, {"bias", false}, {"quant", qb}});
    g.add("flatten", mighty::OpKind::kFlatten, {x});
    g.infer_shapes();
    mighty::ArtifactWriter m;
    m.set_metadata({{"graph", g.to_json()},
                    {"input", {{"kind", "images"}, {"shape", {1, 4, 4}}, {"mean", 0}, {"std", 1}}}});
    const int8_t wa[18] = {1, -2, 3, 4, 5, -6, 7, 8, 9, -1, 2, -3, 4, -5, 6, -7, 8, -9};
    const int8_t wb[2] = {100, -100};
    const float sa[2] = {0.01f, 0.02f}, ba[2] = {0.1f, -0.2f}, sb[1] = {0.03f};
    m.add_tensor("a.weight", mighty::TensorType::kInt8, {2, 1, 3, 3}, wa);
    m.add_tensor("a.weight_scale", mighty::TensorType::kFloat32, {2}, sa);
    m.add_tensor("a.bias", mighty::TensorType::kFloat32, {2}, ba);
    m.add_tensor("b.weight", mighty::TensorType::kInt8, {1, 2, 1, 1}, wb);
    m.add_tensor("b.weight_scale", mighty::TensorType::kFloat32, {1}, sb);
    m.write(dir + "/conv_u8.mighty");
  }
  // A pruned int8 Linear: its weight is stored bitmap-encoded (format 2).
  {
    mighty::Graph g;
    int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {16}}});
    g.add("fc", mighty::OpKind::kLinear, {x},
          {{"in_features", 16},
           {"out_features", 8},
           {"bias", false},
           {"quant", {{"weight", "int8"}, {"activation", "dynamic"}}}});
    g.infer_shapes();
    mighty::ArtifactWriter m;
    m.set_metadata(
        {{"graph", g.to_json()}, {"input", {{"kind", "images"}, {"shape", {16}}, {"mean", 0}, {"std", 1}}}});
    int8_t w[128] = {};
    for (int i = 0; i < 128; i += 9) w[i] = static_cast<int8_t>(i - 64);
    const float scales[8] = {0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f, 0.07f, 0.08f};
    m.add_tensor("fc.weight", mighty::TensorType::kInt8, {8, 16}, w);
    m.add_tensor("fc.weight_scale", mighty::TensorType::kFloat32, {8}, scales);
    m.write(dir + "/pruned_int8.mighty");
  }
  // The fuzzer's first finding: metadata values of other types behind a valid checksum (input.kind, a node's
  // quant.weight, an Input's dtype, provenance), and an absurd input.mean. Each must be one mighty::Error.
  {
    mighty::Graph g;
    int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {2}}, {"dtype", "float32"}});
    g.add("fc", mighty::OpKind::kLinear, {x},
          {{"in_features", 2},
           {"out_features", 2},
           {"quant", {{"weight", "int8"}, {"activation", "dynamic"}}}});
    g.infer_shapes();
    const nlohmann::json good = {{"graph", g.to_json()},
                                 {"data_hash", "0123"},
                                 {"input", {{"kind", "images"}, {"shape", {2}}, {"mean", 0}, {"std", 1}}}};
    const std::pair<const char*, nlohmann::json> cases[] = {{"/input/kind", 5},
                                                            {"/graph/nodes/1/attrs/quant/weight", 5},
                                                            {"/graph/nodes/0/attrs/dtype", 5},
                                                            {"/data_hash", 5},
                                                            {"/input/mean", 1e300}};
    int index = 0;
    for (const auto& [pointer, value] : cases) {
      nlohmann::json meta = good;
      meta[nlohmann::json::json_pointer(pointer)] = value;
      mighty::ArtifactWriter m;
      m.set_metadata(meta);
      const int8_t q4[4] = {-127, 3, 0, 127};
      const float scales[2] = {0.01f, 0.02f}, bias[2] = {0.5f, -0.5f};
      m.add_tensor("fc.weight", mighty::TensorType::kInt8, {2, 2}, q4);
      m.add_tensor("fc.weight_scale", mighty::TensorType::kFloat32, {2}, scales);
      m.add_tensor("fc.bias", mighty::TensorType::kFloat32, {2}, bias);
      m.write(dir + "/wrong_type_" + std::to_string(index++) + ".mighty");
    }
  }
  // A student-shaped int8 CNN: two static convolutions and a static Linear on a uint8 chain through ReLU,
  // max pooling and Flatten; and a small causal language model (token and positional embeddings, LayerNorm,
  // attention, a Linear to the vocabulary). Mutations of these reach the kernels the real models run.
  {
    mighty::Graph g;
    int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {1, 8, 8}}});
    const nlohmann::json qa = {{"weight", "int8"},        {"activation", "static"}, {"input_scale", 0.02},
                               {"input_zero_point", 128}, {"output_scale", 0.05},   {"output_zero_point", 0},
                               {"output_relu", true}};
    x = g.add("c1", mighty::OpKind::kConv2d, {x},
              {{"in_channels", 1}, {"out_channels", 4}, {"kernel", 3}, {"padding", 1}, {"quant", qa}});
    x = g.add("r1", mighty::OpKind::kReLU, {x});
    x = g.add("p1", mighty::OpKind::kMaxPool2d, {x}, {{"kernel", 2}});
    const nlohmann::json qb = {{"weight", "int8"},      {"activation", "static"}, {"input_scale", 0.05},
                               {"input_zero_point", 0}, {"output_scale", 0.1},    {"output_zero_point", 0},
                               {"output_relu", true}};
    x = g.add("c2", mighty::OpKind::kConv2d, {x},
              {{"in_channels", 4}, {"out_channels", 8}, {"kernel", 3}, {"padding", 1}, {"quant", qb}});
    x = g.add("r2", mighty::OpKind::kReLU, {x});
    x = g.add("p2", mighty::OpKind::kMaxPool2d, {x}, {{"kernel", 2}});
    x = g.add("f", mighty::OpKind::kFlatten, {x});
    g.add("fc", mighty::OpKind::kLinear, {x},
          {{"in_features", 32},
           {"out_features", 3},
           {"quant",
            {{"weight", "int8"}, {"activation", "static"}, {"input_scale", 0.1}, {"input_zero_point", 0}}}});
    g.infer_shapes();
    mighty::ArtifactWriter m;
    m.set_metadata({{"graph", g.to_json()},
                    {"input", {{"kind", "images"}, {"shape", {1, 8, 8}}, {"mean", 0.5}, {"std", 0.25}}},
                    {"labels", {"a", "b", "c"}}});
    std::vector<int8_t> w1(36), w2(288), w3(96);
    for (size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
    for (size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<int8_t>(static_cast<int>(i * 53 % 255) - 127);
    for (size_t i = 0; i < w3.size(); ++i) w3[i] = static_cast<int8_t>(static_cast<int>(i * 71 % 255) - 127);
    const float s1[4] = {0.01f, 0.02f, 0.015f, 0.03f}, b1[4] = {0.1f, -0.1f, 0.0f, 0.2f};
    const float s2[8] = {0.01f, 0.02f, 0.015f, 0.03f, 0.01f, 0.02f, 0.015f, 0.03f};
    const float b2[8] = {0.1f, -0.1f, 0.0f, 0.2f, 0.1f, -0.1f, 0.0f, 0.2f};
    const float s3[3] = {0.01f, 0.02f, 0.03f}, b3[3] = {0.0f, 0.5f, -0.5f};
    m.add_tensor("c1.weight", mighty::TensorType::kInt8, {4, 1, 3, 3}, w1.data());
    m.add_tensor("c1.weight_scale", mighty::TensorType::kFloat32, {4}, s1);
    m.add_tensor("c1.bias", mighty::TensorType::kFloat32, {4}, b1);
    m.add_tensor("c2.weight", mighty::TensorType::kInt8, {8, 4, 3, 3}, w2.data());
    m.add_tensor("c2.weight_scale", mighty::TensorType::kFloat32, {8}, s2);
    m.add_tensor("c2.bias", mighty::TensorType::kFloat32, {8}, b2);
    m.add_tensor("fc.weight", mighty::TensorType::kInt8, {3, 32}, w3.data());
    m.add_tensor("fc.weight_scale", mighty::TensorType::kFloat32, {3}, s3);
    m.add_tensor("fc.bias", mighty::TensorType::kFloat32, {3}, b3);
    m.write(dir + "/student_cnn_int8.mighty");
  }
  {
    mighty::Graph g;
    const int t = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {6}}, {"dtype", "int64"}});
    const int a = g.add("tok", mighty::OpKind::kEmbedding, {t}, {{"num_embeddings", 5}, {"dim", 8}});
    const int b = g.add("pos", mighty::OpKind::kEmbedding, {t},
                        {{"num_embeddings", 6}, {"dim", 8}, {"positional", true}});
    int x = g.add("sum", mighty::OpKind::kAdd, {a, b});
    x = g.add("ln", mighty::OpKind::kLayerNorm, {x}, {{"dim", 8}});
    x = g.add("attn", mighty::OpKind::kMultiHeadAttention, {x},
              {{"d_model", 8}, {"heads", 2}, {"causal", true}});
    g.add("head", mighty::OpKind::kLinear, {x}, {{"in_features", 8}, {"out_features", 5}});
    g.infer_shapes();
    mighty::ArtifactWriter m;
    m.set_metadata({{"graph", g.to_json()},
                    {"input", {{"kind", "text"}, {"context", 6}, {"vocab", {97, 98, 99, 100, 101}}}}});
    int k = 0;
    for (const auto& spec : g.all_tensors()) {
      std::vector<float> v(static_cast<size_t>(spec.numel()));
      for (float& f : v)
        f = static_cast<float>((k++ * 29) % 17 - 8) * 0.05f + (spec.name == "ln.weight" ? 1.0f : 0.0f);
      m.add_tensor(spec.name, mighty::TensorType::kFloat32, spec.shape, v.data());
    }
    m.write(dir + "/char_lm_fp32.mighty");
  }
  return 0;
}
