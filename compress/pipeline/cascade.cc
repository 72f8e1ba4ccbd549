#include "compress/pipeline/cascade.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "compress/models/teacher.h"
#include "compress/models/use_lite.h"
#include "compress/passes/export.h"
#include "compress/train/evaluate.h"
#include "runtime/error.h"
#include "runtime/exec/tasks.h"

namespace mighty::compress {
namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// One split as the models take it: normalized images or token ids [n, ...], and the labels.
struct SplitData {
  torch::Tensor x;
  std::vector<int64_t> y;
  int64_t n = 0;
};

SplitData split_data(const Dataset& d, bool test) {
  const auto& xs = test ? d.images.test_x : d.images.val_x;
  const auto& ys = test ? d.images.test_y : d.images.val_y;
  const auto y = ys.to(torch::kInt64).contiguous();
  SplitData s;
  s.x = normalize_images(xs, d.images.mean, d.images.std).contiguous();
  s.n = s.x.size(0);
  s.y.assign(y.data_ptr<int64_t>(), y.data_ptr<int64_t>() + y.numel());
  return s;
}

struct Answers {
  std::vector<int64_t> pred;
  std::vector<double> confidence;  // top-1 softmax probability
  std::vector<float> scores;       // [n, classes], the model's outputs
  int64_t classes = 0;
  double cpu_seconds = 0.0;  // for the whole split, batches of `batch`
};

// A model over a subset of a split (all when `which` is empty), in batches: predictions and confidences.
Answers answer(const Forward& model, const SplitData& d, const std::vector<int64_t>& which, int64_t batch) {
  torch::NoGradGuard no_grad;
  const int64_t n = which.empty() ? d.n : static_cast<int64_t>(which.size());
  Answers a;
  const auto index = torch::tensor(which.empty() ? std::vector<int64_t>{0} : which, torch::kInt64);
  const double t0 = cpu_seconds();
  for (int64_t lo = 0; lo < n; lo += batch) {
    const int64_t hi = std::min(n, lo + batch);
    const auto x = which.empty() ? d.x.slice(0, lo, hi) : d.x.index_select(0, index.slice(0, lo, hi));
    const auto logits = model(x).to(torch::kFloat32).contiguous();
    const int64_t classes = a.classes = logits.size(1);
    for (int64_t i = 0; i < hi - lo; ++i) {
      const float* row = logits.data_ptr<float>() + i * classes;
      a.scores.insert(a.scores.end(), row, row + classes);
      const int64_t best = std::max_element(row, row + classes) - row;
      a.pred.push_back(best);
      a.confidence.push_back(softmax_probabilities(row, classes)[static_cast<size_t>(best)]);
    }
  }
  a.cpu_seconds = cpu_seconds() - t0;
  return a;
}

// What the cascade answers for the examples the student leaves, per example: the teacher's prediction, or
// with `blend` > 0 the top class of the student's and teacher's probabilities mixed (cascade_fallback_scores,
// as mighty-run serve answers).
std::vector<int64_t> fallback_predictions(const Answers& student, const Answers& teacher, double blend) {
  if (blend <= 0.0) return teacher.pred;
  if (student.classes != teacher.classes)
    throw Error(
        fmt::format("verify: cascade: the student has {} outputs and the teacher {}; they cannot be "
                    "blended (set cascade_blend to 0)",
                    student.classes, teacher.classes));
  std::vector<int64_t> out(student.pred.size());
  const auto c = static_cast<size_t>(student.classes);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto mix = cascade_fallback_scores(student.scores.data() + i * c, teacher.scores.data() + i * c,
                                             student.classes, blend);
    out[i] = std::max_element(mix.begin(), mix.end()) - mix.begin();
  }
  return out;
}

struct Point {
  double threshold, accuracy, student_share;
  int64_t gain = 0,
          loss = 0;  // examples the student answers right where the fallback is wrong, and the reverse
};

