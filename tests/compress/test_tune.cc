// mighty tune's pieces: the tune block read strictly, the configurations (deduplicated, drawn with the seed),
// the rungs, each trial's recipe, the Pareto front, and the report drawing every trial.
#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <string>

#include "compress/recipe/recipe.h"
#include "compress/tune/tune.h"
#include "runtime/error.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

// A recipe with every stage tune varies; `tune` is the tune block's body.
std::string tune_recipe(const std::string& tune, const std::string& teacher = "") {
  return R"({
  "name": "t", "seed": 5,
  "data": {"kind": "images", "train_limit": 100, "validation_size": 50},
  "teacher": )" +
         (teacher.empty()
              ? std::string(R"({"model": {"arch": "mlp", "hidden": [32]}, "train": {"epochs": 2}})")
              : teacher) +
         R"(,
  "student": {"model": {"arch": "mlp", "hidden": [8]}},
  "stages": [
    {"kind": "distill", "alpha": 0.7, "train": {"epochs": 9, "warmup_steps": 90}},
    {"kind": "prune", "sparsity": 0.5, "alpha": 0.5, "train": {"steps": 30}},
    {"kind": "quantize"},
    {"kind": "export"},
    {"kind": "verify", "max_bytes": 5000}
  ],
  "tune": {)" +
         tune + "}\n}";
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("tune block: defaults resolved, written back, read again to the same recipe") {
  const Recipe r = parse_recipe(
      tune_recipe(R"("space": {"width": [0.5, 1.0], "supervision": ["teacher", "labels"]})"), "t.json");
  REQUIRE(r.tune.present);
  REQUIRE(r.tune.search.trials == 9);
  REQUIRE(r.tune.search.eta == 3);
  REQUIRE(r.tune.search.seed == 5);  // the recipe's seed
  REQUIRE(r.tune.constraints.threads == 1);
  REQUIRE(r.tune.objective == "accuracy");
  const Recipe back = parse_recipe(r.to_json().dump(2), "resolved.json");
  REQUIRE(back.hash() == r.hash());
  REQUIRE(back.tune.space.width == std::vector<double>{0.5, 1.0});
  // A recipe without a tune block has none, and its hash does not change by the block's absence.
  REQUIRE_FALSE(parse_recipe(tune_recipe("").substr(0, 0) + R"({"data": {"kind": "images"},
    "teacher": {"model": {"arch": "mlp", "hidden": [4]}, "train": {"epochs": 1}}})",
                             "n.json")
                    .tune.present);
}

