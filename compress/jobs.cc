#include "compress/jobs.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "compress/data.h"
#include "compress/distill.h"
#include "compress/evaluate.h"
#include "compress/export.h"
#include "compress/teacher.h"
#include "compress/trainer.h"
#include "compress/zoo.h"
#include "runtime/atomic_file.h"
#include "runtime/error.h"
#include "runtime/input_spec.h"
#include "runtime/progress.h"

namespace mighty::compress {
namespace {

void ensure_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create run directory: {}", dir, ec.message()));
}

nlohmann::json model_summary(const ModelSpec& spec, GraphModule& model) {
  return {{"arch", spec.arch},
          {"params", model->parameter_count()},
          {"fp32_bytes", model->fp32_bytes()},
          {"spec", model_spec_to_json(spec)}};
}

void write_json(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

nlohmann::json evaluate_teacher(const Recipe& recipe, const Dataset& data, const ModelSpec& spec,
                                GraphModule& model, const JobOptions& options) {
  nlohmann::json metrics = {{"recipe", recipe.name},
                            {"recipe_hash", recipe.hash()},
                            {"teacher_hash", recipe.teacher_hash()},
                            {"data_hash", data.hash},
                            {"model", model_summary(spec, model)},
                            {"test", evaluate_split(model, data, Split::kTest, /*detailed=*/true)}};
  if (options.measure_speed) metrics["speed"] = measure_speed(model, data, recipe.eval);
  return metrics;
}

}  // namespace

void require_trainable_teacher(const Recipe& recipe, const char* verb) {
  if (recipe.teacher_spec.source != "train") {
    throw Error(fmt::format(
        "{}: '{}' trains a zoo teacher, but this recipe's teacher is {} (use 'mighty compress')", recipe.file,
        verb, recipe.teacher_spec.source == "torchscript" ? "a TorchScript file" : "a checkpoint"));
  }
}

nlohmann::json run_train(const Recipe& recipe, const JobOptions& options) {
  require_trainable_teacher(recipe, "train");
  ensure_dir(options.out_dir);
  const Dataset data = load_dataset(recipe.data, recipe.seed);
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  nlohmann::json resolved = {{"recipe", recipe.to_json()},
                             {"recipe_hash", recipe.hash()},
                             {"data_hash", data.hash},
                             {"source", recipe.file}};
  resolved["recipe"]["teacher"]["model"] = model_spec_to_json(spec);
  write_json(options.out_dir + "/recipe.json", resolved);

  torch::manual_seed(recipe.seed);  // initial weights
  GraphModule model(build_graph(spec));
  write_json(options.out_dir + "/teacher.graph.json", model->graph().to_json());
  fmt::print(stderr, "teacher: {} with {} parameters; {} training examples, {} steps\n", spec.arch,
             with_commas(model->parameter_count()), data.train_size(),
             total_steps(recipe.teacher_train, data));

  TrainOptions topts;
  topts.checkpoint_path = options.out_dir + "/checkpoint.pt";
  topts.resume = options.resume;
  topts.stop_after_steps = options.stop_after_steps;
  topts.label = "train teacher";
  topts.identity =
      recipe.teacher_hash();  // the checkpoint belongs to the teacher, whatever else the recipe says
  const TrainResult result = train_model(model, recipe.teacher_train, data, recipe.seed, topts);
  nlohmann::json train = {{"steps", result.steps_done},
                          {"total_steps", result.total_steps},
                          {"completed", result.completed},
                          {"seconds", result.seconds},
                          {"history", result.history}};
  if (!result.completed) {
    fmt::print(stderr, "train teacher: stopped after step {}/{}; continue with --resume\n", result.steps_done,
               result.total_steps);
    return {{"train", train}};
  }
  save_weights(model, options.out_dir + "/teacher.pt");
  nlohmann::json metrics = evaluate_teacher(recipe, data, spec, model, options);
  metrics["train"] = train;
  write_json(options.out_dir + "/metrics.json", metrics);
  if (!options.quiet) fmt::print("{}", metrics_table(metrics));
  return metrics;
}

nlohmann::json run_eval(const Recipe& recipe, const JobOptions& options, const std::string& weights) {
  if (recipe.teacher_spec.source == "torchscript") {
    throw Error(fmt::format("{}: 'eval' evaluates a zoo teacher; this recipe's teacher is a TorchScript file",
                            recipe.file));
  }
  ensure_dir(options.out_dir);
  const Dataset data = load_dataset(recipe.data, recipe.seed);
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  GraphModule model(build_graph(spec));
  std::string path = weights;
  if (path.empty()) {
    path = recipe.teacher_spec.source == "checkpoint" ? recipe.teacher_spec.checkpoint
                                                      : options.out_dir + "/teacher.pt";
  }
  load_weights(model, path);
  nlohmann::json metrics = evaluate_teacher(recipe, data, spec, model, options);
  // Keep what training recorded (history, time) when re-evaluating the same run.
  const std::string metrics_path = options.out_dir + "/metrics.json";
  if (std::filesystem::exists(metrics_path)) {
    const auto previous = nlohmann::json::parse(read_file(metrics_path), nullptr, /*allow_exceptions=*/false);
    if (previous.is_object() && previous.contains("train") &&
        previous.value("recipe_hash", "") == recipe.hash()) {
      metrics["train"] = previous["train"];
    }
  }
  write_json(metrics_path, metrics);
  if (!options.quiet) fmt::print("{}", metrics_table(metrics));
  return metrics;
}

std::string run_export(const Recipe& recipe, const JobOptions& options) {
  if (recipe.teacher_spec.source == "torchscript") {
    throw Error(fmt::format("{}: 'export' exports a zoo teacher; this recipe's teacher is a TorchScript file",
                            recipe.file));
  }
  const Dataset data = load_dataset(recipe.data, recipe.seed);
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  GraphModule model(build_graph(spec));
  load_weights(model, recipe.teacher_spec.source == "checkpoint" ? recipe.teacher_spec.checkpoint
                                                                 : options.out_dir + "/teacher.pt");
  model->eval();
  InputSpec input;
  input.kind = data.kind;
  nlohmann::json labels = nlohmann::json::array();
  if (data.kind == "images") {
    input.shape = data.input_shape();
    input.mean = static_cast<float>(data.images.mean);
    input.std = static_cast<float>(data.images.std);
    labels = data.images.class_names;
  } else {
    input.vocab = data.text.vocab;
    input.context = data.text.context;
  }
  const nlohmann::json metadata = {{"producer", "mighty"},     {"producer_version", "0.1.0"},
                                   {"recipe", recipe.name},    {"recipe_hash", recipe.hash()},
                                   {"data_hash", data.hash},   {"role", "teacher_fp32"},
                                   {"input", input.to_json()}, {"labels", labels}};
  const std::string path = options.out_dir + (options.int8 ? "/teacher.int8.mighty" : "/teacher.fp32.mighty");
  (options.int8 ? export_int8_dynamic(model, metadata) : export_fp32(model, metadata)).write(path);
  if (!options.quiet) {
    fmt::print("exported {} ({} parameters, {} bytes)\n", path, with_commas(model->parameter_count()),
               std::filesystem::file_size(path));
  }
  return path;
}

std::string metrics_table(const nlohmann::json& m) {
  std::string out;
  const auto& model = m.at("model");
  const auto& test = m.at("test");
  out += fmt::format("{} — teacher ({})\n", m.at("recipe").get<std::string>(),
                     model.at("arch").get<std::string>());
  auto row = [&](const std::string& k, const std::string& v) { out += fmt::format("  {:<22}{}\n", k, v); };
  row("parameters", with_commas(model.at("params").get<int64_t>()));
  row("size (fp32)", fmt::format("{:.1f} KiB", model.at("fp32_bytes").get<double>() / 1024.0));
  if (test.contains("accuracy")) {
    row("test accuracy", fmt::format("{:.2f}% ({} examples)", 100.0 * test["accuracy"].get<double>(),
                                     test["examples"].get<int64_t>()));
    row("test loss", fmt::format("{:.4f}", test["loss"].get<double>()));
  } else if (test.contains("bits_per_char")) {
    row("test bits/char", fmt::format("{:.4f} ({} characters)", test["bits_per_char"].get<double>(),
                                      test["characters"].get<int64_t>()));
    row("test loss", fmt::format("{:.4f} nats/char", test["loss"].get<double>()));
  }
  if (m.contains("speed")) {
    const auto& s = m["speed"];
    row("latency, batch 1",
        fmt::format("{:.3f} ms median, {:.3f} ms p99 ({} thread{})", s["latency_ms_b1"].get<double>(),
                    s["latency_ms_b1_p99"].get<double>(), s["threads"].get<int>(),
                    s["threads"].get<int>() == 1 ? "" : "s"));
    row(fmt::format("throughput, batch {}", s["throughput_batch"].get<int64_t>()),
        fmt::format("{:.0f} examples/s", s["throughput_per_s"].get<double>()));
  }
  if (m.contains("train")) {
    const auto& t = m["train"];
    row("training", fmt::format("{} steps in {}", t["steps"].get<int64_t>(),
                                format_duration(t["seconds"].get<double>())));
  }
  if (test.contains("per_class_accuracy")) {
    out += "  per-class accuracy:\n";
    const auto& names = test["class_names"];
    const auto& acc = test["per_class_accuracy"];
    for (size_t c = 0; c < acc.size(); ++c) {
      out += fmt::format("    {:<14}{:6.2f}%\n", names[c].get<std::string>(), 100.0 * acc[c].get<double>());
    }
  }
  return out;
}

namespace {

// The teacher of a compress run: trained once per (seed, data, teacher) in the data cache and reused by every
// recipe that shares them; or loaded from a checkpoint or a TorchScript file.
std::unique_ptr<Teacher> obtain_teacher(const Recipe& recipe, const Dataset& data, const JobOptions& options,
                                        nlohmann::json& info) {
  const TeacherSpec& t = recipe.teacher_spec;
  info = {{"source", t.source}, {"teacher_hash", recipe.teacher_hash()}};
  if (t.source == "torchscript") {
    info["path"] = t.torchscript;
    return std::make_unique<TorchScriptTeacher>(t.torchscript, t.input, data);
  }
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  GraphModule model(build_graph(spec));
  std::string weights = t.checkpoint;
  if (t.source == "train") {
    const std::string dir = fmt::format("{}/teachers/{}", data_cache_dir(), recipe.teacher_hash());
    weights = dir + "/teacher.pt";
    bool cached = false;
    if (std::filesystem::exists(weights) && std::filesystem::exists(dir + "/metrics.json")) {
      const auto m = nlohmann::json::parse(read_file(dir + "/metrics.json"), nullptr, false);
      cached = m.is_object() && m.value("teacher_hash", "") == recipe.teacher_hash();
    }
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
      const auto metrics = run_train(recipe, topts);
      if (!metrics.value("train", nlohmann::json::object()).value("completed", false)) return nullptr;
      info["train_seconds"] = metrics["train"]["seconds"];
    }
  }
  info["weights"] = weights;
  load_weights(model, weights);
  return std::make_unique<ZooTeacher>(model, spec.arch);
}

nlohmann::json model_entry(const std::string& name, const std::string& role, int64_t params, int64_t bytes,
                           const nlohmann::json& test, const nlohmann::json& speed) {
  nlohmann::json m = {{"name", name}, {"role", role}, {"params", params}, {"bytes", bytes}};
  if (test.contains("accuracy")) m["accuracy"] = test["accuracy"];
  if (test.contains("bits_per_char")) m["bits_per_char"] = test["bits_per_char"];
  if (!speed.is_null()) {
    m["latency_ms_b1"] = speed["latency_ms_b1"];
    m["latency_ms_b1_p99"] = speed["latency_ms_b1_p99"];
    m["throughput_b64"] = speed["throughput_per_s"];
    m["threads"] = speed["threads"];
  }
  return m;
}

std::string quality_cell(const nlohmann::json& m) {
  if (m.contains("accuracy")) return fmt::format("{:.2f}%", 100.0 * m["accuracy"].get<double>());
  if (m.contains("bits_per_char")) return fmt::format("{:.4f} bits/char", m["bits_per_char"].get<double>());
  return "-";
}

}  // namespace

