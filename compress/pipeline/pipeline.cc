#include "compress/pipeline/pipeline.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "compress/data/data.h"
#include "compress/models/lower.h"
#include "compress/models/teacher.h"
#include "compress/models/use_lite.h"
#include "compress/models/zoo.h"
#include "compress/passes/distill.h"
#include "compress/passes/export.h"
#include "compress/passes/prune.h"
#include "compress/passes/quantize.h"
#include "compress/pipeline/report_html.h"
#include "compress/pipeline/stages.h"
#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/exec/tasks.h"
#include "runtime/format/input_spec.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/progress.h"

namespace mighty::compress {
namespace {

// Whether the teacher cache `dir` holds a complete teacher of this hash (teacher.pt and its metrics.json).
// Data-parallel: rank 0's cache decides, and the other ranks load its file.
bool cached_teacher(const std::string& dir, const std::string& teacher_hash) {
  return !completed_record(dir + "/metrics.json", {dir + "/teacher.pt"}, "teacher_hash", teacher_hash)
              .is_null();
}

// USE-Lite + its head: the head is trained once per (seed, data, teacher spec) into the data cache.
std::unique_ptr<Teacher> obtain_use_lite(const Recipe& recipe, const Dataset& data, nlohmann::json& info) {
  const TeacherSpec& t = recipe.teacher_spec;
  const std::string model_json = expand_data_path(t.use_lite);
  torch::manual_seed(recipe.seed);  // the head's initial weights: the same whatever ran before
  UseLiteClassifier model(model_json, t.head_hidden, data.classes());
  const std::string dir = fmt::format("{}/teachers/{}", data_cache_dir(), recipe.teacher_hash());
  const std::string weights = dir + "/teacher.pt", metrics_path = dir + "/metrics.json";
  info["cache"] = dir;
  info["model_json"] = model_json;
  const bool cached = cached_teacher(dir, recipe.teacher_hash());
  info["cached"] = cached;
  if (cached) {
    fmt::print(stderr, "teacher: USE-Lite head trained earlier, reusing {}\n", weights);
    torch::serialize::InputArchive archive;
    std::istringstream bytes(dist::read_file(weights));
    archive.load_from(bytes);
    model->load(archive);
  } else {
    fmt::print(stderr, "teacher: training USE-Lite's head once into the cache {}\n", dir);
    const auto trained = train_use_lite(model, recipe.teacher_train, t.finetune, data, recipe.seed);
    info["train_seconds"] = trained["seconds"];
    if (dist::writes()) {
      ensure_run_dir(dir);
      torch::serialize::OutputArchive archive;
      model->save(archive);
      std::ostringstream bytes;
      archive.save_to(bytes);
      write_file_atomic(weights, bytes.str());
      write_json(metrics_path, {{"teacher_hash", recipe.teacher_hash()}, {"train", trained}});
    }
  }
  info["weights"] = weights;
  return std::make_unique<UseLiteTeacher>(model);
}

}  // namespace

std::unique_ptr<Teacher> obtain_teacher(const Recipe& recipe, const Dataset& data, const JobOptions& options,
                                        nlohmann::json& info) {
  const TeacherSpec& t = recipe.teacher_spec;
  info = {{"source", t.source}, {"teacher_hash", recipe.teacher_hash()}};
  if (t.source == "torchscript") {
    info["path"] = t.torchscript;
    return std::make_unique<TorchScriptTeacher>(t.torchscript, t.input, data);
  }
  if (t.source == "onnx") {
    info["path"] = t.onnx;
    GraphModule model = import_onnx(t.onnx, {});
    return std::make_unique<ImportedTeacher>(model, t.onnx, t.input, data);
  }
  if (t.source == "use_lite") return obtain_use_lite(recipe, data, info);
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  GraphModule model(build_graph(spec));
  std::string weights = t.checkpoint;
  if (t.source == "train") {
    const std::string dir = fmt::format("{}/teachers/{}", data_cache_dir(), recipe.teacher_hash());
    weights = dir + "/teacher.pt";
    const bool cached = cached_teacher(dir, recipe.teacher_hash());
    info["cache"] = dir;
    info["cached"] = cached;
    if (cached) {
      fmt::print(stderr, "teacher: trained earlier, reusing {}\n", weights);
    } else {
      fmt::print(stderr, "teacher: training it once into the cache {}\n", dir);
      JobOptions topts = options;
      topts.out_dir = dir;
      topts.resume = true;  // a cache directory is always continued
      topts.quiet = true;
      const auto metrics = run_train(recipe, data, topts);
      if (!metrics.value("train", nlohmann::json::object()).value("completed", false)) return nullptr;
      info["train_seconds"] = metrics["train"]["seconds"];
    }
  }
  info["weights"] = weights;
  load_weights(model, weights);
  return std::make_unique<ZooTeacher>(model, spec.arch);
}

std::string report_markdown(const nlohmann::json& report) {
  std::string out = fmt::format("# {} — mighty compress\n\n", report.at("recipe").get<std::string>());
  out +=
      "| model | role | engine | parameters | bytes | test | vs teacher (agreement, KL) | latency b1 (p50, "
      "p99) "
      "| throughput b64 |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& m : report.at("models")) {
    std::string agreement = "-";
    if (m.contains("agreement"))
      agreement = fmt::format("{:.2f}%, {:.4f}", 100.0 * m["agreement"].get<double>(), m["kl"].get<double>());
    std::string latency = "-", throughput = "-";
    if (m.contains("latency_ms_b1")) {
      latency = fmt::format("{:.3f} ms, {:.3f} ms", m["latency_ms_b1"].get<double>(),
                            m["latency_ms_b1_p99"].get<double>());
      throughput = fmt::format("{:.0f}/s", m["throughput_b64"].get<double>());
    }
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", m["name"].get<std::string>(),
                       m["role"].get<std::string>(), m.value("engine", "-"),
                       with_commas(m["params"].get<int64_t>()), with_commas(m["bytes"].get<int64_t>()),
                       quality_cell(m), agreement, latency, throughput);
  }
  // Each stage's own section: the summaries (verify) first, then the others in recipe order.
  for (const bool summary : {true, false}) {
    for (const auto& stage : report.at("stages")) {
      const StageDef& def = stage_def(stage.at("kind").get<std::string>());
      if (def.markdown && def.summary == summary) out += def.markdown(stage);
    }
  }
  return out;
}