Point evaluate_threshold(double t, const Answers& student, const std::vector<int64_t>& fallback,
                         const SplitData& d) {
  int64_t correct = 0, by_student = 0, gain = 0, loss = 0;
  for (int64_t i = 0; i < d.n; ++i) {
    const bool mine = student.confidence[static_cast<size_t>(i)] >= t;
    by_student += mine;
    const int64_t y = d.y[static_cast<size_t>(i)];
    const bool s_right = student.pred[static_cast<size_t>(i)] == y,
               f_right = fallback[static_cast<size_t>(i)] == y;
    correct += mine ? s_right : f_right;
    gain += mine && s_right && !f_right;
    loss += mine && !s_right && f_right;
  }
  return {t, static_cast<double>(correct) / static_cast<double>(d.n),
          static_cast<double>(by_student) / static_cast<double>(d.n), gain, loss};
}

double accuracy(const std::vector<int64_t>& pred, const SplitData& d) {
  int64_t correct = 0;
  for (int64_t i = 0; i < d.n; ++i) correct += pred[static_cast<size_t>(i)] == d.y[static_cast<size_t>(i)];
  return static_cast<double>(correct) / static_cast<double>(d.n);
}
double accuracy(const Answers& a, const SplitData& d) { return accuracy(a.pred, d); }

// Whether the cascade at validation point `p` meets the target with `z` standard errors to spare. Against the
// teacher (`vs_teacher`), the paired difference from the fallback (the teacher, or the blend, which is only
// used where it is at least as accurate as the teacher on validation): the cascade differs from the fallback
// only on examples the student answers, gaining `gain` (student right, fallback wrong) and losing `loss` (the
// reverse); the difference (gain - loss) / n has a standard error of about sqrt(gain + loss) / n, so the rule
// is gain - loss >= z * sqrt(gain + loss). Against a fixed accuracy: accuracy - z * sqrt(acc (1 - acc) / n).
bool meets(const Point& p, double target, bool vs_teacher, double z, int64_t n) {
  if (vs_teacher)
    return static_cast<double>(p.gain - p.loss) >= z * std::sqrt(static_cast<double>(p.gain + p.loss));
  const double se = std::sqrt(p.accuracy * (1.0 - p.accuracy) / static_cast<double>(n));
  return p.accuracy - z * se >= target;
}

// The threshold that leaves the most examples to the student while the cascade meets the target on validation
// (the candidates: every confidence the student gave on validation, and 0 and 1.0000001 = all to the
// teacher).
Point choose(const Answers& student, const std::vector<int64_t>& fallback, const SplitData& val,
             double target, bool vs_teacher, double z) {
  std::vector<double> candidates = student.confidence;
  candidates.push_back(0.0);
  candidates.push_back(1.0000001);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  Point best{2.0, 0.0, -1.0};
  for (double t : candidates) {  // ascending: the first that meets the target keeps the most for the student
    const Point p = evaluate_threshold(t, student, fallback, val);
    if (meets(p, target, vs_teacher, z, val.n) && p.student_share > best.student_share) best = p;
  }
  return best;
}

// The mix that answers what the student leaves, decided on validation (paired against the teacher alone: the
// mix right where the teacher is wrong, and the reverse).
// - "auto" tries the student weights 0.1 ... 0.5 (the student is the smaller model: at most an equal say) and
//   keeps the one with the most (gain - loss), the smaller on a tie; else the recipe's weight is checked.
// - The mix is used unless it is worse than the teacher by more than the margin: gain - loss >= -margin_se *
//   sqrt(gain + loss); else the teacher alone answers.
struct MixCheck {
  double blend = 0.0;    // the weight used: the recipe's or the chosen one, or 0 (the teacher alone)
  double checked = 0.0;  // the weight `accuracy`, `gain` and `loss` are for: the recipe's, or the best tried
  double accuracy = 0.0;
  int64_t gain = 0, loss = 0;
  std::vector<int64_t>
      fallback;  // on validation: the mix's predictions, or the teacher's when it is not used
  nlohmann::json candidates = nlohmann::json::array();  // with "auto": {blend, accuracy, gain, loss} each
};