std::string report_markdown(const nlohmann::json& report) {
  std::string out = fmt::format("# {} — mighty compress\n\n", report.at("recipe").get<std::string>());
  out +=
      "| model | role | parameters | bytes (fp32) | test | vs teacher (agreement, KL) | latency b1 | "
      "throughput b64 |\n|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& m : report.at("models")) {
    std::string agreement = "-";
    if (m.contains("agreement")) {
      agreement = fmt::format("{:.2f}%, {:.4f}", 100.0 * m["agreement"].get<double>(), m["kl"].get<double>());
    }
    std::string latency = "-", throughput = "-";
    if (m.contains("latency_ms_b1")) {
      latency = fmt::format("{:.3f} ms", m["latency_ms_b1"].get<double>());
      throughput = fmt::format("{:.0f}/s", m["throughput_b64"].get<double>());
    }
    out +=
        fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", m["name"].get<std::string>(),
                    m["role"].get<std::string>(), with_commas(m["params"].get<int64_t>()),
                    with_commas(m["bytes"].get<int64_t>()), quality_cell(m), agreement, latency, throughput);
  }
  for (const auto& stage : report.at("stages")) {
    if (stage.value("kind", "") != "distill") continue;
    out += fmt::format("\n## distill (alpha {}, T {}, {} feature term{})\n\n", stage["alpha"].get<double>(),
                       stage["temperature"].get<double>(), stage["features"].get<int64_t>(),
                       stage["features"].get<int64_t>() == 1 ? "" : "s");
    out += "| run | seed | test | agreement | KL | time |\n|---|---:|---:|---:|---:|---:|\n";
    for (const auto& r : stage["runs"]) {
      out += fmt::format("| {} | {} | {} | {:.2f}% | {:.4f} | {} |\n", r["kind"].get<std::string>(),
                         r["seed"].get<uint64_t>(), quality_cell(r["test"]),
                         100.0 * r["vs_teacher"]["agreement"].get<double>(),
                         r["vs_teacher"]["kl"].get<double>(), format_duration(r["seconds"].get<double>()));
    }
    const auto& summary = stage["summary"];
    for (const char* kind : {"distilled", "scratch"}) {
      if (!summary.contains(kind)) continue;
      const auto& k = summary[kind];
      const bool acc = k["metric"] == "accuracy";
      const double scale = acc ? 100.0 : 1.0;
      out += fmt::format("\n{}: mean {:.{}f}{} (sd {:.{}f}) over {} seed{}", kind,
                         scale * k["mean"].get<double>(), acc ? 2 : 4, acc ? "%" : " bits/char",
                         scale * k["std"].get<double>(), acc ? 2 : 4, k["values"].size(),
                         k["values"].size() == 1 ? "" : "s");
    }
    if (stage.contains("gain")) {
      const bool acc = summary["distilled"]["metric"] == "accuracy";
      out += fmt::format("\n\ngain of distillation over scratch: {:+.{}f}{}\n",
                         (acc ? 100.0 : 1.0) * stage["gain"].get<double>(), acc ? 2 : 4,
                         acc ? " points" : " bits/char");
    } else {
      out += "\n";
    }
  }
  return out;
}