void prepare_teacher(const Recipe& recipe, const Dataset& data) {
  JobOptions options;
  nlohmann::json info;
  if (!obtain_teacher(recipe, data, options, info)) throw Error("teacher: its training stopped early");
}

std::string rewrite_reports(const std::string& dir) {
  const std::string path = dir + "/report.json";
  if (!std::filesystem::exists(path)) throw Error(path + ": no such file (is " + dir + " a compress run?)");
  const auto report = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded() || !report.is_object()) throw Error(path + ": not a JSON object");
  for (const char* key : {"recipe", "models", "stages"})
    if (!report.contains(key)) throw Error(fmt::format("{}: no '{}' (not a compress report)", path, key));
  if (!report.value("completed", false)) throw Error(path + ": the run did not complete");
  std::string md, html;
  try {
    md = report_markdown(report);
    html = report_html(report, md);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not a report this mighty can read ({})", path, e.what()));
  }
  write_text(dir + "/report.md", md);
  write_text(dir + "/report.html", html);
  return dir + "/report.html";
}

namespace {

// The student: a TorchScript or ONNX model lowered to the graph IR, or a zoo spec (from a checkpoint, or
// initialized).
void make_student(const Recipe& recipe, const Dataset& data, Pipeline& p) {
  if (!recipe.student_torchscript.empty() || !recipe.student_onnx.empty()) {
    const bool onnx = !recipe.student_onnx.empty();
    const std::string& path = onnx ? recipe.student_onnx : recipe.student_torchscript;
    p.student = onnx ? import_onnx(path, data.input_shape()) : lower_torchscript(path, data.input_shape());
    fmt::print(stderr, "student: {} {} to {} graph nodes, {} parameters\n", onnx ? "imported" : "lowered",
               path, p.student->graph().nodes().size(), with_commas(p.student->parameter_count()));
    const bool trains = std::any_of(recipe.stages.begin(), recipe.stages.end(), [](const StageSpec& s) {
      return s.kind == "distill" || s.kind == "prune";
    });
    if (trains && recipe.student_train_batchnorm) {
      int inserted = 0;
      p.student = with_batchnorm_after_convs(p.student, &inserted);
      if (inserted > 0)
        fmt::print(stderr,
                   "student: a BatchNorm2d after each of {} convolutions that had none, for training "
                   "(student.train_batchnorm; folded again by quantize)\n",
                   inserted);
    }
  } else {
    torch::manual_seed(recipe.seed);  // the initialization does not depend on whether the teacher was cached
    p.student = GraphModule(build_graph(fill_from_data(recipe.student, data, "/student/model")));
    if (!recipe.student_checkpoint.empty()) load_weights(p.student, recipe.student_checkpoint);
  }
  // Distillation fine-tunes given weights; a zoo student without a checkpoint starts from each seed's init.
  // Later training stages continue from the earlier ones.
  p.student_given = !recipe.student_torchscript.empty() || !recipe.student_onnx.empty() ||
                    !recipe.student_checkpoint.empty();
}

// Without a verify stage: the teacher and the student in LibTorch, side by side.
nlohmann::json unverified_models(const Recipe& recipe, const Dataset& data, const JobOptions& options,
                                 Teacher& teacher, Pipeline& p, const nlohmann::json& teacher_test) {
  const Forward teacher_forward = [&](const torch::Tensor& x) { return teacher.logits(x); };
  nlohmann::json teacher_speed, student_speed;
  teacher.remember_outputs(false);
  if (options.measure_speed) {
    teacher_speed = measure_speed(teacher_forward, data, recipe.eval);
    student_speed = measure_speed(p.student, data, recipe.eval);
  }
  nlohmann::json models = nlohmann::json::array();
  models.push_back(model_entry("teacher", "teacher", "libtorch fp32", teacher.parameter_count(),
                               teacher.fp32_bytes(), teacher_test, teacher_speed));
  auto sm =
      model_entry("student", "student_fp32", "libtorch fp32", p.student->parameter_count(),
                  p.student->fp32_bytes(), evaluate_split(p.student, data, Split::kTest), student_speed);
  const auto vs = compare_models(
      teacher_forward, [&](const torch::Tensor& x) { return p.student->forward(x); }, data, Split::kTest);
  sm["agreement"] = vs["agreement"];
  sm["kl"] = vs["kl"];
  models.push_back(sm);
  return models;
}

}  // namespace