MixCheck try_mix(const Answers& student, const Answers& teacher, const SplitData& val, double blend) {
  MixCheck c;
  c.fallback = fallback_predictions(student, teacher, blend);
  const Point teacher_vs_mix = evaluate_threshold(0.0, teacher, c.fallback, val);  // the teacher in its place
  c.blend = c.checked = blend;
  c.accuracy = accuracy(c.fallback, val);
  c.gain = teacher_vs_mix.loss;
  c.loss = teacher_vs_mix.gain;
  return c;
}

MixCheck check_mix(const Answers& student, const Answers& teacher, const SplitData& val,
                   const VerifySpec& spec) {
  MixCheck c;
  nlohmann::json candidates = nlohmann::json::array();
  if (spec.cascade_blend) {
    c = try_mix(student, teacher, val, *spec.cascade_blend);
  } else {
    for (int k = 1; k <= 5; ++k) {
      MixCheck m = try_mix(student, teacher, val, k / 10.0);
      candidates.push_back(
          {{"blend", m.blend}, {"accuracy", m.accuracy}, {"gain", m.gain}, {"loss", m.loss}});
      if (k == 1 || m.gain - m.loss > c.gain - c.loss) c = std::move(m);
    }
  }
  c.candidates = std::move(candidates);
  const double se = std::sqrt(static_cast<double>(c.gain + c.loss));
  if (c.checked <= 0 || static_cast<double>(c.gain - c.loss) < -spec.cascade_margin_se * se) {
    c.blend = 0.0;
    c.fallback = teacher.pred;
  }
  return c;
}

// Batch-1 latency of the cascade per example over the first `count` test examples (student, then the teacher
// when the student is under the threshold), each example timed alone: mean and p99 in ms.
nlohmann::json cascade_latency(const Forward& student, const Forward& teacher, const SplitData& d, double t,
                               double blend, int64_t count) {
  torch::NoGradGuard no_grad;
  std::vector<double> ms;
  for (int64_t i = 0; i < std::min(count, d.n); ++i) {
    const auto x = d.x.slice(0, i, i + 1);
    const auto start = std::chrono::steady_clock::now();
    const auto logits = student(x).to(torch::kFloat32).contiguous();
    const auto p = softmax_probabilities(logits.data_ptr<float>(), logits.size(1));
    if (*std::max_element(p.begin(), p.end()) < t) {
      const auto other = teacher(x).to(torch::kFloat32).contiguous();
      (void)cascade_fallback_scores(logits.data_ptr<float>(), other.data_ptr<float>(), logits.size(1), blend);
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  double mean = 0.0;
  for (double v : ms) mean += v;
  mean /= static_cast<double>(ms.size());
  std::sort(ms.begin(), ms.end());
  return {{"mean_ms", mean},
          {"p99_ms", ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]},
          {"examples", ms.size()}};
}

// The teacher as a server runs it: a .mighty beside model.mighty, on the runtime (a zoo model, or Universal
// Sentence Encoder Lite + head). A teacher that is not a graph mighty exports (TorchScript) is run in
// LibTorch: the cascade is measured but cannot be served ("file" empty).
struct CascadeTeacher {
  std::unique_ptr<Session> session;
  Forward forward;
  std::string file, engine = "runtime fp32";
};

CascadeTeacher cascade_teacher(StageContext& ctx, int threads) {
  CascadeTeacher t;
  const std::string path =
      (std::filesystem::path(ctx.pipeline.artifact).parent_path() / "teacher.fp32.mighty").string();
  if (auto* zoo = dynamic_cast<ZooTeacher*>(&ctx.teacher)) {
    zoo->module()->eval();
    export_fp32(zoo->module(), artifact_metadata(ctx.recipe, ctx.data, "teacher_fp32")).write(path);
  } else if (auto* use = dynamic_cast<UseLiteTeacher*>(&ctx.teacher)) {
    // Documents one at a time, unpadded, with the tokenizer the student carries.
    export_use_lite(use->model(), ctx.recipe, ctx.data).write(path);
  } else {
    t.forward = [&ctx](const torch::Tensor& x) { return ctx.teacher.logits(x); };
    t.engine = "libtorch fp32";
    return t;
  }
  t.session = std::make_unique<Session>(Artifact::open(path), threads);
  t.forward = session_forward(*t.session);
  t.file = std::filesystem::path(path).filename().string();
  return t;
}

}  // namespace

