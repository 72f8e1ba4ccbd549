// The verify stage: the teacher, the student in LibTorch, and the exported files in the runtime (fp32, int8)
// side by side on the whole test split at one thread count, the acceptance criteria, and the results written
// into model.mighty.
#include <filesystem>

#include <fmt/format.h>

#include "compress/pipeline/cascade.h"
#include "compress/pipeline/stages.h"
#include "compress/pipeline/verify_onnxruntime.h"
#include "compress/train/evaluate.h"
#include "onnx_io/onnxruntime.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/exec/tasks.h"
#include "runtime/format/input_spec.h"

namespace mighty::compress {
namespace {

struct Measured {
  const Forward &teacher, &teacher_on_test, &student, &fp32, &int8;
};

// The four models' rows: quality on the test split, speed, and agreement with the teacher.
nlohmann::json measure_models(StageContext& ctx, const Measured& f, const EvalSpec& eval) {
  Pipeline& p = ctx.pipeline;
  fmt::print(stderr, "verify: teacher (LibTorch fp32) speed\n");
  const auto teacher_speed = measure_speed(f.teacher, ctx.data, eval);
  nlohmann::json tests = nlohmann::json::array(), speeds = nlohmann::json::array();
  for (const auto& [what, forward] :
       {std::pair<const char*, const Forward*>{"student (LibTorch fp32)", &f.student},
        {"student (runtime fp32)", &f.fp32},
        {"student (runtime int8)", &f.int8}}) {
    fmt::print(stderr, "verify: {}\n", what);
    tests.push_back(evaluate_forward(*forward, ctx.data, Split::kTest));
    speeds.push_back(measure_speed(*forward, ctx.data, eval));
  }
  const int64_t params = p.student->parameter_count();
  const auto fp32_bytes = static_cast<int64_t>(std::filesystem::file_size(p.fp32_artifact));
  nlohmann::json models = nlohmann::json::array();
  models.push_back(model_entry("teacher", "teacher", "libtorch fp32", ctx.teacher.parameter_count(),
                               static_cast<int64_t>(ctx.teacher.fp32_bytes()), ctx.teacher_test,
                               teacher_speed));
  models.push_back(
      model_entry("student", "student_fp32", "libtorch fp32", params, fp32_bytes, tests[0], speeds[0]));
  models.push_back(
      model_entry("student", "student_fp32", "runtime fp32", params, fp32_bytes, tests[1], speeds[1]));
  models.push_back(model_entry("student", "student_int8", "runtime int8", params,
                               static_cast<int64_t>(std::filesystem::file_size(p.artifact)), tests[2],
                               speeds[2]));
  for (size_t i = 1; i < models.size(); ++i) {
    const Forward& g = i == 1 ? f.student : i == 2 ? f.fp32 : f.int8;
    const auto vs = compare_models(f.teacher_on_test, g, ctx.data, Split::kTest);
    models[i]["agreement"] = vs["agreement"];
    models[i]["kl"] = vs["kl"];
  }
  return models;
}

// The recipe's acceptance criteria against the measured rows (teacher, fp32 student, ..., int8 student).
nlohmann::json criteria(const VerifySpec& spec, const nlohmann::json& models, const nlohmann::json& paired,
                        const nlohmann::json& ort) {
  const auto& t = models[0];
  const auto& q = models[3];
  nlohmann::json out = nlohmann::json::array();
  auto check = [&](const std::string& name, double value, double limit, bool at_most,
                   const std::string& text) {
    const bool pass = at_most ? value <= limit : value >= limit;
    out.push_back({{"criterion", name}, {"value", value}, {"limit", limit}, {"pass", pass}, {"what", text}});
  };
  if (spec.max_accuracy_drop >= 0 && q.contains("accuracy")) {
    check("max_accuracy_drop", 100.0 * (t["accuracy"].get<double>() - q["accuracy"].get<double>()),
          spec.max_accuracy_drop, true, "accuracy points lost, teacher -> int8 student");
  }
  if (spec.max_bpc_increase >= 0 && q.contains("bits_per_char")) {
    check("max_bpc_increase", q["bits_per_char"].get<double>() - models[1]["bits_per_char"].get<double>(),
          spec.max_bpc_increase, true, "bits/char added by int8, fp32 student -> int8 student");
  }
  if (spec.min_accuracy >= 0 && q.contains("accuracy")) {
    check("min_accuracy", 100.0 * q["accuracy"].get<double>(), spec.min_accuracy, false,
          "test accuracy of the int8 student, percent");
  }
  if (spec.max_latency_ms > 0) {
    check("max_latency_ms", q["latency_ms_b1"].get<double>(), spec.max_latency_ms, true,
          "batch-1 median latency of the int8 student in the runtime, ms");
  }
  if (spec.min_speedup > 0) {
    check("min_speedup", paired["ratio"].get<double>(), spec.min_speedup, false,
          "batch-1 latency, LibTorch fp32 teacher / runtime int8 student, timed alternately");
  }
  if (spec.min_speedup_vs_onnxruntime > 0) {
    const nlohmann::json* row = nullptr;
    for (const auto& r : ort.at("rows"))
      if (r.value("engine", "") == "onnxruntime int8") row = &r;
    if (!row || !row->contains("paired")) {
      throw Error(fmt::format(
          "verify: min_speedup_vs_onnxruntime needs ONNX Runtime's int8 row, which was not measured: {}",
          row ? (*row)["unavailable"].get<std::string>()
              : ort.value("unavailable", "verify.onnxruntime is off")));
    }
    check(
        "min_speedup_vs_onnxruntime", (*row)["paired"]["speedup_b1_net"].get<double>(),
        spec.min_speedup_vs_onnxruntime, false,
        "batch-1 latency, ONNX Runtime int8 less its Node binding's cost / runtime int8, timed alternately");
  }
  if (spec.max_bytes > 0) {
    check("max_bytes", q["bytes"].get<double>(), static_cast<double>(spec.max_bytes), true,
          "bytes of model.mighty on disk as shipped (verify results included)");
  }
  return out;
}

// What the deployed language model writes, and how fast (incremental decoding with the key/value cache).
nlohmann::json generation(const Session& int8, const std::string& path, uint64_t seed) {
  const InputSpec input = InputSpec::from_json(int8.artifact().metadata().at("input"), path);
  const std::string prompt = "And God said, ";
  double tokens_per_s = 0.0;
  const std::string sample = generate(int8, input, prompt, 300, 0.8, 10, seed, &tokens_per_s);
  return {{"prompt", prompt}, {"characters", 300}, {"temperature", 0.8},
          {"top_k", 10},      {"sample", sample},  {"tokens_per_s", tokens_per_s}};
}

nlohmann::json verify(const VerifySpec& spec, StageContext& ctx, int threads) {
  Pipeline& p = ctx.pipeline;
  EvalSpec eval = ctx.recipe.eval;
  if (spec.latency_runs > 0) eval.latency_runs = spec.latency_runs;
  const Session int8(Artifact::open(p.artifact), threads);
  const Session fp32(Artifact::open(p.fp32_artifact), threads);
  const Forward teacher_fwd = [&](const torch::Tensor& x) { return ctx.teacher.logits(x); };
  const Forward student_fwd = [&](const torch::Tensor& x) { return p.student->forward(x); };
  const Forward int8_fwd = session_forward(int8), fp32_fwd = session_forward(fp32);
  const Forward teacher_on_test = remembered(teacher_fwd);  // one teacher pass serves every comparison
  const std::string node_modules = onnx_io::ort_node_modules(data_cache_dir());
  if (spec.min_speedup_vs_onnxruntime > 0) {  // before the long part: what the criterion needs
    const std::string why = !spec.onnxruntime  ? "verify.onnxruntime is off"
                            : p.onnx.is_null() ? "export.onnx is off"
                                               : onnx_io::ort_unavailable(node_modules);
    if (!why.empty())
      throw Error("verify: min_speedup_vs_onnxruntime needs ONNX Runtime, which cannot run: " + why);
  }
  p.student->eval();
  p.verify_models =
      measure_models(ctx, {teacher_fwd, teacher_on_test, student_fwd, fp32_fwd, int8_fwd}, eval);
  nlohmann::json report = {{"kind", "verify"}, {"threads", threads}, {"completed", true}};
  nlohmann::json ort = {{"rows", nlohmann::json::array()}, {"unavailable", "verify.onnxruntime is off"}};
  if (spec.onnxruntime) {
    ort = onnxruntime_rows({p.onnx, node_modules, ctx.dir(), threads, ctx.data, eval, eval.latency_runs,
                            p.student->parameter_count(), teacher_on_test, int8_fwd, fp32_fwd, int8, fp32});
    for (const auto& r : ort["rows"])
      if (r.contains("paired")) p.verify_models.push_back(r);
  }
  report["onnxruntime"] = ort;
  if (spec.cascade) report["cascade"] = measure_cascade(ctx, spec, int8_fwd, threads);
  if (ctx.data.kind == "text") report["generation"] = generation(int8, p.artifact, ctx.recipe.seed);
  if (p.quantized) {
    // The LibTorch simulation against the deployed file: the same predictions, the same logits up to the
    // float ops outside the quantized layers.
    QuantizedModel& qm = *p.quantized;
    const Forward sim = [&](const torch::Tensor& x) { return qm.forward(x); };
    report["simulation_vs_runtime"] = compare_models(sim, int8_fwd, ctx.data, Split::kTest);
  }
  // The speedup from alternating runs of the two (the separate medians above can come from different loads).
  const auto paired = paired_latency(teacher_fwd, int8_fwd, ctx.data, eval.latency_runs);
  report["speedup_paired"] = paired;
  report["criteria"] = criteria(spec, p.verify_models, paired, ort);
  bool pass = true;
  for (const auto& c : report["criteria"]) pass = pass && c["pass"].get<bool>();
  report["pass"] = pass;
  report["size_ratio"] =
      static_cast<double>(ctx.teacher.fp32_bytes()) / p.verify_models[3]["bytes"].get<double>();
  report["speedup_b1"] = paired["ratio"];
  return report;
}

// The file carries the results it was shipped with, in brief: pass, the criteria, the shipped model's test
// accuracy (bits/char for a language model); the full table stays in report.json. Criterion max_bytes is the
// file as shipped, stamp included: it is written, measured, and written again until its size holds (the value
// is in the stamp).
void stamp_and_write(nlohmann::json& stage, Pipeline& p) {
  const nlohmann::json& q = p.verify_models[3];
  for (int round = 0;; ++round) {
    nlohmann::json criteria = nlohmann::json::array();
    for (const auto& c : stage["criteria"])
      criteria.push_back(
          {{"criterion", c["criterion"]}, {"value", c["value"]}, {"limit", c["limit"]}, {"pass", c["pass"]}});
    nlohmann::json v = {{"pass", stage["pass"]}, {"criteria", criteria}};
    for (const char* key : {"accuracy", "bits_per_char"})
      if (q.contains(key)) v[key] = q[key];
    p.artifact_writer.metadata()["verify"] = v;
    p.artifact_writer.write(p.artifact);
    const auto shipped = static_cast<int64_t>(std::filesystem::file_size(p.artifact));
    stage["shipped_bytes"] = shipped;
    bool changed = false, pass = true;
    for (auto& c : stage["criteria"]) {
      if (c["criterion"] == "max_bytes" && c["value"].get<double>() != static_cast<double>(shipped)) {
        c["value"] = shipped;
        c["pass"] = static_cast<double>(shipped) <= c["limit"].get<double>();
        changed = true;
      }
      pass = pass && c["pass"].get<bool>();
    }
    stage["pass"] = pass;
    if (!changed) return;
    if (round == 3) throw Error(fmt::format("verify: {}: its size does not settle", p.artifact));
  }
}

}  // namespace

nlohmann::json run_verify_stage(const StageSpec& spec, StageContext& ctx) {
  ctx.teacher.remember_outputs(false);
  const int run_threads = torch::get_num_threads();
  const int threads =
      spec.get<VerifySpec>().threads > 0 ? static_cast<int>(spec.get<VerifySpec>().threads) : run_threads;
  torch::set_num_threads(threads);
  struct Restore {
    int n;
    ~Restore() { torch::set_num_threads(n); }
  } restore{run_threads};
  nlohmann::json stage = verify(spec.get<VerifySpec>(), ctx, threads);
  Pipeline& p = ctx.pipeline;
  if (stage.contains("cascade") && stage["cascade"].contains("validation") &&
      stage["cascade"]["validation"]["met"].get<bool>() &&
      stage["cascade"]["teacher_file"].is_string()) {  // what mighty-run serve's cascades take
    const auto& c = stage["cascade"];
    p.artifact_writer.metadata()["cascade"] = {{"threshold", c["threshold"]},
                                               {"confidence", c["confidence"]},
                                               {"blend", c.value("blend", 0.0)},
                                               {"teacher", c["teacher_file"]}};
  }
  if (!p.onnx.is_null()) {  // the ONNX files written beside it, and what checked them
    nlohmann::json onnx = {{"files", nlohmann::json::array()}};
    for (const char* key : {"model", "fp32"})
      if (!p.onnx[key].contains("error"))
        onnx["files"].push_back(std::filesystem::path(p.onnx[key]["path"].get<std::string>()).filename());
    onnx["checked_by"] = stage["onnxruntime"].contains("version")
                             ? "onnxruntime " + stage["onnxruntime"]["version"].get<std::string>()
                             : "ONNX checker (ONNX Runtime not run: " +
                                   stage["onnxruntime"].value("unavailable", std::string("?")) + ")";
    p.artifact_writer.metadata()["onnx"] = onnx;
  }
  stamp_and_write(stage, p);
  return stage;
}

std::string verify_markdown(const nlohmann::json& v) {
  std::string out = fmt::format(
      "\nAll at {} thread{}. int8 student vs teacher: {:.1f}x smaller, {:.1f}x faster at batch 1 (timed "
      "alternately).\n",
      v["threads"].get<int>(), v["threads"].get<int>() == 1 ? "" : "s", v["size_ratio"].get<double>(),
      v["speedup_b1"].get<double>());
  if (v.contains("simulation_vs_runtime")) {
    out += fmt::format("LibTorch simulation vs runtime int8: {:.2f}% identical predictions.\n",
                       100.0 * v["simulation_vs_runtime"]["agreement"].get<double>());
  }
  if (v.contains("onnxruntime")) out += onnxruntime_markdown(v["onnxruntime"]);
  if (v.contains("cascade")) out += cascade_markdown(v["cascade"]);
  if (!v["criteria"].empty()) {
    out += "\n| criterion | value | limit | |\n|---|---:|---:|---|\n";
    for (const auto& c : v["criteria"]) {
      out += fmt::format("| {} ({}) | {:.4g} | {:.4g} | {} |\n", c["criterion"].get<std::string>(),
                         c["what"].get<std::string>(), c["value"].get<double>(), c["limit"].get<double>(),
                         c["pass"].get<bool>() ? "pass" : "**FAIL**");
    }
  }
  if (v.contains("generation")) {
    const auto& gen = v["generation"];
    std::string quoted;
    for (char c : gen["sample"].get<std::string>())
      quoted += c == '\n' ? std::string("\n> ") : std::string(1, c);
    out +=
        fmt::format("\nThe int8 model continues \"{}\" ({} characters/s, temperature {}, top-{}):\n\n> {}\n",
                    gen["prompt"].get<std::string>(), static_cast<int64_t>(gen["tokens_per_s"].get<double>()),
                    gen["temperature"].get<double>(), gen["top_k"].get<int64_t>(), quoted);
  }
  out += fmt::format("\nverify: **{}**\n", v["pass"].get<bool>() ? "pass" : "FAIL");
  return out;
}

}  // namespace mighty::compress