nlohmann::json run_compress(const Recipe& recipe, const JobOptions& options) {
  if (recipe.stages.empty()) {
    throw Error(
        fmt::format("{}: no stages to run ('mighty compress' needs 'student' and 'stages')", recipe.file));
  }
  return run_compress(recipe, load_dataset(recipe.data, recipe.seed), options);
}

nlohmann::json run_compress(const Recipe& recipe, const Dataset& data, const JobOptions& options) {
  ensure_run_dir(options.out_dir);
  nlohmann::json resolved = {{"recipe", recipe.to_json()},
                             {"recipe_hash", recipe.hash()},
                             {"teacher_hash", recipe.teacher_hash()},
                             {"data_hash", data.hash},
                             {"source", recipe.file}};
  write_json(options.out_dir + "/recipe.json", resolved);

  nlohmann::json teacher_info;
  auto teacher = obtain_teacher(recipe, data, options, teacher_info);
  if (!teacher) return {{"completed", false}};
  check_teacher_output(*teacher, data);
  teacher->remember_outputs(true);  // off again before anything is timed
  const Forward teacher_forward = [&](const torch::Tensor& x) { return teacher->logits(x); };
  // Data-parallel: the other ranks take part in the training stages only; rank 0 alone calibrates,
  // exports, verifies and reports.
  size_t last_training_stage = 0;
  bool trains = false;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    if (stage_def(recipe.stages[i].kind).trains) {
      last_training_stage = i;
      trains = true;
    }
  }
  if (!dist::writes() && !trains) return {{"completed", true}, {"rank", dist::rank()}};
  nlohmann::json teacher_test;
  if (dist::writes()) {
    teacher_test = evaluate_forward(teacher_forward, data, Split::kTest);
    fmt::print(stderr, "teacher ({}, {} parameters): test {}\n", teacher->describe(),
               with_commas(teacher->parameter_count()), summarize_metrics(teacher_test));
  }

  Pipeline p;
  make_student(recipe, data, p);
  nlohmann::json stages = nlohmann::json::array();
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const StageSpec& spec = recipe.stages[i];
    StageContext ctx{recipe, options, data, *teacher, teacher_test, p, i};
    nlohmann::json stage = stage_def(spec.kind).run(spec, ctx);
    if (!stage.value("completed", true)) return {{"completed", false}};
    stage["kind"] = spec.kind;
    stage["index"] = i;
    stages.push_back(stage);
    if (trains && i == last_training_stage) {
      if (!dist::writes()) return {{"completed", true}, {"rank", dist::rank()}};
      dist::finish();  // no collective follows
    }
  }
  save_weights(p.student, options.out_dir + "/student.pt");
  write_json(options.out_dir + "/student.graph.json", p.student->graph().to_json());

  const bool verified = !p.verify_models.is_null();
  const nlohmann::json models =
      verified ? p.verify_models : unverified_models(recipe, data, options, *teacher, p, teacher_test);
  nlohmann::json report_models = models;
  if (!p.baseline.is_null()) report_models.insert(report_models.begin() + 1, p.baseline);
  nlohmann::json report = {{"recipe", recipe.name},  {"recipe_hash", recipe.hash()},
                           {"data_hash", data.hash}, {"teacher", teacher_info},
                           {"completed", true},      {"models", report_models},
                           {"stages", stages}};
  if (verified) report["verify"] = stages.back();
  write_json(options.out_dir + "/report.json", report);
  const std::string md = report_markdown(report);
  write_text(options.out_dir + "/report.md", md);
  write_text(options.out_dir + "/report.html", report_html(report, md));
  if (!options.quiet) fmt::print("{}", md);
  if (verified && !report["verify"]["pass"].get<bool>()) {
    std::string failed;
    for (const auto& c : report["verify"]["criteria"]) {
      if (c["pass"].get<bool>()) continue;
      failed +=
          fmt::format("{}{} = {:.4g} (limit {:.4g})", failed.empty() ? "" : "; ",
                      c["criterion"].get<std::string>(), c["value"].get<double>(), c["limit"].get<double>());
    }
    throw Error(fmt::format("verify: criteria not met: {} (report: {}/report.md)", failed, options.out_dir));
  }
  return report;
}

}  // namespace mighty::compress
