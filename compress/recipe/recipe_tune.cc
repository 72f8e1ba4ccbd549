// The recipe's `tune` block (TuneSpec, compress/recipe/recipe.h): read strictly, checked against the rest of
// the recipe (a search dimension needs the stage or the teacher it varies), written back resolved.
#include <algorithm>

#include <fmt/format.h>

#include "compress/recipe/recipe_internal.h"

namespace mighty::compress::detail {
namespace {

bool has_stage(const Recipe& r, const char* kind) {
  return std::any_of(r.stages.begin(), r.stages.end(), [&](const StageSpec& s) { return s.kind == kind; });
}

// A list of choices, each one of `options`, without repeats.
std::vector<std::string> choices(JsonReader& j, const char* key, std::initializer_list<const char*> options) {
  auto list = j.string_list(key, std::vector<std::string>{});
  for (size_t i = 0; i < list.size(); ++i) {
    if (std::find(options.begin(), options.end(), list[i]) == options.end()) {
      std::string names;
      for (const char* o : options) names += fmt::format("{}'{}'", names.empty() ? "" : ", ", o);
      j.fail_at_path(fmt::format("{}/{}", key, i), fmt::format("'{}' is not one of {}", list[i], names));
    }
    if (std::find(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(i), list[i]) !=
        list.begin() + static_cast<std::ptrdiff_t>(i))
      j.fail_at_path(fmt::format("{}/{}", key, i), fmt::format("'{}' is listed twice", list[i]));
  }
  return list;
}

std::vector<double> values(JsonReader& j, const char* key, Range range) {
  auto list = j.number_list(key, std::vector<double>{}, range);
  for (size_t i = 0; i < list.size(); ++i)
    for (size_t k = 0; k < i; ++k)
      if (list[k] == list[i])
        j.fail_at_path(fmt::format("{}/{}", key, i), fmt::format("{} is listed twice", list[i]));
  return list;
}

TuneSpace read_space(JsonReader s, const Recipe& r) {
  TuneSpace t;
  t.width = values(s, "width", {0.0, 16.0, true, false});
  t.depth = values(s, "depth", {0.0, 16.0, true, false});
  // An empty list is the same as no list (the resolved recipe writes every key).
  const bool zoo_teacher = r.teacher_spec.source == "train" || r.teacher_spec.source == "checkpoint";
  if ((!t.width.empty() || !t.depth.empty()) && !zoo_teacher)
    s.fail_at(t.width.empty() ? "depth" : "width",
              "the student is derived from the teacher's zoo spec, and this teacher has none");
  if (s.has("students")) {
    const size_t n = s.object_list("students").size();
    if (n > 0 && (!t.width.empty() || !t.depth.empty()))
      s.fail_at("students", "give either 'students' or 'width'/'depth', not both");
    for (size_t i = 0; i < n; ++i) t.students.push_back(read_model_spec(s, "students", i, r.data.kind));
  }
  t.supervision = choices(s, "supervision", {"teacher", "labels"});
  t.alpha = values(s, "alpha", {0.0, 1.0});
  t.temperature = values(s, "temperature", {0.0, 100.0, true, false});
  t.mixup = values(s, "mixup", {0.0, 100.0});
  const auto needs = [&](const char* kind, std::initializer_list<std::pair<const char*, size_t>> keys,
                         const char* what) {
    for (const auto& [key, size] : keys)
      if (size > 0 && !has_stage(r, kind)) s.fail_at(key, what);
  };
  needs("distill",
        {{"supervision", t.supervision.size()},
         {"alpha", t.alpha.size()},
         {"temperature", t.temperature.size()},
         {"mixup", t.mixup.size()}},
        "varies the distill stage, and the recipe has none");
  if (r.data.kind != "images" && !t.mixup.empty() &&
      std::any_of(t.mixup.begin(), t.mixup.end(), [](double m) { return m > 0; }))
    s.fail_at("mixup", "mixup is for images only");
  t.prune_method = choices(s, "prune_method", {"magnitude", "block", "n:m"});
  t.sparsity = values(s, "sparsity", {0.0, 1.0, false, true});
  needs("prune", {{"prune_method", t.prune_method.size()}, {"sparsity", t.sparsity.size()}},
        "varies the prune stage (its fine-tuning is the template), and the recipe has none");
  t.observer = choices(s, "observer", {"minmax", "percentile", "mse", "entropy"});
  t.activations = choices(s, "activations", {"static", "dynamic"});
  t.fallback = choices(s, "fallback", {"none", "fp32", "dynamic"});
  t.fallback_max_drop = s.number("fallback_max_drop", t.fallback_max_drop, {0.0, 100.0});
  needs("quantize",
        {{"observer", t.observer.size()},
         {"activations", t.activations.size()},
         {"fallback", t.fallback.size()}},
        "varies the quantize stage, and the recipe has none");
  s.finish();
  return t;
}

}  // namespace

void read_tune(JsonReader& root, Recipe& r) {
  if (!root.has("tune")) return;
  auto t = root.object("tune");
  TuneSpec& spec = r.tune;
  spec.present = true;
  if (r.student.arch.empty() || !r.student_torchscript.empty() || !r.student_onnx.empty())
    t.fail("tune needs a zoo student ('student': 'model' or 'from_teacher')");
  if (!r.data.kind.empty() && r.data.kind == "text")
    t.fail("tune selects classifiers by accuracy; text (language-model) recipes are not supported");
  for (const char* kind : {"quantize", "export"}) {
    if (!has_stage(r, kind))
      t.fail(fmt::format("tune measures every trial's exported int8 model: the recipe needs a '{}' stage",
                         kind));
  }
  auto c = t.object("constraints", /*optional=*/true);
  TuneConstraints& k = spec.constraints;
  k.min_accuracy = c.number("min_accuracy", k.min_accuracy, {-1.0, 100.0});
  k.max_accuracy_drop = c.number("max_accuracy_drop", k.max_accuracy_drop, {-1.0, 100.0});
  k.max_bytes = c.integer("max_bytes", k.max_bytes, 0, kMaxCount);
  k.max_latency_ms = c.number("max_latency_ms", k.max_latency_ms, {0.0, 1e9});
  k.threads = c.integer("threads", k.threads, 1, 1024);
  c.finish();
  spec.objective = t.choice("objective", spec.objective, {"accuracy", "bytes", "latency"});
  spec.space = read_space(t.object("space", /*optional=*/true), r);
  auto s = t.object("search", /*optional=*/true);
  TuneSearch& x = spec.search;
  x.trials = s.integer("trials", x.trials, 1, 10000);
  x.eta = s.integer("eta", x.eta, 2, 100);
  x.rungs = s.integer("rungs", x.rungs, 1, 20);
  x.max_epoch_scale = s.number("max_epoch_scale", x.max_epoch_scale, {0.0, 100.0, true, false});
  x.seed = static_cast<uint64_t>(s.integer("seed", static_cast<int64_t>(r.seed), 0, INT64_MAX));
  x.latency_runs = s.integer("latency_runs", x.latency_runs, 1, 1000000);
  s.finish();
  t.finish();
}

nlohmann::json tune_to_json(const TuneSpec& t) {
  const TuneConstraints& k = t.constraints;
  const TuneSpace& s = t.space;
  const TuneSearch& x = t.search;
  // The space's lists as given: an absent list keeps the recipe's own value.
  nlohmann::json space = {{"fallback_max_drop", s.fallback_max_drop}};
  auto put = [&](const char* key, const auto& list) {
    if (!list.empty()) space[key] = list;
  };
  nlohmann::json students = nlohmann::json::array();
  for (const auto& m : s.students) students.push_back(model_spec_to_json(m));
  put("students", students);
  s.each_list(put);
  return {{"constraints",
           {{"min_accuracy", k.min_accuracy},
            {"max_accuracy_drop", k.max_accuracy_drop},
            {"max_bytes", k.max_bytes},
            {"max_latency_ms", k.max_latency_ms},
            {"threads", k.threads}}},
          {"objective", t.objective},
          {"space", space},
          {"search",
           {{"trials", x.trials},
            {"eta", x.eta},
            {"rungs", x.rungs},
            {"max_epoch_scale", x.max_epoch_scale},
            {"seed", x.seed},
            {"latency_runs", x.latency_runs}}}};
}

}  // namespace mighty::compress::detail
