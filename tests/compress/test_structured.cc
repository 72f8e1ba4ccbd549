// Structured pruning: which units can go, and a model with units zeroed equals its physically shrunk twin
// (CNN with BatchNorm and a flattened head, MLP, transformer feed-forward width); the stage end to end down
// to a smaller artifact that the runtime executes.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "compress/models/zoo.h"
#include "compress/passes/export.h"
#include "compress/passes/structured.h"
#include "compress/pipeline/jobs.h"
#include "compress/pipeline/pipeline.h"
#include "compress/recipe/recipe.h"
#include "helpers.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

ModelSpec cnn_spec() {
  ModelSpec spec;
  spec.arch = "cnn";
  spec.input_shape = {1, 12, 12};
  spec.classes = 5;
  CnnBlockSpec a, b, c;
  a.channels = 6;
  b.channels = 8;
  b.pool = "max";
  c.channels = 10;
  c.batchnorm = false;
  c.pool = "avg";
  spec.blocks = {a, b, c};
  spec.hidden = {12};
  return spec;
}

// A two-layer character LM: vocabulary 11, context 8, width 16, feed-forward 24.
ModelSpec transformer_spec() {
  ModelSpec t;
  t.arch = "transformer";
  t.input_shape = {8};
  t.vocab = 11;
  t.classes = 11;
  t.d_model = 16;
  t.heads = 2;
  t.layers = 2;
  t.ffn = 24;
  return t;
}

// Random weights and BatchNorm statistics, so zeroed units really are the only thing that differs.
void randomize(GraphModule& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.5);
  for (auto& kv : m->named_buffers(true)) {
    if (kv.key().find("running_var") != std::string::npos) kv.value().uniform_(0.5, 2.0);
    if (kv.key().find("running_mean") != std::string::npos) kv.value().normal_(0.0, 0.3);
  }
}

// Zeroes every other unit of every group, shrinks, and compares the two models on `x`; returns the shrunk
// one.
GraphModule check_shrink_equals_zeroed(GraphModule& m, const torch::Tensor& x, size_t expected_groups) {
  m->eval();
  const auto groups = unit_groups(m->graph());
  REQUIRE(groups.size() == expected_groups);
  std::vector<torch::Tensor> keep;
  for (const auto& g : groups) {
    auto k = torch::ones({g.units});
    for (int64_t u = 1; u < g.units; u += 2) k[u] = 0;
    zero_units(m, g, k);
    keep.push_back(k);
  }
  torch::NoGradGuard no_grad;
  const auto zeroed = m->forward(x);
  GraphModule small = shrink_units(m, groups, keep);
  small->eval();
  REQUIRE(small->parameter_count() < m->parameter_count());
  const auto shrunk = small->forward(x);
  REQUIRE(shrunk.sizes() == zeroed.sizes());
  REQUIRE(torch::allclose(shrunk, zeroed, 1e-5, 1e-5));
  // Without the zeroing the outputs would differ: the test can fail.
  auto fresh = GraphModule(m->graph());
  randomize(fresh);
  fresh->eval();
  REQUIRE(!torch::allclose(fresh->forward(x), zeroed, 1e-3, 1e-3));
  return small;
}

}  // namespace

TEST_CASE("structured: the prunable units of a CNN, an MLP and a transformer") {
  auto spec = cnn_spec();
  const Graph g = build_graph(spec);
  const auto groups = unit_groups(g);
  REQUIRE(groups.size() == 4);  // three convs and fc.0; "out" is the model's output
  REQUIRE(groups[0].layer == "features.0.conv");
  REQUIRE(g.nodes()[groups[0].batchnorm].name == "features.0.bn");
  REQUIRE(g.nodes()[groups[0].consumer].name == "features.1.conv");
  REQUIRE(groups[2].layer == "features.2.conv");
  REQUIRE(groups[2].batchnorm == -1);
  REQUIRE(groups[2].flatten >= 0);
  REQUIRE(groups[2].spatial == 9);  // 12 -> pool 6 -> pool 3
  REQUIRE(groups[3].layer == "fc.0");

  const auto tg = unit_groups(build_graph(transformer_spec()));
  // Each block's attention heads and feed-forward fc1; fc2 and the head feed residuals or the output.
  REQUIRE(tg.size() == 4);
  REQUIRE(tg[0].layer == "blocks.0.attn");
  REQUIRE(tg[0].heads);
  REQUIRE(tg[0].units == 2);
  REQUIRE(tg[0].head_dim == 8);
  REQUIRE(tg[1].layer == "blocks.0.ffn.fc1");
  REQUIRE(tg[2].layer == "blocks.1.attn");
  REQUIRE(tg[3].layer == "blocks.1.ffn.fc1");
}

