#include "compress/pipeline/stages.h"

#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compress/passes/accuracy_control.h"
#include "compress/passes/distill.h"
#include "compress/passes/export.h"
#include "compress/passes/prune.h"
#include "compress/recipe/recipe_internal.h"
#include "compress/train/evaluate.h"
#include "onnx_io/export.h"
#include "runtime/error.h"
#include "runtime/format/artifact.h"

namespace mighty::compress {
namespace {

StageOptions training_options(const StageContext& ctx) {
  StageOptions o;
  o.dir = ctx.dir();
  o.resume = ctx.options.resume;
  o.stop_after_steps = ctx.options.stop_after_steps;
  o.identity = ctx.recipe.hash();
  o.teacher_cache_dir = ctx.options.teacher_cache_dir;
  return o;
}

nlohmann::json run_distill(const StageSpec&, StageContext& ctx) {
  Pipeline& p = ctx.pipeline;
  nlohmann::json stage = run_distill_stage(ctx.recipe, ctx.index, ctx.teacher, ctx.recipe.teacher_hash(),
                                           ctx.data, p.student, p.student_given, training_options(ctx));
  if (!stage.value("completed", false)) return stage;
  p.student_given = true;
  for (const auto& r : stage["runs"]) {
    if (r["kind"] != "scratch" || r["seed"] != stage["runs"][0]["seed"]) continue;
    p.baseline = model_entry("student (scratch)", "baseline_fp32", "libtorch fp32", r["params"],
                             r["fp32_bytes"], r["test"], nullptr);
    p.baseline["agreement"] = r["vs_teacher"]["agreement"];
    p.baseline["kl"] = r["vs_teacher"]["kl"];
  }
  return stage;
}

nlohmann::json run_prune(const StageSpec&, StageContext& ctx) {
  nlohmann::json stage = run_prune_stage(ctx.recipe, ctx.index, ctx.teacher, ctx.data, ctx.pipeline.student,
                                         training_options(ctx));
  if (stage.value("completed", false)) ctx.pipeline.student_given = true;
  return stage;
}

nlohmann::json run_quantize(const StageSpec& spec, StageContext& ctx) {
  Pipeline& p = ctx.pipeline;
  nlohmann::json stage;
  fmt::print(stderr, "quantize: calibrating\n");
  p.quantized = std::make_unique<QuantizedModel>(
      quantize_with_accuracy_control(p.student, spec.get<QuantizeSpec>(), ctx.data, stage));
  QuantizedModel& qm = *p.quantized;
  stage["simulated_test"] =
      evaluate_forward([&](const torch::Tensor& x) { return qm.forward(x); }, ctx.data, Split::kTest);
  fmt::print(stderr, "quantize: {} layers int8; simulated test {}\n", stage["layers"].size(),
             summarize_metrics(stage["simulated_test"]));
  return stage;
}

// `artifact` as ONNX beside it (`onnx_path`): what was written, or why not (an op or quantization mode
// without an ONNX form; the .mighty files stand either way).
nlohmann::json write_onnx_beside(const std::string& artifact, const std::string& onnx_path) {
  try {
    const onnx_io::OnnxExport e = onnx_io::write_onnx(Artifact::open(artifact), onnx_path);
    fmt::print(stderr, "export: {} ({} bytes, {})\n", onnx_path,
               with_commas(static_cast<int64_t>(e.bytes.size())),
               e.quantized ? fmt::format("QDQ int8, {} int8 layers", e.int8_nodes.size()) : "fp32");
    return {{"path", onnx_path},
            {"bytes", e.bytes.size()},
            {"quantized", e.quantized},
            {"int8_layers", e.int8_nodes},
            {"op_types", e.op_types}};
  } catch (const Error& err) {
    fmt::print(stderr, "export: {} not written: {}\n", onnx_path, err.what());
    return {{"path", onnx_path}, {"error", err.what()}};
  }
}

nlohmann::json run_export(const StageSpec& spec, StageContext& ctx) {
  Pipeline& p = ctx.pipeline;
  const std::string& out = ctx.options.out_dir;
  p.fp32_artifact = out + "/student.fp32.mighty";
  p.student->eval();
  ArtifactWriter fp32_writer =
      export_fp32(p.student, artifact_metadata(ctx.recipe, ctx.data, "student_fp32"));
  add_input_tensors(fp32_writer, ctx.recipe, ctx.data);
  fp32_writer.write(p.fp32_artifact);
  p.artifact = out + "/model.mighty";
  p.artifact_writer =
      p.quantized ? p.quantized->export_artifact(artifact_metadata(ctx.recipe, ctx.data, "student_int8"))
                  : export_fp32(p.student, artifact_metadata(ctx.recipe, ctx.data, "student_fp32"));
  add_input_tensors(p.artifact_writer, ctx.recipe, ctx.data);
  p.artifact_writer.write(p.artifact);
  nlohmann::json stage = {{"kind", "export"},
                          {"path", p.artifact},
                          {"bytes", std::filesystem::file_size(p.artifact)},
                          {"fp32_path", p.fp32_artifact},
                          {"fp32_bytes", std::filesystem::file_size(p.fp32_artifact)}};
  fmt::print(stderr, "export: {} ({} bytes)\n", p.artifact, with_commas(stage["bytes"].get<int64_t>()));
  if (spec.get<ExportSpec>().onnx) {
    stage["onnx"] = {{"model", write_onnx_beside(p.artifact, out + "/model.onnx")},
                     {"fp32", write_onnx_beside(p.fp32_artifact, out + "/student.fp32.onnx")}};
    p.onnx = stage["onnx"];
  }
  return stage;
}

std::string export_markdown(const nlohmann::json& stage) {
  std::string out =
      fmt::format("\n## export\n\n- `{}`: {} bytes\n- `{}`: {} bytes (fp32)\n",
                  stage["path"].get<std::string>(), with_commas(stage["bytes"].get<int64_t>()),
                  stage["fp32_path"].get<std::string>(), with_commas(stage["fp32_bytes"].get<int64_t>()));
  if (!stage.contains("onnx")) return out + "- ONNX: turned off by the recipe\n";
  for (const char* key : {"model", "fp32"}) {
    const nlohmann::json& o = stage["onnx"][key];
    if (o.contains("error")) {
      out += fmt::format("- `{}`: not written: {}\n", o["path"].get<std::string>(),
                         o["error"].get<std::string>());
      continue;
    }
    out += fmt::format("- `{}`: {} bytes, {}; ONNX ops {}\n", o["path"].get<std::string>(),
                       with_commas(o["bytes"].get<int64_t>()),
                       o["quantized"].get<bool>()
                           ? fmt::format("QDQ int8 ({} int8 layers)", o["int8_layers"].size())
                           : std::string("fp32"),
                       fmt::join(o["op_types"].get<std::vector<std::string>>(), ", "));
  }
  return out;
}

std::string quantize_markdown(const nlohmann::json& stage) {
  std::string out =
      fmt::format("\n## quantize (observer {}, {} calibration batches)\n\n",
                  stage["observer"].get<std::string>(), stage["calibration_batches"].get<int64_t>());
  out +=
      "| layer | activations | input scale, zero point | bias correction (max) | SQNR of output |\n"
      "|---|---|---:|---:|---:|\n";
  for (const auto& l : stage["layers"]) {
    const std::string params =
        l.contains("input_scale")
            ? fmt::format("{:.4g}, {}", l["input_scale"].get<double>(), l["input_zero_point"].get<int>())
            : "per row";
    const std::string bc = l.contains("bias_correction_max")
                               ? fmt::format("{:.3g}", l["bias_correction_max"].get<double>())
                               : "-";
    out += fmt::format("| {} | {} | {} | {} | {:.1f} dB |\n", l["layer"].get<std::string>(),
                       l["activations"].get<std::string>(), params, bc, l["sqnr_db"].get<double>());
  }
  if (!stage["excluded"].empty()) out += fmt::format("\nkept in fp32: {}\n", stage["excluded"].dump());
  out += fmt::format("\nsimulated int8 test: {}\n", quality_cell(stage["simulated_test"]));
  if (stage.contains("accuracy_control")) {
    const auto& a = stage["accuracy_control"];
    const double limit = a["max_drop"].get<double>();
    out += fmt::format("\n**Accuracy control** ({}; {}; fallback {}): fp32 {:.4f}, int8 {:.4f}.\n",
                       a["metric"].get<std::string>(),
                       limit < 0 ? std::string("sensitivity only, no limit")
                                 : fmt::format("limit: a drop of {} against the float student", limit),
                       a["fallback"].get<std::string>(), a["fp32"].get<double>(), a["int8"].get<double>());
    if (a.contains("sensitivity")) {
      out += "\n| layer | alone to " + a["fallback"].get<std::string>() + " | gain |\n|---|---:|---:|\n";
      for (const auto& l : a["sensitivity"])
        out += fmt::format("| {} | {:.4f} | {:+.4f} |\n", l["layer"].get<std::string>(),
                           l["quality"].get<double>(), l["gain"].get<double>());
      if (!a["steps"].empty())
        out += "\n| step | layer fallen back | quality | drop |\n|---:|---|---:|---:|\n";
      int k = 0;
      for (const auto& st : a["steps"])
        out += fmt::format("| {} | {} | {:.4f} | {:.4f} |\n", ++k, st["layer"].get<std::string>(),
                           st["quality"].get<double>(), st["drop"].get<double>());
    }
    out += fmt::format("\nFinal: {:.4f} (drop {:.4f}), {} layer(s) fallen back.\n",
                       a["final"]["quality"].get<double>(), a["final"]["drop"].get<double>(),
                       a["final"]["layers_fallen_back"].size());
  }
  return out;
}

// Order ranks: training stages (any number) < quantize < export < verify (each at most once).
const StageDef kStages[] = {
    {"distill", detail::read_distill, detail::distill_to_json, 0, true, nullptr, nullptr, true, run_distill,
     distill_markdown, false},
    {"prune", detail::read_prune, detail::prune_to_json, 0, true, nullptr, nullptr, true, run_prune,
     prune_markdown, false},
    {"quantize", detail::read_quantize, detail::quantize_to_json, 1, false, nullptr, nullptr, false,
     run_quantize, quantize_markdown, false},
    {"export", detail::read_export, detail::export_to_json, 2, false, nullptr, nullptr, false, run_export,
     export_markdown, false},
    {"verify", detail::read_verify, detail::verify_to_json, 3, false, "export",
     "checks the exported artifact", false, run_verify_stage, verify_markdown, true},
};

}  // namespace

std::string StageContext::dir() const {
  return fmt::format("{}/stages/{}-{}", options.out_dir, index, recipe.stages[index].kind);
}

const std::vector<const StageDef*>& stage_defs() {
  static const std::vector<const StageDef*> defs = [] {
    std::vector<const StageDef*> v;
    for (const StageDef& d : kStages) v.push_back(&d);
    return v;
  }();
  return defs;
}

const StageDef& stage_def(const std::string& kind) {
  std::string known;
  for (const StageDef* d : stage_defs()) {
    if (kind == d->kind) return *d;
    known += fmt::format("{}{}", known.empty() ? "" : ", ", d->kind);
  }
  throw Error(fmt::format("unknown stage kind '{}' (stages: {})", kind, known));
}

namespace detail {

StageSpec read_stage(JsonReader& st, const Recipe& r) {
  std::vector<std::string> kinds;
  for (const StageDef* d : stage_defs()) kinds.push_back(d->kind);
  StageSpec s;
  s.kind = st.choice("kind", std::nullopt, kinds);
  stage_def(s.kind).read(st, r, s);
  st.finish();
  return s;
}

nlohmann::json stage_to_json(const StageSpec& s) {
  nlohmann::json j = stage_def(s.kind).to_json(s);
  j["kind"] = s.kind;
  return j;
}

void check_stage_order(JsonReader& root, const std::vector<StageSpec>& stages) {
  for (size_t i = 0; i < stages.size(); ++i) {
    const StageDef& def = stage_def(stages[i].kind);
    const std::string at = fmt::format("stages/{}/kind", i);
    if (i > 0) {
      const StageDef& prev = stage_def(stages[i - 1].kind);
      if (def.order < prev.order || (def.order == prev.order && !def.repeats)) {
        std::string order;
        for (const StageDef* d : stage_defs())
          order += fmt::format("{}{}{}", order.empty() ? "" : ", ", d->kind, d->repeats ? "..." : "");
        root.fail_at_path(at,
                          fmt::format("'{}' cannot come after '{}' (order: {})", def.kind, prev.kind, order));
      }
    }
    if (def.after && (i == 0 || stages[i - 1].kind != def.after)) {
      root.fail_at_path(
          at, fmt::format("'{}' {}: put an '{}' stage before it", def.kind, def.after_why, def.after));
    }
  }
}

}  // namespace detail

nlohmann::json model_entry(const std::string& name, const std::string& role, const std::string& engine,
                           int64_t params, int64_t bytes, const nlohmann::json& test,
                           const nlohmann::json& speed) {
  nlohmann::json m = {
      {"name", name}, {"role", role}, {"engine", engine}, {"params", params}, {"bytes", bytes}};
  if (test.contains("accuracy")) m["accuracy"] = test["accuracy"];
  for (const char* key : {"precision", "recall", "positive_class"}) {
    if (test.contains(key)) m[key] = test[key];
  }
  if (test.contains("bits_per_char")) m["bits_per_char"] = test["bits_per_char"];
  if (!speed.is_null()) {
    m["latency_ms_b1"] = speed["latency_ms_b1"];
    m["latency_ms_b1_p99"] = speed["latency_ms_b1_p99"];
    m["throughput_b64"] = speed["throughput_per_s"];
    m["threads"] = speed["threads"];
  }
  return m;
}

}  // namespace mighty::compress