nlohmann::json run_compress(const Recipe& recipe, const JobOptions& options) {
  if (recipe.stages.empty()) {
    throw Error(
        fmt::format("{}: no stages to run ('mighty compress' needs 'student' and 'stages')", recipe.file));
  }
  ensure_dir(options.out_dir);
  const Dataset data = load_dataset(recipe.data, recipe.seed);
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
  const Forward teacher_forward = [&](const torch::Tensor& x) { return teacher->logits(x); };
  const auto teacher_test = evaluate_forward(teacher_forward, data, Split::kTest);
  nlohmann::json teacher_speed;
  if (options.measure_speed) teacher_speed = measure_speed(teacher_forward, data, recipe.eval);
  fmt::print(stderr, "teacher ({}, {} parameters): test {}\n", teacher->describe(),
             with_commas(teacher->parameter_count()), summarize_metrics(teacher_test));

  const ModelSpec student_spec = fill_from_data(recipe.student, data, "/student/model");
  GraphModule student(build_graph(student_spec));
  nlohmann::json stages = nlohmann::json::array();
  nlohmann::json models = nlohmann::json::array();
  models.push_back(model_entry("teacher", "teacher", teacher->parameter_count(), teacher->fp32_bytes(),
                               teacher_test, teacher_speed));
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    StageOptions sopts;
    sopts.dir = fmt::format("{}/stages/{}-{}", options.out_dir, i, recipe.stages[i].kind);
    sopts.resume = options.resume;
    sopts.stop_after_steps = options.stop_after_steps;
    sopts.identity = recipe.hash();
    auto stage = run_distill_stage(recipe, i, *teacher, recipe.teacher_hash(), data, student, sopts);
    if (!stage.value("completed", false)) return {{"completed", false}};
    for (const auto& r : stage["runs"]) {
      if (r["kind"] != "scratch" || r["seed"] != stage["runs"][0]["seed"]) continue;
      auto m =
          model_entry("student (scratch)", "baseline_fp32", r["params"], r["fp32_bytes"], r["test"], nullptr);
      m["agreement"] = r["vs_teacher"]["agreement"];
      m["kl"] = r["vs_teacher"]["kl"];
      models.push_back(m);
    }
    stages.push_back(stage);
  }
  save_weights(student, options.out_dir + "/student.pt");
  write_json(options.out_dir + "/student.graph.json", student->graph().to_json());
  const auto student_test = evaluate_split(student, data, Split::kTest, /*detailed=*/true);
  nlohmann::json student_speed;
  if (options.measure_speed) student_speed = measure_speed(student, data, recipe.eval);
  auto sm = model_entry("student", "student_fp32", student->parameter_count(), student->fp32_bytes(),
                        student_test, student_speed);
  const auto vs = compare_models(
      teacher_forward, [&](const torch::Tensor& x) { return student->forward(x); }, data, Split::kTest);
  sm["agreement"] = vs["agreement"];
  sm["kl"] = vs["kl"];
  models.push_back(sm);

  nlohmann::json report = {{"recipe", recipe.name},  {"recipe_hash", recipe.hash()},
                           {"data_hash", data.hash}, {"teacher", teacher_info},
                           {"completed", true},      {"models", models},
                           {"stages", stages},       {"student_test", student_test}};
  write_json(options.out_dir + "/report.json", report);
  const std::string md = report_markdown(report);
  write_file_atomic(options.out_dir + "/report.md", md);
  if (!options.quiet) fmt::print("{}", md);
  return report;
}

}  // namespace mighty::compress