TEST_CASE("tune block errors name the key") {
  auto error = [](const std::string& tune, const std::string& teacher = "") {
    try {
      parse_recipe(tune_recipe(tune, teacher), "t.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  REQUIRE_THAT(error(R"("space": {"widht": [1]})"),
               Catch::Contains("/tune/space") && Catch::Contains("widht"));
  REQUIRE_THAT(error(R"("space": {"supervision": ["teacher", "nobody"]})"),
               Catch::Contains("/tune/space/supervision/1") && Catch::Contains("'nobody'"));
  REQUIRE_THAT(error(R"("space": {"sparsity": [0.5, 0.5]})"), Catch::Contains("listed twice"));
  REQUIRE_THAT(error(R"("space": {"sparsity": [1.0]})"), Catch::Contains("/tune/space/sparsity"));
  REQUIRE_THAT(error(R"("space": {"width": [0.5], "students": [{"arch": "mlp", "hidden": [4]}]})"),
               Catch::Contains("either 'students' or 'width'"));
  REQUIRE_THAT(error(R"("space": {"students": [{"arch": "mlp", "hiden": [4]}]})"),
               Catch::Contains("/tune/space/students/0"));
  REQUIRE_THAT(error(R"("space": {"width": [0.5]})", R"({"torchscript": "/x/t.pt"})"),
               Catch::Contains("/tune/space/width") && Catch::Contains("zoo spec"));
  REQUIRE_THAT(error(R"("objective": "speed")"), Catch::Contains("/tune/objective"));
  REQUIRE_THAT(error(R"("search": {"eta": 1})"), Catch::Contains("/tune/search/eta"));
  REQUIRE_THAT(error(R"("constraints": {"max_bytes": -3})"), Catch::Contains("/tune/constraints/max_bytes"));
  // A dimension needs the stage it varies.
  const std::string no_prune = std::regex_replace(tune_recipe(R"("space": {"sparsity": [0.5]})"),
                                                  std::regex(R"(\{"kind": "prune"[^\n]*\n)"), "");
  REQUIRE_THROWS_WITH(parse_recipe(no_prune, "t.json"),
                      Catch::Contains("/tune/space/sparsity") && Catch::Contains("prune stage"));
  const std::string no_export =
      std::regex_replace(tune_recipe(""), std::regex(R"(\{"kind": "export"\},)"), "");
  REQUIRE_THROWS_WITH(parse_recipe(no_export, "t.json"), Catch::Contains("'export' stage"));
}

TEST_CASE("tune configurations: equal trials are one, the draw is the seed's") {
  // 2 supervision x 2 alpha x 2 sparsity x 2 methods: labels ignore alpha, sparsity 0 ignores the method:
  // teacher: 2 alpha x (1 + 2) = 6, labels: 1 x (1 + 2) = 3.
  const Recipe r =
      parse_recipe(tune_recipe(R"("space": {"supervision": ["teacher", "labels"], "alpha": [0.3, 0.9],
    "sparsity": [0, 0.6], "prune_method": ["magnitude", "block"]}, "search": {"trials": 100})"),
                   "t.json");
  const auto all = tune_configurations(r);
  REQUIRE(all.size() == 9);
  std::set<std::string> distinct;
  for (const auto& c : all) {
    distinct.insert(c.dump());
    if (c["supervision"] == "labels") REQUIRE_FALSE(c.contains("alpha"));
    if (c["sparsity"] == 0.0) REQUIRE_FALSE(c.contains("prune_method"));
  }
  REQUIRE(distinct.size() == 9);
  // Fewer trials than configurations: drawn with the search seed, the same every time.
  auto with = [](const std::string& search) {
    return tune_configurations(
        parse_recipe(tune_recipe(R"("space": {"supervision": ["teacher", "labels"], "alpha": [0.3, 0.9],
          "sparsity": [0, 0.6], "prune_method": ["magnitude", "block"]}, "search": {)" +
                                 search + "}"),
                     "t.json"));
  };
  const auto a = with(R"("trials": 4, "seed": 1)");
  REQUIRE(a.size() == 4);
  REQUIRE(a == with(R"("trials": 4, "seed": 1)"));
  REQUIRE(a != with(R"("trials": 4, "seed": 2)"));
  // No space: one configuration, the recipe as written.
  const auto none = tune_configurations(parse_recipe(tune_recipe(""), "t.json"));
  REQUIRE(none.size() == 1);
  REQUIRE(none[0].empty());
}

TEST_CASE("tune rungs: each keeps 1/eta, the last at the full epoch scale") {
  TuneSearch s;
  s.eta = 3;
  s.rungs = 3;
  s.max_epoch_scale = 2.0;
  auto r = tune_rungs(s, 9);
  REQUIRE(r.size() == 3);
  REQUIRE(r[0].first == 9);
  REQUIRE(r[1].first == 3);
  REQUIRE(r[2].first == 1);
  REQUIRE(r[0].second == Approx(2.0 / 9));
  REQUIRE(r[2].second == Approx(2.0));
  r = tune_rungs(s, 4);  // 4 -> 1: two rungs, not a third of one trial
  REQUIRE(r.size() == 2);
  REQUIRE(r[1].first == 1);
  REQUIRE(tune_rungs(s, 1).size() == 1);
  s.rungs = 1;
  REQUIRE(tune_rungs(s, 27).size() == 1);
}