nlohmann::json measure_cascade(StageContext& ctx, const VerifySpec& spec, const Forward& student,
                               int threads) {
  if (!ctx.data.classifies())
    return {{"unavailable", "cascades are measured for classifiers (this run is " + ctx.data.kind + ")"}};
  if (ctx.data.images.val_x.size(0) == 0) return {{"unavailable", "the run has no validation split"}};
  const CascadeTeacher chosen_teacher = cascade_teacher(ctx, threads);
  const Forward& teacher = chosen_teacher.forward;
  const std::string& file = chosen_teacher.file;
  const std::string& engine = chosen_teacher.engine;
  fmt::print(stderr, "verify: cascade (teacher {}, student runtime int8): validation\n",
             file.empty() ? ctx.teacher.describe() + " in LibTorch" : file + " on the runtime");
  const int64_t batch = ctx.recipe.eval.throughput_batch;
  const SplitData val = split_data(ctx.data, false), test = split_data(ctx.data, true);
  const Answers sv = answer(student, val, {}, batch), tv = answer(teacher, val, {}, batch);
  const bool vs_teacher = spec.cascade_min_accuracy < 0;
  const double target = vs_teacher ? accuracy(tv, val) : spec.cascade_min_accuracy / 100.0;
  const MixCheck mix = check_mix(sv, tv, val, spec);
  const double blend = mix.blend;
  const Point chosen = choose(sv, mix.fallback, val, target, vs_teacher, spec.cascade_margin_se);
  fmt::print(stderr, "verify: cascade: test\n");
  const Answers st = answer(student, test, {}, batch), tt = answer(teacher, test, {}, batch);
  const std::vector<int64_t> fallback = fallback_predictions(st, tt, blend);
  // The cascade, run: the student's pass over everything (above), then the teacher on what the student left.
  std::vector<int64_t> deferred;
  for (int64_t i = 0; i < test.n; ++i)
    if (st.confidence[static_cast<size_t>(i)] < chosen.threshold) deferred.push_back(i);
  const Answers rest = deferred.empty() ? Answers{} : answer(teacher, test, deferred, batch);
  const double per_million = 1e6 / static_cast<double>(test.n);
  const double cost_teacher = tt.cpu_seconds * per_million, cost_student = st.cpu_seconds * per_million,
               cost_cascade = (st.cpu_seconds + rest.cpu_seconds) * per_million;
  const Point on_test = evaluate_threshold(chosen.threshold, st, fallback, test);
  nlohmann::json curve = nlohmann::json::array();
  for (int k = 0; k <= 20; ++k) {
    const double t = k == 20 ? 1.0000001 : k / 20.0;
    const Point p = evaluate_threshold(t, st, fallback, test);
    const double cost = cost_student + (1.0 - p.student_share) * tt.cpu_seconds * per_million;
    curve.push_back({{"threshold", t},
                     {"accuracy", p.accuracy},
                     {"student_share", p.student_share},
                     {"cpu_seconds_per_million", cost}});
  }
  nlohmann::json out = {{"teacher_file", file.empty() ? nlohmann::json() : nlohmann::json(file)},
                        {"teacher_engine", engine},
                        {"teacher", ctx.teacher.describe()},
                        {"confidence", "probability"},
                        {"blend", blend},
                        {"selected_on", "validation"},
                        {"validation",
                         {{"target_accuracy", target},
                          {"target", vs_teacher ? "teacher" : "recipe"},
                          {"margin_se", spec.cascade_margin_se},
                          {"blend_requested", spec.cascade_blend_json()},
                          {"blend_tried", mix.candidates},
                          {"blend_checked", mix.checked},
                          {"blend_accuracy", mix.accuracy},
                          {"blend_gain", mix.gain},  // the mix right where the teacher is wrong
                          {"blend_loss", mix.loss},
                          {"gain", chosen.gain},
                          {"loss", chosen.loss},
                          {"teacher_accuracy", accuracy(tv, val)},
                          {"student_accuracy", accuracy(sv, val)},
                          {"accuracy", chosen.accuracy},
                          {"student_share", chosen.student_share},
                          {"met", chosen.student_share >= 0}}},
                        {"threshold", chosen.student_share >= 0 ? chosen.threshold : 1.0000001},
                        {"test",
                         {{"teacher_accuracy", accuracy(tt, test)},
                          {"student_accuracy", accuracy(st, test)},
                          {"fallback_accuracy", accuracy(fallback, test)},
                          {"accuracy", on_test.accuracy},
                          {"student_share", on_test.student_share},
                          {"examples", test.n}}},
                        {"cpu_seconds_per_million",
                         {{"teacher", cost_teacher},
                          {"student", cost_student},
                          {"cascade", cost_cascade},
                          {"cascade_vs_teacher", cost_cascade / cost_teacher},
                          {"batch", batch},
                          {"threads", threads}}},
                        {"latency_b1", cascade_latency(student, teacher, test, chosen.threshold, blend,
                                                       std::min<int64_t>(test.n, 2000))},
                        {"curve_test", curve}};
  if (spec.cpu_hour_price > 0) {
    out["price_per_million"] = {{"cpu_hour_price", spec.cpu_hour_price},
                                {"teacher", cost_teacher / 3600.0 * spec.cpu_hour_price},
                                {"student", cost_student / 3600.0 * spec.cpu_hour_price},
                                {"cascade", cost_cascade / 3600.0 * spec.cpu_hour_price}};
  }
  return out;
}

