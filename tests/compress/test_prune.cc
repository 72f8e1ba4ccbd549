// Pruning: mask arithmetic (exact counts, global ranking, N:M groups), the gradual schedule, masks that hold
// through fine-tuning and a resume, and the prune stage end to end down to a smaller artifact.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "compress/models/zoo.h"
#include "compress/passes/prune.h"
#include "compress/passes/sensitivity.h"
#include "compress/pipeline/jobs.h"
#include "compress/pipeline/pipeline.h"
#include "compress/recipe/recipe.h"
#include "helpers.h"
#include "kernels/gemm.h"
#include "runtime/error.h"
#include "runtime/format/artifact.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

int64_t zeros(const torch::Tensor& t) { return t.numel() - t.count_nonzero().item<int64_t>(); }

GraphModule small_cnn() {
  ModelSpec spec;
  spec.arch = "cnn";
  spec.input_shape = {1, 28, 28};
  spec.classes = 10;
  CnnBlockSpec a, b;
  a.channels = 8;
  a.pool = "max";
  b.channels = 16;
  b.pool = "max";
  spec.blocks = {a, b};
  spec.hidden = {32};
  torch::manual_seed(3);
  return GraphModule(build_graph(spec));
}

PruneSpec magnitude(double sparsity, const std::string& scope = "layer") {
  PruneSpec s;
  s.sparsity = sparsity;
  s.scope = scope;
  return s;
}

}  // namespace

TEST_CASE("prune: the gradual schedule follows Zhu & Gupta's cubic in whole updates") {
  PruneSpec s;
  s.begin = 0.2;
  s.end = 0.6;
  s.frequency = 10;
  REQUIRE(schedule_progress(s, 0, 100) == 0.0);
  REQUIRE(schedule_progress(s, 19, 100) == 0.0);
  REQUIRE(schedule_progress(s, 20, 100) == 0.0);  // the first update prunes initial_sparsity
  REQUIRE(schedule_progress(s, 30, 100) == Approx(1.0 - std::pow(0.75, 3)));
  REQUIRE(schedule_progress(s, 39, 100) == Approx(1.0 - std::pow(0.75, 3)));  // between updates: unchanged
  REQUIRE(schedule_progress(s, 50, 100) == Approx(1.0 - std::pow(0.25, 3)));
  REQUIRE(schedule_progress(s, 60, 100) == 1.0);
  REQUIRE(schedule_progress(s, 99, 100) == 1.0);
  REQUIRE(schedule_progress(s, 0, 0) == 1.0);  // no fine-tuning: one shot
  s.begin = s.end = 0.0;
  REQUIRE(schedule_progress(s, 0, 100) == 1.0);
}

TEST_CASE("prune: magnitude masks prune exactly the smallest weights, per layer and globally") {
  auto w = torch::tensor({0.5f, -0.1f, 0.0f, 2.0f, -3.0f, 0.1f, 0.7f, -0.2f});
  auto m = magnitude_mask(w, 0.5);
  REQUIRE(zeros(m) == 4);
  // Kept: the four largest |w| (0.5, 2, -3, 0.7); of the tied 0.1s both go.
  REQUIRE(torch::equal(m, torch::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 1.f, 0.f})));
  REQUIRE(zeros(magnitude_mask(w, 0.0)) == 0);
  REQUIRE(zeros(magnitude_mask(torch::randn({7, 9}), 0.9)) == 57);  // round(0.9 * 63)

  // Global: one threshold, so the layer of small weights loses more.
  auto big = torch::randn({100}) * 10, small = torch::randn({100}) * 0.1;
  auto masks = global_magnitude_masks({big, small}, 0.5);
  REQUIRE(zeros(masks[0]) + zeros(masks[1]) == 100);
  REQUIRE(zeros(masks[1]) > 90);
  const float kept_min = (big.abs() * masks[0] + (1 - masks[0]) * 1e9).min().item<float>();
  const float pruned_max = (small.abs() * (1 - masks[1])).max().item<float>();
  REQUIRE(pruned_max <= kept_min);
}

TEST_CASE("prune: N:M masks keep exactly n of every m input channels, the largest") {
  torch::manual_seed(5);
  for (auto nm : {std::pair<int64_t, int64_t>{2, 4}, {4, 8}}) {
    const auto [n, mm] = nm;
    auto linear = torch::randn({6, 16});
    auto mask = nm_mask(linear, n, mm);
    REQUIRE(torch::equal(mask.reshape({-1, mm}).sum(1), torch::full({6 * 16 / mm}, static_cast<float>(n))));
    // Every kept magnitude is at least every pruned one in its group.
    auto g = linear.abs().reshape({-1, mm}), k = mask.reshape({-1, mm});
    REQUIRE((std::get<0>((g * (1 - k)).max(1)) <= std::get<0>((g * k + (1 - k) * 1e9).min(1)))
                .all()
                .item<bool>());

    auto conv = torch::randn({5, 8, 3, 3});
    auto cmask = nm_mask(conv, n, mm);
    // Groups run along input channels at each output channel and kernel position.
    auto groups = cmask.permute({0, 2, 3, 1}).reshape({-1, mm}).sum(1);
    REQUIRE(torch::equal(groups, torch::full({5 * 9 * 8 / mm}, static_cast<float>(n))));
  }
  REQUIRE_THROWS(nm_mask(torch::randn({4, 6}), 2, 4));
}