TEST_CASE("a trial's recipe: the choices applied, epochs scaled, no verify, and it parses") {
  const Recipe r = parse_recipe(tune_recipe(R"("space": {"supervision": ["labels"], "sparsity": [0, 0.8],
    "observer": ["mse"], "fallback": ["fp32"], "fallback_max_drop": 0.25})"),
                                "t.json");
  const auto configs = tune_configurations(r);
  REQUIRE(configs.size() == 2);
  for (const auto& c : configs) {
    const auto j = trial_recipe(r, c, 1.0 / 3);
    const Recipe t = parse_recipe(j.dump(), "trial.json");
    REQUIRE_FALSE(t.tune.present);
    const bool pruned = c["sparsity"].get<double>() > 0;
    REQUIRE(t.stages.size() == (pruned ? 4u : 3u));  // distill, [prune], quantize, export
    const auto& d = t.stages[0].get<DistillSpec>();
    REQUIRE(d.alpha == 0.0);  // labels alone
    REQUIRE(d.train.epochs == 3);
    REQUIRE(d.train.warmup_steps == 30);
    REQUIRE(d.teacher_cache);
    if (pruned) {
      const auto& p = t.stages[1].get<PruneSpec>();
      REQUIRE(p.sparsity == 0.8);
      REQUIRE(p.alpha == 0.0);
      REQUIRE(p.train.steps == 10);
    }
    const auto& q = t.stages[pruned ? 2 : 1].get<QuantizeSpec>();
    REQUIRE(q.observer == "mse");
    REQUIRE(q.accuracy_control.max_drop == 0.25);
    REQUIRE(q.accuracy_control.fallback == "fp32");
    REQUIRE_FALSE(t.stages.back().get<ExportSpec>().onnx);
  }
  // A tiny scale still trains: at least one epoch or step.
  const Recipe t = parse_recipe(trial_recipe(r, configs[0], 0.001).dump(), "trial.json");
  REQUIRE(t.stages[0].get<DistillSpec>().train.epochs == 1);
}

TEST_CASE("a pre-check's recipe: the shape alone, one step per stage from labels, no accuracy control") {
  const Recipe r = parse_recipe(tune_recipe(R"("space": {"supervision": ["teacher"], "alpha": [0.7],
    "sparsity": [0.8], "activations": ["dynamic"], "fallback": ["fp32"]})"),
                                "t.json");
  const auto configs = tune_configurations(r);
  REQUIRE(configs.size() == 1);
  const Recipe p = parse_recipe(precheck_recipe(r, configs[0]).dump(), "precheck.json");
  REQUIRE(p.stages.size() == 4);  // distill, prune, quantize, export
  const auto& d = p.stages[0].get<DistillSpec>();
  REQUIRE(d.alpha == 0.0);  // the shape's bytes and latency do not depend on the teacher
  REQUIRE(d.train.steps == 1);
  REQUIRE(d.train.epochs == 0);
  REQUIRE(d.train.warmup_steps == 0);
  const auto& pr = p.stages[1].get<PruneSpec>();
  REQUIRE(pr.sparsity == 0.8);  // what decides the bytes stays
  REQUIRE(pr.train.steps == 1);
  const auto& q = p.stages[2].get<QuantizeSpec>();
  REQUIRE(q.activations == "dynamic");
  REQUIRE(q.accuracy_control.max_drop < 0);  // an untrained model would fall back everywhere
}

TEST_CASE("the chosen trial: constraints first, then the one-standard-error rule for accuracy") {
  auto trial = [](const char* id, double acc, size_t rung, int64_t bytes, bool met) {
    static int64_t order = 0;
    return nlohmann::json{
        {"id", id},         {"accuracy", acc},
        {"rung", rung},     {"bytes", bytes},
        {"hard_ok", met},   {"latency_ms_b1", 0.01},
        {"order", order++}, {"misses", met ? nlohmann::json::array() : nlohmann::json{"x"}}};
  };
  std::vector<nlohmann::json> t = {trial("a0", 0.900, 0, 100, true), trial("b0", 0.915, 0, 90, true),
                                   trial("c0", 0.990, 0, 500, false), trial("b1", 0.908, 1, 90, true)};
  nlohmann::json why;
  // n = 1000: one standard error of 91.5% is 0.88 points; b1 (90.8%) is within it and trained longer.
  REQUIRE((*choose_trial(t, "accuracy", 1000, why))["id"] == "b1");
  REQUIRE(why["best"] == "b0");
  REQUIRE(why["standard_error"].get<double>() == Approx(std::sqrt(0.915 * 0.085 / 1000)));
  // n = 100000: 0.09 points; b0 stays.
  REQUIRE((*choose_trial(t, "accuracy", 100000, why))["id"] == "b0");
  // Another objective: the smallest meeting every constraint, no rule.
  REQUIRE((*choose_trial(t, "bytes", 1000, why))["id"] == "b0");
  t.resize(1);
  t[0]["misses"] = {"validation below min_accuracy"};
  REQUIRE(choose_trial(t, "accuracy", 1000, why) == nullptr);
}

