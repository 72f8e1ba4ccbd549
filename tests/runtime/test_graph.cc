#include <catch2/catch.hpp>

#include <vector>

#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

using namespace mighty;
using nlohmann::json;

namespace {

Graph small_cnn() {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {1, 28, 28}}});
  x = g.add("c", OpKind::kConv2d, {x},
            {{"in_channels", 1}, {"out_channels", 8}, {"kernel", 3}, {"padding", 1}, {"bias", false}});
  x = g.add("bn", OpKind::kBatchNorm2d, {x}, {{"channels", 8}});
  x = g.add("r", OpKind::kReLU, {x});
  x = g.add("p", OpKind::kMaxPool2d, {x}, {{"kernel", 2}});
  x = g.add("f", OpKind::kFlatten, {x});
  g.add("out", OpKind::kLinear, {x}, {{"in_features", 8 * 14 * 14}, {"out_features", 10}});
  return g;
}

}  // namespace

TEST_CASE("shape inference through a small CNN") {
  Graph g = small_cnn();
  g.infer_shapes();
  REQUIRE(g.nodes()[1].shape == Shape{8, 28, 28});
  REQUIRE(g.nodes()[4].shape == Shape{8, 14, 14});
  REQUIRE(g.output_shape() == Shape{10});
  // conv 8*1*3*3 (no bias) + bn 8+8 + linear 1568*10+10
  REQUIRE(g.parameter_count() == 72 + 16 + 15690);
  const auto tensors = g.all_tensors();
  REQUIRE(tensors.size() == 1 + 4 + 2);
  REQUIRE(tensors[3].name == "bn.running_mean");
  REQUIRE_FALSE(tensors[3].trainable);
}

TEST_CASE("graph JSON round trip keeps everything") {
  Graph g = small_cnn();
  g.infer_shapes();
  const Graph back = Graph::from_json(g.to_json());
  REQUIRE(back.to_json() == g.to_json());
  REQUIRE(back.output_shape() == g.output_shape());
}

TEST_CASE("a transformer block infers shapes") {
  Graph g;
  int t = g.add("input", OpKind::kInput, {}, {{"shape", {16}}, {"dtype", "int64"}});
  int a = g.add("tok", OpKind::kEmbedding, {t}, {{"num_embeddings", 50}, {"dim", 32}});
  int b = g.add("pos", OpKind::kEmbedding, {t}, {{"num_embeddings", 16}, {"dim", 32}, {"positional", true}});
  int x = g.add("sum", OpKind::kAdd, {a, b});
  x = g.add("ln", OpKind::kLayerNorm, {x}, {{"dim", 32}});
  x = g.add("attn", OpKind::kMultiHeadAttention, {x}, {{"d_model", 32}, {"heads", 4}, {"causal", true}});
  g.add("out", OpKind::kLinear, {x}, {{"in_features", 32}, {"out_features", 50}});
  g.infer_shapes();
  REQUIRE(g.output_shape() == Shape{16, 50});
  REQUIRE(g.parameter_count() == 50 * 32 + 16 * 32 + 64 + (3 * 32 * 32 + 96 + 32 * 32 + 32) + 32 * 50 + 50);
}