TEST_CASE("prune: a Pruner reaches each layer's target, skips what it must and names bad globs") {
  auto model = small_cnn();
  PruneSpec spec = magnitude(0.8);
  spec.exclude = {"features.0.conv"};
  spec.overrides = {{"fc.*", 0.5}};
  Pruner p(spec, model, "/stages/1");
  p.update(1.0);
  const auto r = p.report();
  std::map<std::string, nlohmann::json> by;
  for (const auto& l : r["layers"]) by[l["layer"]] = l;
  REQUIRE(!by.count("features.0.conv"));
  REQUIRE(by.size() == 3);
  for (const auto& [name, l] : by) {
    const double target = name == "fc.0" ? 0.5 : 0.8;
    INFO(name);
    REQUIRE(l["sparsity"].get<double>() == Approx(target).margin(0.5 / l["params"].get<double>()));
  }
  // Halfway through the schedule, every layer is at the same fraction of its target.
  auto fresh = small_cnn();
  Pruner half(magnitude(0.8), fresh, "/stages/1");
  half.update(0.5);
  for (const auto& l : half.report()["layers"])
    REQUIRE(l["sparsity"].get<double>() == Approx(0.4).margin(0.01));

  spec.exclude = {"nothing*"};
  REQUIRE_THROWS_WITH(Pruner(spec, model, "/stages/1"),
                      Catch::Contains("/stages/1/exclude/0: 'nothing*' matches no prunable layer"));
  PruneSpec nm;
  nm.method = "n:m";
  Pruner nmp(nm, model, "/stages/2");
  nmp.update(1.0);
  const auto first = nmp.report()["layers"][0];
  REQUIRE(first["layer"] == "features.0.conv");
  REQUIRE(first["skipped"] == "1 input channels are not a multiple of 4");
  REQUIRE(first["sparsity"].get<double>() < 0.1);
  nm.exclude = {"features.1.*", "fc.*", "out"};
  REQUIRE_THROWS_WITH(Pruner(nm, model, "/stages/2"), Catch::Contains("/stages/2: no layer left to prune"));
}

TEST_CASE("prune: the stage fine-tunes under masks that hold, resumes, and the artifact shrinks") {
  const std::string cache = testing::fresh_temp_dir("prune", "cache");
  const testing::ScopedEnv data_cache("MIGHTY_DATA", cache);
  const std::string text = R"({
  "name": "prune_test", "seed": 7,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 200,
           "normalize": {"mean": 0.286, "std": 0.353}},
  "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}], "hidden": [32]},
              "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
  "student": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}], "hidden": [64]}},
  "stages": [{"kind": "prune", "sparsity": 0.9, "scope": "global", "alpha": 0.5,
              "schedule": {"begin": 0.0, "end": 0.5, "frequency": 4},
              "train": {"lr": 0.003, "batch_size": 64, "steps": 24}},
             {"kind": "quantize"}, {"kind": "export"}]
})";
  const Recipe recipe = parse_recipe(text, "prune.json");
  JobOptions o = testing::quiet_run(testing::fresh_temp_dir("prune", "straight"));
  const auto straight = run_compress(recipe, o);  // trains the teacher into the cache
  JobOptions stopped = o;
  stopped.out_dir = testing::fresh_temp_dir("prune", "stopped");
  stopped.stop_after_steps = 10;  // inside the prune stage's fine-tuning
  REQUIRE(run_compress(recipe, stopped).value("completed", true) == false);
  stopped.stop_after_steps = 0;
  stopped.resume = true;
  const auto resumed = run_compress(recipe, stopped);
  const auto& stage = straight["stages"][0];
  REQUIRE(stage["kind"] == "prune");
  REQUIRE(stage["masks"]["sparsity"].get<double>() == Approx(0.9).margin(0.001));
  // A resumed run ends where an uninterrupted one does.
  REQUIRE(resumed["stages"][0]["test"] == stage["test"]);
  REQUIRE(resumed["stages"][0]["masks"] == stage["masks"]);
  // The pruned weights stayed zero through training and quantization: the artifact stores them as bitmaps.
  const Artifact a = Artifact::open(o.out_dir + "/model.mighty");
  int encoded = 0;
  for (const auto& t : a.tensors()) encoded += t.encoding == "bitmap" ? 1 : 0;
  REQUIRE(encoded >= 2);
  REQUIRE(stage["fp32_bytes"].get<double>() < stage["dense_fp32_bytes"].get<double>() / 3);
}