TEST_CASE("pareto front: what no other point beats") {
  // (quality, cost): higher quality and lower cost are better.
  const std::vector<std::pair<double, double>> pts = {{0.90, 100}, {0.92, 200}, {0.91, 300},
                                                      {0.92, 150}, {0.85, 50},  {0.92, 150}};
  REQUIRE(pareto_front(pts) == std::vector<size_t>{0, 3, 4});  // the tie at index 5 keeps the first
  REQUIRE(pareto_front({}).empty());
  REQUIRE(pareto_front({{0.5, 1}}) == std::vector<size_t>{0});
}

TEST_CASE("tune report: every trial drawn on both charts, the chosen one marked, facts in report.md") {
  nlohmann::json trials = nlohmann::json::array();
  for (int i = 0; i < 7; ++i) {
    trials.push_back(
        {{"id", "c0" + std::to_string(i) + "r0"},
         {"rung", i / 4},
         {"epoch_scale", i < 4 ? 0.5 : 1.0},
         {"config", {{"sparsity", 0.1 * i}}},
         {"supervision", i % 3 == 0 ? "labels" : "teacher"},
         {"accuracy", 0.8 + 0.01 * i},
         {"fp32_accuracy", 0.81 + 0.01 * i},
         {"bytes", 1000 + 500 * (i % 4)},
         {"latency_ms_b1", 0.01 * (1 + i % 3)},
         {"misses", i == 2 ? nlohmann::json{"2000 bytes > max_bytes 1800"} : nlohmann::json::array()},
         {"seconds", 3.0}});
  }
  const nlohmann::json report = {
      {"recipe", "t<&>"},
      {"tune",
       {{"constraints",
         {{"min_accuracy", 80.0},
          {"max_accuracy_drop", -1.0},
          {"max_bytes", 1800},
          {"max_latency_ms", 0.0},
          {"threads", 1}}},
        {"objective", "accuracy"},
        {"search", {{"eta", 2}}}}},
      {"plan", {{{"trials", 4}, {"epoch_scale", 0.5}}, {{"trials", 3}, {"epoch_scale", 1.0}}}},
      {"configurations", 7},
      {"teacher_validation_accuracy", 0.9},
      {"trials", trials},
      {"pareto", {{"bytes", {"c06r0", "c04r0", "c00r0"}}, {"latency_ms_b1", {"c06r0", "c03r0"}}}},
      {"supervision",
       {{"rung", 1},
        {"distilled", {{"id", "c05r0"}, {"accuracy", 0.85}}},
        {"labels", {{"id", "c06r0"}, {"accuracy", 0.86}}},
        {"winner", "labels"}}},
      {"budget", {{"minutes", 5.0}, {"trial_seconds", 21.0}, {"stopped_search", false}}},
      {"chosen", "c06r0"},
      {"sensitivity",
       nlohmann::json::array({nlohmann::json{{"layer", "fc"}, {"quality", 85.0}, {"gain", 0.5}},
                              nlohmann::json{{"layer", "out"}, {"quality", 84.0}, {"gain", -0.5}}})}};
  const std::string md = tune_markdown(report);
  REQUIRE_THAT(md, Catch::Contains("**Chosen: c06r0**") && Catch::Contains("**labels alone** won") &&
                       Catch::Contains("| c06r0 (chosen) | 1 |") &&
                       Catch::Contains("2000 bytes > max_bytes 1800") &&
                       Catch::Contains("| fc | 85.00 | +0.50 |"));
  const std::string html = tune_html(report, md);
  // Each trial once per trial chart (the Pareto front and the limits are lines without markers), the two
  // layers once: 7 + 7 + 2 points.
  REQUIRE(count(html, "<circle class=\"point") == 16);
  REQUIRE(count(html, "data-chart=\"tune_bytes\"") >= 7);
  REQUIRE_THAT(html, Catch::Contains("chosen: c06r0") && Catch::Contains("t&lt;&amp;&gt;") &&
                         Catch::Contains("Pareto front"));
  REQUIRE(html.find("<script") == std::string::npos);
}