TEST_CASE("structured: a model with units zeroed equals its physically shrunk version") {
  torch::manual_seed(11);
  SECTION("cnn with BatchNorm, pooling and a flattened head") {
    auto m = GraphModule(build_graph(cnn_spec()));
    randomize(m);
    check_shrink_equals_zeroed(m, torch::randn({3, 1, 12, 12}), 4);
  }
  SECTION("cnn with global average pooling") {
    auto spec = cnn_spec();
    spec.global_pool = true;
    auto m = GraphModule(build_graph(spec));
    randomize(m);
    check_shrink_equals_zeroed(m, torch::randn({3, 1, 12, 12}), 4);
  }
  SECTION("mlp") {
    ModelSpec spec;
    spec.arch = "mlp";
    spec.input_shape = {1, 6, 6};
    spec.classes = 4;
    spec.hidden = {20, 14};
    auto m = GraphModule(build_graph(spec));
    randomize(m);
    check_shrink_equals_zeroed(m, torch::randn({5, 1, 6, 6}), 2);
  }
  SECTION("transformer attention heads and feed-forward width") {
    auto spec = transformer_spec();
    spec.heads = 4;
    auto m = GraphModule(build_graph(spec));
    randomize(m);
    const auto tokens = torch::randint(0, 11, {2, 8}, torch::kInt64);
    GraphModule small = check_shrink_equals_zeroed(m, tokens, 4);
    const auto& attn = small->graph().nodes()[static_cast<size_t>(unit_groups(small->graph())[0].producer)];
    REQUIRE(attn.attrs["heads"] == 2);
    REQUIRE(attn.attrs["head_dim"] == 4);  // 16 / 4 heads, now 2 of them: projections 8 wide
    // The runtime runs the smaller attention, whole and token by token with its key/value cache.
    const Session session(
        Artifact::from_bytes(export_fp32(small, {{"producer", "test"}}).serialize(), "heads.mighty"));
    const auto got = session.run_tokens(tokens.data_ptr<int64_t>(), 2, 8);
    torch::NoGradGuard no_grad;
    const auto want = small->forward(tokens).contiguous().view({-1});
    REQUIRE(want.numel() == static_cast<int64_t>(got.size()));
    for (size_t i = 0; i < got.size(); ++i)
      REQUIRE(got[i] == Approx(want[static_cast<int64_t>(i)].item<float>()).margin(1e-4));
    Session::DecodeState state;
    std::vector<float> pieces;
    for (int64_t at = 0; at < 8; at += 4) {
      const auto part = session.decode(tokens.data_ptr<int64_t>() + at, 4, state);
      pieces.insert(pieces.end(), part.begin(), part.end());
    }
    for (size_t i = 0; i < pieces.size(); ++i) REQUIRE(pieces[i] == Approx(got[i]).margin(1e-5));
  }
}

TEST_CASE("structured: the channels stage ends with a smaller model that the runtime runs") {
  const std::string cache = testing::fresh_temp_dir("structured", "cache");
  const testing::ScopedEnv data_cache("MIGHTY_DATA", cache);
  const std::string text = R"({
  "name": "structured_test", "seed": 5,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 200,
           "normalize": {"mean": 0.286, "std": 0.353}},
  "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}], "hidden": [32]},
              "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
  "student": {"model": {"arch": "cnn", "blocks": [{"channels": 8}, {"channels": 8, "pool": "max"}],
                        "hidden": [16]}},
  "stages": [{"kind": "distill", "alpha": 0.5, "temperature": 2,
              "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
             {"kind": "prune", "method": "channels", "sparsity": 0.5, "criterion": "bn_scale",
              "exclude": ["fc.*"], "schedule": {"begin": 0.0, "end": 0.5, "frequency": 4},
              "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
             {"kind": "quantize"}, {"kind": "export"}]
})";
  const Recipe recipe = parse_recipe(text, "structured.json");
  JobOptions o = testing::quiet_run(testing::fresh_temp_dir("structured", "run"));
  const auto report = run_compress(recipe, o);
  const auto& stage = report["stages"][1];
  REQUIRE(stage["kind"] == "prune");
  REQUIRE(stage["masks"]["layers"].size() == 2);  // the two convs; fc.* excluded
  REQUIRE(stage["layers"][0]["shape"] == nlohmann::json({4, 1, 3, 3}));
  REQUIRE(stage["layers"][1]["shape"] == nlohmann::json({4, 4, 3, 3}));
  REQUIRE(stage["layers"][2]["shape"] == nlohmann::json({16, 4 * 14 * 14}));
  REQUIRE(stage["params_after"].get<int64_t>() < stage["params_before"].get<int64_t>() / 2 + 200);

  // The exported int8 file holds the smaller graph, and the simulation of it classifies.
  const Session s(Artifact::open(o.out_dir + "/model.mighty"), 1);
  const Graph g = Graph::from_json(s.artifact().metadata()["graph"]);
  REQUIRE(g.nodes()[1].attrs["out_channels"] == 4);
  REQUIRE(report["stages"][2]["simulated_test"]["accuracy"].get<double>() > 0.3);
  // Resumed: the finished stage rebuilds the smaller model from its directory.
  o.resume = true;
  const auto again = run_compress(recipe, o);
  REQUIRE(again["stages"][1]["test"] == stage["test"]);
  REQUIRE(again["stages"][2]["simulated_test"] == report["stages"][2]["simulated_test"]);
}