TEST_CASE("prune: the sensitivity budget spends sparsity where it costs the least") {
  const std::vector<double> levels = {0.5, 0.9};
  // "big" loses little at either level, "small" loses a lot at 90%, "fragile" at 50% already.
  const std::vector<LayerSensitivity> layers = {
      {"big", 1000, {0.899, 0.89}}, {"small", 100, {0.9, 0.70}}, {"fragile", 100, {0.6, 0.5}}};
  auto b = sensitivity_budget(layers, levels, 0.9, 0.5);
  // small to 50% is free (50 weights), then big to 50% (550 of 1200 < 600) and on to 90% (950).
  REQUIRE(b["small"] == 0.5);
  REQUIRE(b["big"] == 0.9);
  REQUIRE(b["fragile"] == 0.0);
  b = sensitivity_budget(layers, levels, 0.9, 0.8);  // 960: small to 90% costs less per weight than fragile
  REQUIRE(b["big"] == 0.9);
  REQUIRE(b["small"] == 0.9);
  REQUIRE(b["fragile"] == 0.0);
  // A target nothing can reach: every layer at the last level.
  b = sensitivity_budget(layers, levels, 0.9, 0.99);
  REQUIRE(b["fragile"] == 0.9);
  // Losses are made monotone: a noisy gain at a higher level does not make it look free.
  const std::vector<LayerSensitivity> noisy = {{"a", 100, {0.8, 0.95}}, {"b", 100, {0.85, 0.85}}};
  b = sensitivity_budget(noisy, levels, 0.9, 0.45);
  REQUIRE(b["b"] == 0.9);
  REQUIRE(b["a"] == 0.0);
}

TEST_CASE("prune: scope sensitivity measures every layer and prunes to the budget") {
  const std::string cache = testing::fresh_temp_dir("prune", "sens_cache");
  const testing::ScopedEnv data_cache("MIGHTY_DATA", cache);
  const std::string text = R"({
  "name": "sensitivity_test", "seed": 9,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 100,
           "normalize": {"mean": 0.286, "std": 0.353}},
  "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}], "hidden": [32]},
              "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
  "student": {"model": {"arch": "cnn", "blocks": [{"channels": 4, "pool": "max"}], "hidden": [16]}},
  "stages": [{"kind": "distill", "alpha": 0.5, "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
             {"kind": "prune", "sparsity": 0.7, "scope": "sensitivity",
              "sensitivity": {"sparsities": [0.5, 0.8, 0.95]}}]
})";
  JobOptions o = testing::quiet_run(testing::fresh_temp_dir("prune", "sens"));
  const auto report = run_compress(parse_recipe(text, "sens.json"), o);
  const auto& stage = report["stages"][1];
  const auto& sens = stage["sensitivity"];
  REQUIRE(sens["layers"].size() == 3);  // features.0.conv, fc.0, out
  double pruned = 0, total = 0;
  for (const auto& l : sens["layers"]) {
    REQUIRE(l["quality"].size() == 3);
    double achieved = -1;
    for (const auto& m : stage["masks"]["layers"])
      if (m["layer"] == l["layer"]) achieved = m["sparsity"].get<double>();
    INFO(l["layer"]);
    REQUIRE(achieved == Approx(l["budget"].get<double>()).margin(0.01));
    pruned += achieved * l["params"].get<double>();
    total += l["params"].get<double>();
  }
  REQUIRE(pruned / total >= 0.69);
  REQUIRE(prune_markdown(stage).find("### sensitivity") != std::string::npos);
}

TEST_CASE("prune: block masks zero whole [16 x 4] blocks of the GEMM layout, which the kernels skip") {
  torch::manual_seed(8);
  auto linear = torch::randn({64, 256});
  auto mask = magnitude_mask(linear, 0.9, /*block=*/true);
  // Constant over every block, and 90% of the 256 blocks zero.
  auto blocks = mask.reshape({4, 16, 64, 4});
  REQUIRE(torch::equal(blocks.amax({1, 3}), blocks.amin({1, 3})));
  REQUIRE(blocks.amax({1, 3}).sum().item<int64_t>() == 256 - 230);  // round(0.9 * 256) = 230 pruned
  // The int8 kernels see the same blocks: pack the pruned, quantized weight.
  const auto q = (linear * mask * 20).round().clamp(-127, 127).to(torch::kInt8).contiguous();
  const auto packed = kernels::pack_weights(q.data_ptr<int8_t>(), 64, 256, 256);
  REQUIRE(packed.zero_block_fraction == Approx(230.0 / 256.0));
  REQUIRE(packed.sparse);

  // Conv2d: blocks run along input channels at each kernel position (the runtime's channels-last K order).
  auto conv = torch::randn({32, 8, 3, 3});
  auto cmask = magnitude_mask(conv, 0.75, true);
  auto gemm = cmask.permute({0, 2, 3, 1}).reshape({2, 16, 18, 4});
  REQUIRE(torch::equal(gemm.amax({1, 3}), gemm.amin({1, 3})));
  REQUIRE(gemm.amax({1, 3}).sum().item<int64_t>() == 36 - 27);
  // Partial blocks at the edges (O = 20, K = 9) are ranked too and cut back to the weight's shape.
  auto odd = magnitude_mask(torch::randn({20, 1, 3, 3}), 0.5, true);
  REQUIRE(odd.sizes() == torch::IntArrayRef({20, 1, 3, 3}));
}
