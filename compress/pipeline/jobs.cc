#include "compress/pipeline/jobs.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "compress/data/data.h"
#include "compress/models/teacher.h"
#include "compress/models/use_lite.h"
#include "compress/models/zoo.h"
#include "compress/passes/distill.h"
#include "compress/passes/export.h"
#include "compress/pipeline/pipeline.h"
#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "runtime/error.h"
#include "runtime/format/input_spec.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/progress.h"

namespace mighty::compress {
namespace {

void ensure_dir(const std::string& dir) {
  if (!dist::writes()) return;  // rank 0 writes the run's files
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

nlohmann::json completed_record(const std::string& record, const std::vector<std::string>& outputs,
                                const char* key_field, const std::string& key) {
  if (!dist::exists(record)) return nullptr;
  for (const auto& f : outputs)
    if (!dist::exists(f)) return nullptr;
  auto done = nlohmann::json::parse(dist::read_file(record), nullptr, false);
  if (!done.is_object() || !done.contains(key_field) || !done[key_field].is_string() ||
      done[key_field] != key)
    return nullptr;
  return done;
}

void ensure_run_dir(const std::string& dir) { ensure_dir(dir); }

void write_json(const std::string& path, const nlohmann::json& j) {
  if (!dist::writes()) return;
  write_file_atomic(path, j.dump(2) + "\n");
}

void write_text(const std::string& path, const std::string& text) {
  if (!dist::writes()) return;
  write_file_atomic(path, text);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// "a TorchScript file", "an ONNX file", ...: what the recipe's teacher is, for messages.
std::string teacher_kind(const Recipe& recipe) {
  const std::string& s = recipe.teacher_spec.source;
  if (s == "torchscript") return "a TorchScript file";
  if (s == "onnx") return "an ONNX file";
  if (s == "use_lite") return "USE-Lite";
  return s == "checkpoint" ? "a checkpoint" : "a zoo model mighty trains";
}

void require_trainable_teacher(const Recipe& recipe, const char* verb) {
  if (recipe.teacher_spec.source != "train") {
    throw Error(
        fmt::format("{}: '{}' trains a zoo teacher, but this recipe's teacher is {} (use 'mighty compress')",
                    recipe.file, verb, teacher_kind(recipe)));
  }
}

nlohmann::json run_train(const Recipe& recipe, const JobOptions& options) {
  return run_train(recipe, load_dataset(recipe.data, recipe.seed), options);
}

nlohmann::json run_train(const Recipe& recipe, const Dataset& data, const JobOptions& options) {
  require_trainable_teacher(recipe, "train");
  ensure_dir(options.out_dir);
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
  if (!dist::writes()) return {{"train", train}};  // rank 0 evaluates and writes
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
  if (recipe.teacher_spec.source == "torchscript" || recipe.teacher_spec.source == "onnx") {
    throw Error(fmt::format("{}: 'eval' evaluates a zoo teacher; this recipe's teacher is {}", recipe.file,
                            teacher_kind(recipe)));
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
  if (recipe.teacher_spec.source == "torchscript" || recipe.teacher_spec.source == "onnx") {
    throw Error(fmt::format("{}: 'export' exports a zoo or USE-Lite teacher; this recipe's teacher is {}",
                            recipe.file, teacher_kind(recipe)));
  }
  const Dataset data = load_dataset(recipe.data, recipe.seed);
  const std::string path = options.out_dir + (options.int8 ? "/teacher.int8.mighty" : "/teacher.fp32.mighty");
  if (recipe.teacher_spec.source == "use_lite") {  // its head trained once into the data cache, then exported
    nlohmann::json info;
    const auto teacher = obtain_teacher(recipe, data, options, info);
    auto& use = dynamic_cast<UseLiteTeacher&>(*teacher);
    ensure_run_dir(options.out_dir);
    export_use_lite(use.model(), recipe, data, options.int8).write(path);
    if (!options.quiet)
      fmt::print("exported {} ({} parameters, {} bytes)\n", path, with_commas(use.parameter_count()),
                 std::filesystem::file_size(path));
    return path;
  }
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  GraphModule model(build_graph(spec));
  load_weights(model, recipe.teacher_spec.source == "checkpoint" ? recipe.teacher_spec.checkpoint
                                                                 : options.out_dir + "/teacher.pt");
  model->eval();
  const nlohmann::json metadata = artifact_metadata(recipe, data, "teacher_fp32");
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

}  // namespace mighty::compress