TEST_CASE("graph errors name the node and what was expected") {
  SECTION("width mismatch") {
    Graph g;
    int x = g.add("input", OpKind::kInput, {}, {{"shape", {20}}});
    g.add("fc", OpKind::kLinear, {x}, {{"in_features", 21}, {"out_features", 3}});
    REQUIRE_THROWS_WITH(g.infer_shapes(), Catch::Contains("'fc'") && Catch::Contains("expected 21"));
  }
  SECTION("forward reference") {
    json j = small_cnn().to_json();
    j["nodes"][2]["inputs"] = {5};
    REQUIRE_THROWS_WITH(Graph::from_json(j),
                        Catch::Contains("graph node 2") && Catch::Contains("earlier node"));
  }
  SECTION("unknown op") {
    json j = small_cnn().to_json();
    j["nodes"][3]["op"] = "Swish";
    REQUIRE_THROWS_WITH(Graph::from_json(j), Catch::Contains("graph node 3") && Catch::Contains("Swish"));
  }
  SECTION("wrong arity") {
    json j = small_cnn().to_json();
    j["nodes"][3]["inputs"] = {1, 2};
    REQUIRE_THROWS_WITH(Graph::from_json(j), Catch::Contains("has 2 inputs, expected 1"));
  }
  SECTION("mistyped flag") {
    json j = small_cnn().to_json();
    j["nodes"][1]["attrs"]["bias"] = "no";
    REQUIRE_THROWS_WITH(Graph::from_json(j),
                        Catch::Contains("graph node 1") && Catch::Contains("'bias' must be true or false"));
  }
  SECTION("sizes whose dimensions are each in range but whose products are not") {
    // Found by scripts/fuzz onnx: four dimensions of 65536 overflowed the session's byte counts.
    Graph g;
    g.add("input", OpKind::kInput, {}, {{"shape", {3, 65536, 65536, 65536}}});
    REQUIRE_THROWS_WITH(g.infer_shapes(),
                        Catch::Contains("graph node 0 ('input'") &&
                            Catch::Contains("output shape [3, 65536, 65536, 65536] holds more "
                                            "than 2^31 elements per example"));
    Graph h;
    const int x = h.add("input", OpKind::kInput, {}, {{"shape", {1 << 30}}});
    h.add("fc", OpKind::kLinear, {x}, {{"in_features", 1 << 30}, {"out_features", 1 << 30}});
    REQUIRE_THROWS_WITH(h.infer_shapes(), Catch::Contains("'fc'") &&
                                              Catch::Contains("tensor 'fc.weight' of shape [1073741824, "
                                                              "1073741824] holds more than 2^40 elements"));
    Graph ok;
    ok.add("input", OpKind::kInput, {}, {{"shape", {2, 32768, 32768}}});  // exactly 2^31
    ok.infer_shapes();
    REQUIRE(ok.output_shape() == Shape{2, 32768, 32768});
  }
  SECTION("token ids are read by embeddings only; the token Input is no output") {
    // Found by fuzzing artifacts with a run: a Linear reading the int64 input read a null float buffer, and
    // an output index of 0 handed back a recycled buffer's stale contents.
    Graph g;
    const int t = g.add("input", OpKind::kInput, {}, {{"shape", {6}}, {"dtype", "int64"}});
    g.add("fc", OpKind::kLinear, {t}, {{"in_features", 6}, {"out_features", 3}});
    REQUIRE_THROWS_WITH(g.infer_shapes(),
                        Catch::Contains("graph node 1 ('fc', Linear): reads the int64 token "
                                        "input; only Embedding and EmbeddingBag do"));
    Graph h;
    const int u = h.add("input", OpKind::kInput, {}, {{"shape", {6}}, {"dtype", "int64"}});
    h.add("tok", OpKind::kEmbedding, {u}, {{"num_embeddings", 5}, {"dim", 8}});
    h.set_output(0);
    h.infer_shapes();
    ArtifactWriter w;
    w.set_metadata({{"graph", h.to_json()}});
    const std::vector<float> table(40, 0.5f);
    w.add_tensor("tok.weight", TensorType::kFloat32, {5, 8}, table.data());
    REQUIRE_THROWS_WITH(
        Session(Artifact::from_bytes(w.serialize(), "t.mighty")),
        Catch::Equals("t.mighty: the graph's output is its token-id Input node: the model computes "
                      "nothing"));
  }
  SECTION("heads must divide the width") {
    Graph g;
    int x = g.add("input", OpKind::kInput, {}, {{"shape", {4, 30}}});
    g.add("attn", OpKind::kMultiHeadAttention, {x}, {{"d_model", 30}, {"heads", 4}});
    REQUIRE_THROWS_WITH(g.infer_shapes(), Catch::Contains("not divisible by 4 heads"));
  }
  SECTION("scaled dot-product attention: packed q|k|v width and a head_dim") {
    Graph g;
    int x = g.add("input", OpKind::kInput, {}, {{"shape", {4, 30}}});
    g.add("sdpa", OpKind::kScaledDotProductAttention, {x}, {{"heads", 2}, {"head_dim", 4}});
    REQUIRE_THROWS_WITH(g.infer_shapes(), Catch::Contains("packed q|k|v width") && Catch::Contains("24"));
    Graph h;
    x = h.add("input", OpKind::kInput, {}, {{"shape", {4, 24}}});
    h.add("sdpa", OpKind::kScaledDotProductAttention, {x}, {{"heads", 2}});
    REQUIRE_THROWS_WITH(h.infer_shapes(), Catch::Contains("head_dim"));
    Graph ok;
    x = ok.add("input", OpKind::kInput, {}, {{"shape", {4, 24}}});
    ok.add("sdpa", OpKind::kScaledDotProductAttention, {x},
           {{"heads", 2}, {"head_dim", 4}, {"causal", true}});
    ok.infer_shapes();
    REQUIRE(ok.output_shape() == Shape{4, 8});
  }
}