namespace {

// How the mix was decided, for the report: the weight chosen on validation ("auto"), or why there is none.
std::string mix_note(const nlohmann::json& v, double blend) {
  if (!v.contains("blend_requested")) return "";
  const auto& requested = v["blend_requested"];
  const double acc = 100.0 * v.value("blend_accuracy", 0.0);
  if (requested.is_string()) {
    const std::string paired = fmt::format(
        "{:.2f}% there, right {} times where the teacher was wrong and wrong {} "
        "times where it was right",
        acc, v.value("blend_gain", 0), v.value("blend_loss", 0));
    return blend > 0 ? fmt::format("; the mix's weight chosen on validation from 0.1 ... 0.5: {}", paired)
                     : fmt::format(
                           "; no mix: its best weight on validation, {:.1f}, gave {}, under the teacher "
                           "by more than the margin",
                           v.value("blend_checked", 0.0), paired);
  }
  if (requested.get<double>() > 0 && blend == 0)
    return fmt::format(
        "; the mix was not used: {:.2f}% on validation, under the teacher's by more than the margin", acc);
  return "";
}

}  // namespace

std::string cascade_markdown(const nlohmann::json& c) {
  if (c.contains("unavailable"))
    return fmt::format("\nCascade: not measured ({}).\n", c["unavailable"].get<std::string>());
  const auto& v = c["validation"];
  const auto& t = c["test"];
  const auto& cost = c["cpu_seconds_per_million"];
  const double blend = c.value("blend", 0.0);
  std::string out = fmt::format(
      "\n**Cascade** (int8 student first, {}{} when its top-1 probability < {:.4f}; threshold chosen on the "
      "validation split for accuracy >= {:.2f}% ({}) with {:.1f} standard error(s) to spare{}):\n\n"
      "| on the test split | accuracy | answered by the student | CPU-seconds per million predictions |\n"
      "|---|---:|---:|---:|\n"
      "| teacher only ({}) | {:.2f}% | 0% | {:.1f} |\n"
      "| student only (runtime int8) | {:.2f}% | 100% | {:.1f} |\n"
      "{}"
      "| cascade | {:.2f}% | {:.1f}% | {:.1f} ({:.1f}% of teacher-only) |\n\n"
      "Cascade batch-1 latency over {} test examples: {:.4f} ms mean, {:.4f} ms p99. Costs: process CPU time "
      "of "
      "each run over the test split in batches of {} at {} thread(s); the cascade's is the student on "
      "everything "
      "plus the teacher on what it left, run.{}\n",
      c["teacher_file"].is_string() ? c["teacher_file"].get<std::string>()
                                    : c.value("teacher", "the teacher"),
      blend > 0
          ? fmt::format(" (its probabilities mixed with the student's, {:.2f} x student + {:.2f} x teacher)",
                        blend, 1.0 - blend)
          : std::string(),
      c["threshold"].get<double>(), 100.0 * v["target_accuracy"].get<double>(),
      v.value("target", "teacher") != "teacher" ? std::string("the recipe's")
      : v.contains("gain")
          ? fmt::format("the teacher's; on validation the student answered {} right where the {} was wrong "
                        "and {} the reverse{}",
                        v["gain"].get<int64_t>(), blend > 0 ? "mix" : "teacher", v["loss"].get<int64_t>(),
                        mix_note(v, blend))
          : std::string("the teacher's"),
      v.value("margin_se", 0.0),
      v["met"].get<bool>() ? "" : " — **not reachable on validation: everything goes to the teacher**",
      c.value("teacher_engine", "runtime fp32"), 100.0 * t["teacher_accuracy"].get<double>(),
      cost["teacher"].get<double>(), 100.0 * t["student_accuracy"].get<double>(),
      cost["student"].get<double>(),
      blend > 0 ? fmt::format("| the mix on everything (student + teacher) | {:.2f}% | — | {:.1f} |\n",
                              100.0 * t["fallback_accuracy"].get<double>(),
                              cost["teacher"].get<double>() + cost["student"].get<double>())
                : std::string(),
      100.0 * t["accuracy"].get<double>(), 100.0 * t["student_share"].get<double>(),
      cost["cascade"].get<double>(), 100.0 * cost["cascade_vs_teacher"].get<double>(),
      c["latency_b1"]["examples"].get<int64_t>(), c["latency_b1"]["mean_ms"].get<double>(),
      c["latency_b1"]["p99_ms"].get<double>(), cost["batch"].get<int64_t>(), cost["threads"].get<int>(),
      c.contains("teacher_file") && c["teacher_file"].is_null()
          ? " The teacher is not a graph mighty exports, so it ran in LibTorch: this cascade is measured, "
            "not "
            "servable by `mighty-run serve`, and no threshold is stored in model.mighty."
          : "");
  if (c.contains("price_per_million")) {
    const auto& p = c["price_per_million"];
    out += fmt::format(
        "At {} per CPU-hour, per million predictions: teacher {:.4f}, student {:.4f}, cascade {:.4f}.\n",
        p["cpu_hour_price"].get<double>(), p["teacher"].get<double>(), p["student"].get<double>(),
        p["cascade"].get<double>());
  }
  out +=
      "\nThe whole curve on the test split (cost: student on everything + teacher on the rest, from the "
      "measured "
      "per-example costs):\n\n| threshold | accuracy | student share | CPU-s per million "
      "|\n|---:|---:|---:|---:|\n";
  for (const auto& p : c["curve_test"]) {
    out += fmt::format("| {:.2f} | {:.2f}% | {:.1f}% | {:.1f} |\n",
                       std::min(1.0, p["threshold"].get<double>()), 100.0 * p["accuracy"].get<double>(),
                       100.0 * p["student_share"].get<double>(), p["cpu_seconds_per_million"].get<double>());
  }
  return out;
}

}  // namespace mighty::compress
