#include "compress/tune/tune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "compress/data/data.h"
#include "compress/pipeline/jobs.h"
#include "compress/pipeline/pipeline.h"
#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"
#include "runtime/io/timing.h"

namespace mighty::compress {
namespace {

constexpr uint64_t kSampleStream = 0x74756e65;  // "tune": the configurations' draw
constexpr int kFormat = 1;                      // of result.json and tune.json: part of their identity

struct Dimension {
  const char* key;
  std::vector<nlohmann::json> values;
};

std::vector<Dimension> dimensions(const TuneSpace& s) {
  std::vector<Dimension> out;
  auto add = [&](const char* key, const auto& list) {
    if (list.empty()) return;
    out.push_back({key, {list.begin(), list.end()}});
  };
  if (!s.students.empty()) {
    std::vector<int64_t> index(s.students.size());
    for (size_t i = 0; i < index.size(); ++i) index[i] = static_cast<int64_t>(i);
    add("student", index);
  }
  s.each_list(add);
  return out;
}

const StageSpec* find_stage(const Recipe& r, const char* kind) {
  for (const auto& s : r.stages)
    if (s.kind == kind) return &s;
  return nullptr;
}

// Choices that do not change the trial are dropped, so equal trials are one configuration.
nlohmann::json normalized(nlohmann::json c, const Recipe& r) {
  if (c.value("supervision", "") == "labels") {
    c.erase("alpha");
    c.erase("temperature");
  }
  if (c.contains("sparsity") && c["sparsity"].get<double>() == 0.0) c.erase("prune_method");
  const StageSpec* prune = find_stage(r, "prune");
  const std::string method = c.contains("prune_method") ? c["prune_method"].get<std::string>()
                             : prune                    ? prune->get<PruneSpec>().method
                                                        : "";
  if (method == "n:m" && c.value("sparsity", 1.0) > 0.0 && c.contains("sparsity")) {
    const PruneSpec& p = prune->get<PruneSpec>();  // n:m keeps n of m: its sparsity is fixed
    c["sparsity"] = 1.0 - static_cast<double>(p.n) / static_cast<double>(p.m);
  }
  return c;
}

void scale_training(nlohmann::json& train, double scale) {
  const char* key = train.contains("epochs") ? "epochs" : "steps";
  const auto before = train[key].get<int64_t>();
  const int64_t after = std::max<int64_t>(1, std::llround(static_cast<double>(before) * scale));
  train[key] = after;
  const double ratio = static_cast<double>(after) / static_cast<double>(before);
  train["warmup_steps"] = std::llround(train["warmup_steps"].get<double>() * ratio);
}

std::string trial_id(size_t config, size_t rung) { return fmt::format("c{:02}r{}", config, rung); }

// What a trial is judged by.
struct Judged {
  std::vector<std::string> misses;  // the constraints it does not meet
  bool hard_ok = true;              // bytes and latency (what more training does not change)
};

Judged judge(const nlohmann::json& t, const TuneConstraints& k, double teacher_accuracy) {
  Judged j;
  const double acc = 100.0 * t["accuracy"].get<double>();
  if (k.max_bytes > 0 && t["bytes"].get<int64_t>() > k.max_bytes) {
    j.misses.push_back(fmt::format("{} bytes > max_bytes {}", t["bytes"].get<int64_t>(), k.max_bytes));
    j.hard_ok = false;
  }
  if (k.max_latency_ms > 0 && t["latency_ms_b1"].get<double>() > k.max_latency_ms) {
    j.misses.push_back(
        fmt::format("{:.4f} ms > max_latency_ms {}", t["latency_ms_b1"].get<double>(), k.max_latency_ms));
    j.hard_ok = false;
  }
  if (k.min_accuracy >= 0 && acc < k.min_accuracy)
    j.misses.push_back(fmt::format("validation {:.2f}% < min_accuracy {}", acc, k.min_accuracy));
  if (k.max_accuracy_drop >= 0 && teacher_accuracy - acc > k.max_accuracy_drop)
    j.misses.push_back(fmt::format("validation {:.2f}% is {:.2f} points below the teacher's {:.2f}% > {}",
                                   acc, teacher_accuracy - acc, teacher_accuracy, k.max_accuracy_drop));
  return j;
}

// Better first: meeting bytes and latency, then the objective (accuracy: higher; bytes/latency: lower), then
// accuracy, then the trial's order.
bool better(const nlohmann::json& a, const nlohmann::json& b, const std::string& objective) {
  const bool ha = a["hard_ok"].get<bool>(), hb = b["hard_ok"].get<bool>();
  if (ha != hb) return ha;
  if (objective != "accuracy") {
    const char* key = objective == "bytes" ? "bytes" : "latency_ms_b1";
    const double va = a[key].get<double>(), vb = b[key].get<double>();
    if (va != vb) return va < vb;
  }
  const double aa = a["accuracy"].get<double>(), ab = b["accuracy"].get<double>();
  if (aa != ab) return aa > ab;
  return a["order"].get<int64_t>() < b["order"].get<int64_t>();
}

struct Search {
  const Recipe& recipe;
  const TuneOptions& options;
  Dataset trial_data;  // the test split replaced by the validation split
  double teacher_accuracy = -1.0;
  double spent_seconds = 0.0;     // the trials' (a parallel round: its longest), every invocation's
  double overhead_seconds = 0.0;  // this invocation's before the first trial: data, teacher, pre-checks
  int64_t order = 0;
};

// Batch-1 latency (and batch-64 throughput) of an artifact in the runtime at the constraint's threads;
// `alone`: nothing else of this search ran meanwhile.
nlohmann::json measure_speed_of(const Session& s, const Dataset& data, const TuneSpec& tune, bool alone) {
  const Forward f = session_forward(s);
  torch::NoGradGuard no_grad;
  const auto one = example_input(data, 1), batch = example_input(data, 64);
  auto speed = measure_latency([&] { f(one); }, [&] { f(batch); }, tune.search.latency_runs, 64);
  return {{"latency_ms_b1", speed["latency_ms_b1"]},
          {"latency_ms_b1_p99", speed["latency_ms_b1_p99"]},
          {"throughput_b64", speed["throughput_per_s"]},
          {"threads", tune.constraints.threads},
          {"latency_alone", alone}};
}

Session open_session(const std::string& path, const TuneSpec& tune) {
  return Session(Artifact::open(path), static_cast<int>(tune.constraints.threads));
}

// The trial's int8 artifact in the runtime: validation accuracy, bytes, batch-1 latency.
nlohmann::json measure_artifact(const std::string& path, const Dataset& data, const TuneSpec& tune) {
  const Session s = open_session(path, tune);
  const auto val = evaluate_forward(session_forward(s), data, Split::kValidation);
  nlohmann::json r = {{"accuracy", val["accuracy"]},
                      {"loss", val["loss"]},
                      {"bytes", static_cast<int64_t>(std::filesystem::file_size(path))}};
  r.update(measure_speed_of(s, data, tune, !dist::joined()));
  return r;
}

// A compress run of tune's (a trial or a pre-check) in `dir`, from the resolved recipe `rj` written there as
// `name`. Returns the record of an earlier run with the same identity (recipe, data, how it is measured) when
// there is one; else runs it (resumed from its checkpoints) and returns {"identity", "report"}.
nlohmann::json run_job(Search& s, const std::string& dir, const nlohmann::json& rj, const std::string& name,
                       const std::string& teacher_cache_dir, const std::string& announce) {
  const Recipe r = parse_recipe(rj.dump(2), dir + "/" + name);
  const TuneSpec& tune = s.recipe.tune;
  const std::string identity =
      hash64_hex(fmt::format("{}/{}/{}/{}/v{}", r.hash(), s.trial_data.hash, tune.constraints.threads,
                             tune.search.latency_runs, kFormat));
  auto done = completed_record(dir + "/result.json", {dir + "/model.mighty"}, "identity", identity);
  if (!done.is_null()) return {{"done", done}};
  if (!announce.empty()) fmt::print(stderr, "{}\n", announce);
  ensure_run_dir(dir);
  write_text(dir + "/" + name, rj.dump(2) + "\n");
  JobOptions jo;
  jo.out_dir = dir;
  jo.resume = true;  // a tune job's directory is always continued
  jo.measure_speed = false;
  jo.quiet = true;
  jo.teacher_cache_dir = teacher_cache_dir;
  return {{"identity", identity}, {"report", run_compress(r, s.trial_data, jo)}};
}

// One trial: a compress run without verify in trials/<id>, then its artifact measured. Null when stopped.
nlohmann::json run_trial(Search& s, size_t config_index, const nlohmann::json& config, size_t rung,
                         double scale) {
  const std::string id = trial_id(config_index, rung);
  const std::string dir = s.options.out_dir + "/trials/" + id;
  const auto t0 = std::chrono::steady_clock::now();
  // Every trial draws the same batches: the teacher's logits are computed once, in DIR/teacher_logits.
  const nlohmann::json job = run_job(
      s, dir, trial_recipe(s.recipe, config, scale), "trial.json", s.options.out_dir + "/teacher_logits",
      fmt::format("tune: trial {} (rung {}, epochs x{:.3g}): {}", id, rung, scale, config.dump()));
  if (job.contains("done")) {
    fmt::print(stderr, "tune: trial {} done earlier ({}/result.json)\n", id, dir);
    return job["done"];
  }
  const nlohmann::json& report = job["report"];
  const std::string identity = job["identity"];
  const std::string result_path = dir + "/result.json";
  if (!report.value("completed", false)) return nullptr;
  nlohmann::json r = measure_artifact(dir + "/model.mighty", s.trial_data, s.recipe.tune);
  const auto& models = report.at("models");
  r.update({{"identity", identity},
            {"id", id},
            {"config_index", config_index},
            {"config", config},
            {"rung", rung},
            {"epoch_scale", scale},
            {"supervision", config.value("supervision", "teacher")},
            {"params", models[1].at("params")},
            {"fp32_accuracy", models[1].at("accuracy")},
            {"teacher_accuracy", models[0].at("accuracy")},
            {"rank", dist::rank()},
            {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
  for (const auto& st : report.at("stages")) {
    if (st.value("kind", "") == "quantize" && st.contains("accuracy_control"))
      r["fallen_back"] = st["accuracy_control"].at("final").at("layers_fallen_back");
  }
  write_json(result_path, r);
  fmt::print(stderr, "tune: trial {}: validation {:.2f}%, {} bytes, {:.4f} ms ({:.0f} s)\n", id,
             100.0 * r["accuracy"].get<double>(), r["bytes"].get<int64_t>(), r["latency_ms_b1"].get<double>(),
             r["seconds"].get<double>());
  return r;
}

// What decides an artifact's bytes and its batch-1 latency: the student, its pruning and how its
// activations are quantized; not how it is trained.
constexpr const char* kShapeKeys[] = {"student", "width", "depth", "prune_method", "sparsity", "activations"};
// A shape is left out before training when its pre-check artifact is more than this over a limit: training
// can only make a few more int8 weights round to zero (fewer stored bytes), and latency is noisy.
constexpr double kPrecheckBytesSlack = 0.03, kPrecheckLatencySlack = 0.5;

nlohmann::json shape_of(const nlohmann::json& config) {
  nlohmann::json s = nlohmann::json::object();
  for (const char* key : kShapeKeys)
    if (config.contains(key)) s[key] = config[key];
  return s;
}

}  // namespace

nlohmann::json precheck_recipe(const Recipe& recipe, const nlohmann::json& shape) {
  nlohmann::json c = shape_of(shape);
  c["supervision"] = "labels";
  nlohmann::json j = trial_recipe(recipe, c, 1.0);
  j["name"] = recipe.name + "-precheck";
  for (auto& s : j["stages"]) {
    if (s.contains("train")) {
      s["train"].erase("epochs");
      s["train"]["steps"] = 1;
      s["train"]["warmup_steps"] = 0;
    }
    if (s["kind"] == "distill") s["teacher_cache"] = false;
    if (s["kind"] == "quantize") {
      // The scales' observer does not change bytes or latency: the fastest, on fewer examples.
      s["observer"] = "minmax";
      const auto examples = s["calibration_examples"].get<int64_t>();  // 0: the whole calibration split
      s["calibration_examples"] = examples == 0 ? 256 : std::min<int64_t>(examples, 256);
      s["accuracy_control"]["max_drop"] = -1.0;  // an untrained model would keep its layers in fp32
      s["accuracy_control"]["sensitivity"] = false;
    }
  }
  return j;
}

std::vector<nlohmann::json> space_configurations(const Recipe& recipe) {
  const auto dims = dimensions(recipe.tune.space);
  uint64_t total = 1;
  for (const auto& d : dims) {
    total *= d.values.size();
    if (total > 1000000)
      throw Error(
          fmt::format("{}: /tune/space: more than 1,000,000 configurations; narrow the lists", recipe.file));
  }
  std::vector<nlohmann::json> all;
  std::set<std::string> seen;
  for (uint64_t i = 0; i < total; ++i) {
    uint64_t k = i;
    nlohmann::json c = nlohmann::json::object();
    for (const auto& d : dims) {
      c[d.key] = d.values[k % d.values.size()];
      k /= d.values.size();
    }
    c = normalized(c, recipe);
    if (seen.insert(c.dump()).second) all.push_back(c);
  }
  return all;
}

std::vector<nlohmann::json> draw_configurations(const Recipe& recipe,
                                                const std::vector<nlohmann::json>& all) {
  const auto trials = static_cast<size_t>(recipe.tune.search.trials);
  if (all.size() <= trials) return all;
  auto rng = make_rng(recipe.tune.search.seed, kSampleStream, 0);
  const auto order = permutation(static_cast<int64_t>(all.size()), rng);
  std::vector<nlohmann::json> out;
  for (size_t i = 0; i < trials; ++i) out.push_back(all[static_cast<size_t>(order[i])]);
  return out;
}

std::vector<nlohmann::json> tune_configurations(const Recipe& recipe) {
  return draw_configurations(recipe, space_configurations(recipe));
}

std::vector<std::pair<int64_t, double>> tune_rungs(const TuneSearch& search, int64_t configurations) {
  int64_t rungs = 1;
  for (int64_t n = configurations; rungs < search.rungs && n / search.eta >= 1; n /= search.eta) ++rungs;
  std::vector<std::pair<int64_t, double>> out;
  int64_t n = configurations;
  for (int64_t r = 0; r < rungs; ++r) {
    out.emplace_back(n, search.max_epoch_scale /
                            std::pow(static_cast<double>(search.eta), static_cast<double>(rungs - 1 - r)));
    n = std::max<int64_t>(1, n / search.eta);
  }
  return out;
}

nlohmann::json trial_recipe(const Recipe& recipe, const nlohmann::json& config, double epoch_scale) {
  nlohmann::json j = recipe.to_json();
  j.erase("tune");
  j["name"] = recipe.name + "-trial";
  if (config.contains("student")) {
    j["student"] = {
        {"model", model_spec_to_json(recipe.tune.space.students.at(config["student"].get<size_t>()))}};
  } else if (config.contains("width") || config.contains("depth")) {
    j["student"] = {
        {"from_teacher", {{"width", config.value("width", 1.0)}, {"depth", config.value("depth", 1.0)}}}};
  }
  const bool labels = config.value("supervision", "teacher") == "labels";
  nlohmann::json stages = nlohmann::json::array();
  for (nlohmann::json s : j["stages"]) {
    const std::string kind = s["kind"];
    if (kind == "verify") continue;  // trials are judged on the validation split, by tune
    if (kind == "distill") {
      s["alpha"] = labels ? 0.0 : config.value("alpha", s["alpha"].get<double>());
      s["temperature"] = config.value("temperature", s["temperature"].get<double>());
      s["mixup"] = config.value("mixup", s["mixup"].get<double>());
      s["baseline"] = false;
      s["repeats"] = 1;
      // Trials share the seed, so their batches: the teacher's logits are computed once (tune's cache).
      if (s["features"].empty()) s["teacher_cache"] = true;
    } else if (kind == "prune") {
      if (config.contains("sparsity") && config["sparsity"].get<double>() == 0.0) continue;
      if (config.contains("sparsity")) s["sparsity"] = config["sparsity"];
      if (config.contains("prune_method")) s["method"] = config["prune_method"];
      if (labels) s["alpha"] = 0.0;
    } else if (kind == "quantize") {
      if (config.contains("observer")) s["observer"] = config["observer"];
      if (config.contains("activations")) s["activations"] = config["activations"];
      if (config.contains("fallback")) {
        const std::string f = config["fallback"];
        s["accuracy_control"] = {
            {"max_drop", f == "none" ? -1.0 : recipe.tune.space.fallback_max_drop},
            {"fallback", f == "none" ? s["accuracy_control"].value("fallback", "fp32") : f}};
      }
    } else if (kind == "export") {
      s["onnx"] = false;  // the runtime's artifact is what a trial is judged by
    }
    if (s.contains("train")) scale_training(s["train"], epoch_scale);
    stages.push_back(s);
  }
  j["stages"] = stages;
  return j;
}

// The chosen trial: the best of those meeting every constraint on the validation split. For accuracy, the
// one-standard-error rule: of the trials within one standard error of the best (a binomial's, on `examples`),
// the one trained longest (highest rung), then the best. The best of many short trials is the likeliest to
// be ahead by chance. Null when none meets them; `why` says what was chosen and how.
const nlohmann::json* choose_trial(const std::vector<nlohmann::json>& trials, const std::string& objective,
                                   int64_t examples, nlohmann::json& why) {
  const nlohmann::json* best = nullptr;
  for (const auto& t : trials)
    if (t["misses"].empty() && (!best || better(t, *best, objective))) best = &t;
  if (!best || objective != "accuracy") return best;
  const double p = (*best)["accuracy"].get<double>();
  const double se = std::sqrt(p * (1.0 - p) / static_cast<double>(std::max<int64_t>(1, examples)));
  const nlohmann::json* chosen = best;
  for (const auto& t : trials) {
    if (!t["misses"].empty() || t["accuracy"].get<double>() < p - se) continue;
    const auto rt = t["rung"].get<size_t>(), rc = (*chosen)["rung"].get<size_t>();
    if (rt > rc || (rt == rc && better(t, *chosen, objective))) chosen = &t;
  }
  why = {{"best", (*best)["id"]},
         {"standard_error", se},
         {"examples", examples},
         {"rule",
          "of the trials meeting every constraint within one standard error of the best, the one "
          "trained longest, then the best"}};
  return chosen;
}

std::vector<size_t> pareto_front(const std::vector<std::pair<double, double>>& qc) {
  std::vector<size_t> out;
  for (size_t i = 0; i < qc.size(); ++i) {
    bool beaten = false;
    for (size_t k = 0; k < qc.size() && !beaten; ++k) {
      if (k == i) continue;
      const bool no_worse = qc[k].first >= qc[i].first && qc[k].second <= qc[i].second;
      const bool strictly = qc[k].first > qc[i].first || qc[k].second < qc[i].second;
      beaten = no_worse && (strictly || k < i);
    }
    if (!beaten) out.push_back(i);
  }
  return out;
}

namespace {

// The seconds a trial of rung `r` is expected to take: the mean of this rung's finished trials, else the
// rung before's scaled by the epochs; 0 before anything has run.
double predicted_seconds(const std::vector<nlohmann::json>& done, size_t rung,
                         const std::vector<std::pair<int64_t, double>>& rungs) {
  for (size_t r = rung + 1; r-- > 0;) {
    double sum = 0.0;
    int n = 0;
    for (const auto& t : done) {
      if (t["rung"].get<size_t>() != r) continue;
      sum += t["seconds"].get<double>();
      ++n;
    }
    if (n > 0) return sum / n * rungs[rung].second / rungs[r].second;
  }
  return 0.0;
}

// Distilled against labels alone: the best of each at the highest rung where both ran.
nlohmann::json supervision_comparison(const std::vector<nlohmann::json>& trials) {
  nlohmann::json out = nullptr;
  for (size_t rung = 0;; ++rung) {
    const nlohmann::json* best[2] = {nullptr, nullptr};
    bool any = false;
    for (const auto& t : trials) {
      if (t["rung"].get<size_t>() != rung) continue;
      any = true;
      const int k = t["supervision"] == "labels" ? 1 : 0;
      if (!best[k] || t["accuracy"].get<double>() > (*best[k])["accuracy"].get<double>()) best[k] = &t;
    }
    if (!any) break;
    if (!best[0] || !best[1]) continue;
    const double d = (*best[0])["accuracy"].get<double>(), l = (*best[1])["accuracy"].get<double>();
    out = {{"rung", rung},
           {"distilled", {{"id", (*best[0])["id"]}, {"accuracy", d}}},
           {"labels", {{"id", (*best[1])["id"]}, {"accuracy", l}}},
           {"winner", d >= l ? "distilled" : "labels"}};
  }
  return out;
}

nlohmann::json fronts(const std::vector<nlohmann::json>& trials) {
  nlohmann::json out;
  for (const char* cost : {"bytes", "latency_ms_b1"}) {
    std::vector<std::pair<double, double>> qc;
    for (const auto& t : trials) qc.emplace_back(t["accuracy"].get<double>(), t[cost].get<double>());
    nlohmann::json ids = nlohmann::json::array();
    for (size_t i : pareto_front(qc)) ids.push_back(trials[i]["id"]);
    out[cost] = ids;
  }
  return out;
}

// The chosen trial's recipe for the final run: its trained student from the trial's checkpoint, then its
// quantize stage (with every layer's sensitivity measured), the recipe's export, and verify with the
// recipe's criteria tightened by the constraints.
nlohmann::json final_recipe(const Recipe& recipe, const std::string& trial_dir) {
  const std::string trial_path = trial_dir + "/trial.json";
  const Recipe tr = load_recipe(trial_path);
  nlohmann::json j = recipe.to_json();
  j.erase("tune");
  j["student"] = {{"model", model_spec_to_json(tr.student)},
                  {"checkpoint", std::filesystem::absolute(trial_dir + "/student.pt").string()}};
  nlohmann::json exp = {{"kind", "export"}}, verify = {{"kind", "verify"}};
  for (const auto& s : j["stages"]) {
    if (s["kind"] == "export") exp = s;
    if (s["kind"] == "verify") verify = s;
  }
  nlohmann::json quantize;
  const nlohmann::json trial_stages = tr.to_json()["stages"];
  for (const auto& s : trial_stages)
    if (s["kind"] == "quantize") quantize = s;
  quantize["accuracy_control"]["sensitivity"] = true;
  const TuneConstraints& k = recipe.tune.constraints;
  auto tighten = [&](const char* key, double value, bool at_most, double off) {
    if (value == off) return;
    const double now = verify.value(key, off);
    verify[key] = now == off ? value : at_most ? std::min(now, value) : std::max(now, value);
  };
  tighten("max_accuracy_drop", k.max_accuracy_drop, true, -1.0);
  tighten("min_accuracy", k.min_accuracy, false, -1.0);
  tighten("max_latency_ms", k.max_latency_ms, true, 0.0);
  if (k.max_bytes > 0) tighten("max_bytes", static_cast<double>(k.max_bytes), true, 0.0);
  if (verify.contains("max_bytes")) verify["max_bytes"] = verify["max_bytes"].get<int64_t>();
  verify["threads"] = k.threads;
  j["stages"] = {quantize, exp, verify};
  return j;
}

// The tune directory's identity: refuses another recipe's trials, and a second run without --resume.
void claim_directory(const Recipe& recipe, const TuneOptions& options, const nlohmann::json& plan) {
  const std::string path = options.out_dir + "/tune.json";
  if (std::filesystem::exists(path)) {
    if (!options.resume)
      throw Error(
          fmt::format("{}: a tune run is here already; continue it with --resume, or choose another --out",
                      options.out_dir));
    const auto old = nlohmann::json::parse(read_file(path), nullptr, false);
    if (old.is_discarded() || old.value("recipe_hash", "") != recipe.hash())
      throw Error(
          fmt::format("{}: tuned with another recipe (or damaged); --resume continues only the same "
                      "recipe's search",
                      path));
  }
  write_json(path, plan);
}

struct Outcome {
  std::vector<nlohmann::json> trials;
  bool budget_stop = false;
  bool completed = true;
};

// The trial files rank 0 needs from the rank that ran a trial: to measure it, to build the final model from
// it.
constexpr const char* kTrialFiles[] = {"trial.json", "model.mighty", "student.pt"};

// One shape's pre-check: the trial's recipe trained one step per stage, quantized and exported in
// DIR/precheck/<id>; its artifact's bytes and batch-1 latency measured as a trial's are. `skip`: the limits
// it breaks beyond the slack (its configurations are left out before any training).
nlohmann::json run_precheck(Search& s, size_t index, const nlohmann::json& shape) {
  const std::string id = fmt::format("s{:02}", index);
  const std::string dir = s.options.out_dir + "/precheck/" + id;
  const nlohmann::json job = run_job(s, dir, precheck_recipe(s.recipe, shape), "precheck.json", "", "");
  if (job.contains("done")) return job["done"];
  if (!job["report"].value("completed", false)) throw Error("tune: a pre-check stopped before its end");
  const TuneSpec& tune = s.recipe.tune;
  const std::string path = dir + "/model.mighty", identity = job["identity"];
  nlohmann::json r = measure_speed_of(open_session(path, tune), s.trial_data, tune, true);
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  const double ms = r["latency_ms_b1"].get<double>();
  const TuneConstraints& k = tune.constraints;
  nlohmann::json skip = nlohmann::json::array();
  if (k.max_bytes > 0 &&
      static_cast<double>(bytes) > static_cast<double>(k.max_bytes) * (1 + kPrecheckBytesSlack))
    skip.push_back(
        fmt::format("{} bytes > max_bytes {} + {:.0f}%", bytes, k.max_bytes, 100 * kPrecheckBytesSlack));
  if (k.max_latency_ms > 0 && ms > k.max_latency_ms * (1 + kPrecheckLatencySlack))
    skip.push_back(fmt::format("{:.4f} ms > max_latency_ms {} + {:.0f}%", ms, k.max_latency_ms,
                               100 * kPrecheckLatencySlack));
  r.update({{"identity", identity}, {"id", id}, {"shape", shape}, {"bytes", bytes}, {"skip", skip}});
  write_json(dir + "/result.json", r);
  fmt::print(stderr, "tune: pre-check {} ({}): {} bytes, {:.4f} ms{}\n", id, shape.dump(), bytes, ms,
             skip.empty() ? "" : "; left out: " + skip[0].get<std::string>());
  return r;
}

// The pre-checks of every shape in the space (none without a bytes or latency limit), rank 0 alone; every
// rank receives the results.
nlohmann::json run_prechecks(Search& s, const std::vector<nlohmann::json>& all) {
  const TuneConstraints& k = s.recipe.tune.constraints;
  nlohmann::json out = nlohmann::json::array();
  if (k.max_bytes <= 0 && k.max_latency_ms <= 0) return out;
  std::vector<nlohmann::json> shapes;
  std::set<std::string> seen;
  for (const auto& c : all) {
    nlohmann::json shape = shape_of(c);
    if (seen.insert(shape.dump()).second) shapes.push_back(std::move(shape));
  }
  if (dist::rank() == 0) {
    dist::Solo solo;
    for (size_t i = 0; i < shapes.size(); ++i) out.push_back(run_precheck(s, i, shapes[i]));
  }
  if (dist::active())
    out = nlohmann::json::parse(dist::broadcast_bytes(dist::rank() == 0 ? out.dump() : "", 0));
  return out;
}

// The configurations whose shape's pre-check broke no limit.
std::vector<nlohmann::json> feasible(const std::vector<nlohmann::json>& all, const nlohmann::json& prechecks,
                                     const std::string& file) {
  std::set<std::string> out_shapes;
  const nlohmann::json* smallest = nullptr;
  for (const auto& p : prechecks) {
    if (!p["skip"].empty()) out_shapes.insert(p["shape"].dump());
    if (!smallest || p["bytes"].get<int64_t>() < (*smallest)["bytes"].get<int64_t>()) smallest = &p;
  }
  std::vector<nlohmann::json> out;
  for (const auto& c : all)
    if (!out_shapes.count(shape_of(c).dump())) out.push_back(c);
  if (out.empty())
    throw Error(
        fmt::format("{}: /tune/space: no student of the space fits the limits, measured on a one-step "
                    "export of each: the smallest, {} ({}), breaks {}",
                    file, (*smallest)["id"].get<std::string>(), (*smallest)["shape"].dump(),
                    (*smallest)["skip"][0].get<std::string>()));
  return out;
}

// A round of trials run side by side, one per rank (each alone: no collective inside a trial), then shared:
// every rank receives every result, rank 0 the files too and measures each artifact's latency while the
// others wait, so no latency is taken while another trial trains. Without a group: the one trial, as it ran.
std::vector<nlohmann::json> run_round(Search& s, const std::vector<nlohmann::json>& configs,
                                      const std::vector<size_t>& round, size_t rung, double scale) {
  const int world = dist::world(), me = dist::rank();
  nlohmann::json mine;
  if (static_cast<size_t>(me) < round.size()) {
    dist::Solo solo;
    mine = run_trial(s, round[static_cast<size_t>(me)], configs[round[static_cast<size_t>(me)]], rung, scale);
    if (mine.is_null()) throw Error("tune: a trial stopped before its end");
  }
  if (world == 1) return {mine};
  std::vector<nlohmann::json> out;
  for (int root = 0; root < world && static_cast<size_t>(root) < round.size(); ++root) {
    nlohmann::json t = nlohmann::json::parse(dist::broadcast_bytes(root == me ? mine.dump() : "", root));
    const std::string dir = s.options.out_dir + "/trials/" + t["id"].get<std::string>();
    for (const char* name : kTrialFiles) {
      const std::string bytes = dist::broadcast_bytes(root == me ? read_file(dir + "/" + name) : "", root);
      if (me == 0 && root != 0) {
        ensure_run_dir(dir);
        write_file_atomic(dir + "/" + name, bytes);
      }
    }
    out.push_back(t);
  }
  if (me == 0) {
    for (auto& t : out) {
      if (t.value("latency_alone", false)) continue;  // read back from an earlier run
      const std::string dir = s.options.out_dir + "/trials/" + t["id"].get<std::string>();
      t.update(measure_speed_of(open_session(dir + "/model.mighty", s.recipe.tune), s.trial_data,
                                s.recipe.tune, true));
      write_json(dir + "/result.json", t);
      fmt::print(stderr, "tune: trial {} (rank {}): validation {:.2f}%, {} bytes, {:.4f} ms alone\n",
                 t["id"].get<std::string>(), t.value("rank", 0), 100.0 * t["accuracy"].get<double>(),
                 t["bytes"].get<int64_t>(), t["latency_ms_b1"].get<double>());
    }
  }
  return nlohmann::json::parse(dist::broadcast_bytes(me == 0 ? nlohmann::json(out).dump() : "", 0))
      .get<std::vector<nlohmann::json>>();
}

Outcome search(Search& s, const std::vector<nlohmann::json>& configs,
               const std::vector<std::pair<int64_t, double>>& rungs) {
  Outcome o;
  const double budget = s.options.budget_minutes * 60.0;
  const auto world = static_cast<size_t>(dist::world());
  std::vector<size_t> alive(static_cast<size_t>(rungs[0].first));
  for (size_t i = 0; i < alive.size(); ++i) alive[i] = i;
  for (size_t r = 0; r < rungs.size(); ++r) {
    std::vector<nlohmann::json> rung;
    for (size_t k = 0; k < alive.size(); k += world) {
      // The same decision on every rank (from the shared results). 10% of the budget is kept for the final
      // model's export and verify.
      if (budget > 0 && !o.trials.empty() &&
          s.overhead_seconds + s.spent_seconds + predicted_seconds(o.trials, r, rungs) > 0.9 * budget) {
        fmt::print(stderr,
                   "tune: the budget ({} min) would be exceeded by the next trial; stopping the search\n",
                   s.options.budget_minutes);
        o.budget_stop = true;
        return o;
      }
      const std::vector<size_t> round(
          alive.begin() + static_cast<std::ptrdiff_t>(k),
          alive.begin() + static_cast<std::ptrdiff_t>(std::min(k + world, alive.size())));
      double longest = 0.0;  // the round's wall time: its trials ran side by side
      for (nlohmann::json& t : run_round(s, configs, round, r, rungs[r].second)) {
        if (s.teacher_accuracy < 0) s.teacher_accuracy = 100.0 * t["teacher_accuracy"].get<double>();
        const Judged j = judge(t, s.recipe.tune.constraints, s.teacher_accuracy);
        t["hard_ok"] = j.hard_ok;
        t["misses"] = j.misses;
        t["order"] = s.order++;
        longest = std::max(longest, t["seconds"].get<double>());
        rung.push_back(t);
        o.trials.push_back(t);
      }
      s.spent_seconds += longest;
    }
    if (r + 1 == rungs.size()) break;
    std::sort(rung.begin(), rung.end(),
              [](const auto& a, const auto& b) { return better(a, b, "accuracy"); });
    alive.clear();
    for (int64_t i = 0; i < rungs[r + 1].first; ++i)
      alive.push_back(rung[static_cast<size_t>(i)]["config_index"]);
    fmt::print(stderr, "tune: rung {} done; promoting {} of {} to epochs x{:.3g}\n", r, alive.size(),
               rung.size(), rungs[r + 1].second);
  }
  return o;
}

// The final model: the chosen trial's student exported and verified as mighty compress does, on the test
// split (its only use), in DIR/final; its results go into `report`. Returns the error that stopped it, or "".
std::string run_final(const Recipe& recipe, const TuneOptions& options, const Dataset& data,
                      const std::string& id, nlohmann::json& report) {
  const std::string final_dir = options.out_dir + "/final";
  const nlohmann::json fj = final_recipe(recipe, options.out_dir + "/trials/" + id);
  ensure_run_dir(final_dir);
  write_text(final_dir + "/final.json", fj.dump(2) + "\n");
  const Recipe fr = parse_recipe(fj.dump(2), final_dir + "/final.json");
  JobOptions jo;
  jo.out_dir = final_dir;
  jo.resume = true;
  jo.quiet = true;
  std::string error;
  nlohmann::json final_report;
  try {
    final_report = run_compress(fr, data, jo);
  } catch (const Error& e) {
    error = e.what();
    if (std::filesystem::exists(final_dir + "/report.json"))
      final_report = nlohmann::json::parse(read_file(final_dir + "/report.json"));
  }
  if (!final_report.is_null()) {
    nlohmann::json f = {{"dir", final_dir}};
    for (const auto& m : final_report["models"])
      if (m.value("role", "") == "student_int8" && m.value("engine", "") == "runtime int8") f["model"] = m;
    if (final_report.contains("verify")) {
      f["criteria"] = final_report["verify"]["criteria"];
      f["pass"] = final_report["verify"]["pass"];
    }
    for (const auto& st : final_report["stages"])
      if (st.value("kind", "") == "quantize" && st.contains("accuracy_control"))
        report["sensitivity"] = st["accuracy_control"].value("sensitivity", nlohmann::json::array());
    report["final"] = f;
  }
  if (error.empty()) {
    write_file_atomic(options.out_dir + "/model.mighty", read_file(final_dir + "/model.mighty"));
    report["model"] = options.out_dir + "/model.mighty";
  }
  return error;
}

}  // namespace

nlohmann::json run_tune(const Recipe& recipe, const TuneOptions& options) {
  if (!recipe.tune.present)
    throw Error(fmt::format("{}: no 'tune' block (what to meet, what may vary: docs/tune.md)", recipe.file));
  const auto t0 = std::chrono::steady_clock::now();
  ensure_run_dir(options.out_dir);
  const auto all = space_configurations(recipe);
  nlohmann::json plan = {{"recipe_hash", recipe.hash()}, {"format", kFormat}};
  if (dist::writes()) {
    claim_directory(recipe, options, plan);
    write_json(options.out_dir + "/recipe.json", recipe.to_json());
  }

  Search s{recipe, options, load_dataset(recipe.data, recipe.seed)};
  const Dataset data = s.trial_data;
  s.trial_data.images.test_x = data.images.val_x;  // trials see the validation split only
  s.trial_data.images.test_y = data.images.val_y;
  s.trial_data.hash = data.hash + "/validation-as-test";
  // The teacher in the data cache before any trial (trained there once, on the real splits, when it is not
  // there yet). A group: rank 0 first, then the others find it (or, with a cache of their own, train the same
  // one: the seed decides).
  for (int pass : {0, 1}) {
    const bool mine = dist::active() ? (dist::rank() == 0) == (pass == 0) : pass == 0;
    if (mine) {
      dist::Solo solo;
      prepare_teacher(recipe, data);
    }
    if (dist::active()) dist::sum({1.0});  // everyone waits for that
  }
  const nlohmann::json prechecks = run_prechecks(s, all);
  const auto fits = feasible(all, prechecks, recipe.file);
  const auto configs = draw_configurations(recipe, fits);
  const auto rungs = tune_rungs(recipe.tune.search, static_cast<int64_t>(configs.size()));
  plan["configurations"] = configs;
  for (const auto& [n, scale] : rungs) plan["rungs"].push_back({{"trials", n}, {"epoch_scale", scale}});
  write_json(options.out_dir + "/tune.json", plan);
  fmt::print(stderr, "tune: {} configurations, {} within the limits, {} drawn; {} rung(s): {}{}\n",
             all.size(), fits.size(), configs.size(), rungs.size(), plan["rungs"].dump(),
             dist::active() ? fmt::format("; {} ranks run the trials side by side", dist::world()) : "");
  s.overhead_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Outcome o = search(s, configs, rungs);
  if (!o.completed) return {{"completed", false}};
  if (dist::joined()) {
    dist::finish();  // rank 0 alone from here: the report and the final model
    if (dist::rank() != 0) return {{"completed", true}, {"rank", dist::rank()}};
  }

  nlohmann::json trials = o.trials;
  nlohmann::json report = {{"recipe", recipe.name},
                           {"recipe_hash", recipe.hash()},
                           {"completed", true},
                           {"tune", recipe.to_json()["tune"]},
                           {"plan", plan["rungs"]},
                           {"configurations", configs.size()},
                           {"space_configurations", all.size()},
                           {"feasible_configurations", fits.size()},
                           {"precheck", prechecks},
                           {"teacher_validation_accuracy", s.teacher_accuracy / 100.0},
                           {"trials", trials},
                           {"pareto", fronts(o.trials)},
                           {"supervision", supervision_comparison(o.trials)},
                           {"budget",
                            {{"minutes", options.budget_minutes},
                             {"trial_seconds", s.spent_seconds},
                             {"overhead_seconds", s.overhead_seconds},
                             {"stopped_search", o.budget_stop}}}};
  const nlohmann::json* chosen =
      choose_trial(o.trials, recipe.tune.objective, s.trial_data.images.val_y.size(0), report["selection"]);
  auto finish = [&](const std::string& error) {
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!error.empty()) report["error"] = error;
    write_json(options.out_dir + "/report.json", report);
    const std::string md = tune_markdown(report);
    write_text(options.out_dir + "/report.md", md);
    write_text(options.out_dir + "/report.html", tune_html(report, md));
    if (!options.quiet) fmt::print("{}", md);
    if (!error.empty()) throw Error(error);
  };
  if (!chosen) {
    const nlohmann::json* closest = &o.trials.front();
    for (const auto& t : o.trials) {
      const size_t a = t["misses"].size(), b = (*closest)["misses"].size();
      if (a < b || (a == b && t["accuracy"].get<double>() > (*closest)["accuracy"].get<double>()))
        closest = &t;
    }
    report["chosen"] = nullptr;
    finish(fmt::format(
        "tune: no trial meets the constraints on the validation split; the closest, {}, misses: "
        "{} (report: {}/report.md)",
        (*closest)["id"].get<std::string>(), (*closest)["misses"][0].get<std::string>(), options.out_dir));
  }
  report["chosen"] = (*chosen)["id"];
  fmt::print(stderr, "tune: chose {} ({}); exporting and verifying it on the test split\n",
             (*chosen)["id"].get<std::string>(), (*chosen)["config"].dump());

  finish(run_final(recipe, options, data, (*chosen)["id"].get<std::string>(), report));
  return report;
}

}  // namespace mighty::compress
