// Writes seed artifacts for the fuzzer corpus (argument: output directory): small valid files of every dtype,
// and a small model with a graph in fp32 and with an int8 layer, so mutations reach the session's checks.
#include <string>

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
  return 0;
}
