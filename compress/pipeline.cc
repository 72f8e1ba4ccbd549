#include "compress/pipeline.h"

#include <filesystem>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "compress/data.h"
#include "compress/distill.h"
#include "compress/distributed.h"
#include "compress/evaluate.h"
#include "compress/export.h"
#include "compress/lower.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "compress/teacher.h"
#include "compress/trainer.h"
#include "compress/use_lite.h"
#include "compress/zoo.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/exec/tasks.h"
#include "runtime/format/input_spec.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/progress.h"

namespace mighty::compress {
namespace {

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
  bool cached = false;
  if (dist::exists(weights) && dist::exists(metrics_path)) {
    const auto m = nlohmann::json::parse(dist::read_file(metrics_path), nullptr, false);
    cached = m.is_object() && m.value("teacher_hash", "") == recipe.teacher_hash();
  }
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
  if (t.source == "use_lite") return obtain_use_lite(recipe, data, info);
  const ModelSpec spec = fill_from_data(recipe.teacher, data, "/teacher/model");
  GraphModule model(build_graph(spec));
  std::string weights = t.checkpoint;
  if (t.source == "train") {
    const std::string dir = fmt::format("{}/teachers/{}", data_cache_dir(), recipe.teacher_hash());
    weights = dir + "/teacher.pt";
    bool cached = false;
    // Data-parallel: rank 0's cache decides, and the other ranks load its file.
    if (dist::exists(weights) && dist::exists(dir + "/metrics.json")) {
      const auto m = nlohmann::json::parse(dist::read_file(dir + "/metrics.json"), nullptr, false);
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
      const auto metrics = run_train(recipe, data, topts);
      if (!metrics.value("train", nlohmann::json::object()).value("completed", false)) return nullptr;
      info["train_seconds"] = metrics["train"]["seconds"];
    }
  }
  info["weights"] = weights;
  load_weights(model, weights);
  return std::make_unique<ZooTeacher>(model, spec.arch);
}

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

// A runtime session as a Forward over LibTorch tensors (normalized NCHW floats, or int64 ids [B, T]).
Forward session_forward(const Session& s) {
  return [&s](const torch::Tensor& x) {
    const int64_t batch = x.size(0);
    std::vector<float> out;
    std::vector<int64_t> shape;
    if (x.scalar_type() == torch::kInt64) {
      const auto ids = x.contiguous();
      const int64_t length = x.size(1);
      out = s.run_tokens(ids.data_ptr<int64_t>(), batch, length);
      const bool per_token = s.graph().nodes()[static_cast<size_t>(s.graph().output())].shape.size() > 1;
      shape = per_token ? std::vector<int64_t>{batch, length, s.output_size(length) / length}
                        : std::vector<int64_t>{batch, s.output_size(length)};
    } else {
      const auto in = x.to(torch::kFloat32).contiguous();
      out = s.run(in.data_ptr<float>(), batch);
      shape = {batch, s.output_size()};
    }
    return torch::from_blob(out.data(), shape, torch::kFloat32).clone();
  };
}

// What the stages hand on to each other.
struct Pipeline {
  GraphModule student{nullptr};
  std::unique_ptr<QuantizedModel> quantized;
  std::string artifact, fp32_artifact;  // written by export
  ArtifactWriter artifact_writer;       // kept to rewrite model.mighty with the verify results
};

// The verify stage: the four models side by side on the whole test split, at one thread count.
nlohmann::json verify(const Recipe& recipe, const VerifySpec& spec, Pipeline& p, Teacher& teacher,
                      const Dataset& data, const nlohmann::json& teacher_test, nlohmann::json& models) {
  const int run_threads = torch::get_num_threads();
  const int threads = spec.threads > 0 ? static_cast<int>(spec.threads) : run_threads;
  torch::set_num_threads(threads);
  struct Restore {
    int n;
    ~Restore() { torch::set_num_threads(n); }
  } restore{run_threads};
  EvalSpec eval = recipe.eval;
  if (spec.latency_runs > 0) eval.latency_runs = spec.latency_runs;
  const Session int8(Artifact::open(p.artifact), threads);
  const Session fp32(Artifact::open(p.fp32_artifact), threads);
  const Forward teacher_fwd = [&](const torch::Tensor& x) { return teacher.logits(x); };
  const Forward student_fwd = [&](const torch::Tensor& x) { return p.student->forward(x); };
  const Forward int8_fwd = session_forward(int8), fp32_fwd = session_forward(fp32);
  p.student->eval();

  fmt::print(stderr, "verify: teacher (LibTorch fp32) speed\n");
  const auto teacher_speed = measure_speed(teacher_fwd, data, eval);
  fmt::print(stderr, "verify: student (LibTorch fp32)\n");
  const auto student_test = evaluate_forward(student_fwd, data, Split::kTest);
  const auto student_speed = measure_speed(student_fwd, data, eval);
  fmt::print(stderr, "verify: student (runtime fp32)\n");
  const auto fp32_test = evaluate_forward(fp32_fwd, data, Split::kTest);
  const auto fp32_speed = measure_speed(fp32_fwd, data, eval);
  fmt::print(stderr, "verify: student (runtime int8)\n");
  const auto int8_test = evaluate_forward(int8_fwd, data, Split::kTest);
  const auto int8_speed = measure_speed(int8_fwd, data, eval);

  const int64_t params = p.student->parameter_count();
  const auto teacher_bytes = static_cast<int64_t>(teacher.fp32_bytes());
  models = nlohmann::json::array();
  models.push_back(model_entry("teacher", "teacher", "libtorch fp32", teacher.parameter_count(),
                               teacher_bytes, teacher_test, teacher_speed));
  models.push_back(model_entry("student", "student_fp32", "libtorch fp32", params,
                               static_cast<int64_t>(std::filesystem::file_size(p.fp32_artifact)),
                               student_test, student_speed));
  models.push_back(model_entry("student", "student_fp32", "runtime fp32", params,
                               static_cast<int64_t>(std::filesystem::file_size(p.fp32_artifact)), fp32_test,
                               fp32_speed));
  models.push_back(model_entry("student", "student_int8", "runtime int8", params,
                               static_cast<int64_t>(std::filesystem::file_size(p.artifact)), int8_test,
                               int8_speed));
  const Forward teacher_on_test = remembered(teacher_fwd);  // one teacher pass serves the three comparisons
  for (size_t i = 1; i < models.size(); ++i) {
    const Forward& f = i == 1 ? student_fwd : i == 2 ? fp32_fwd : int8_fwd;
    const auto vs = compare_models(teacher_on_test, f, data, Split::kTest);
    models[i]["agreement"] = vs["agreement"];
    models[i]["kl"] = vs["kl"];
  }
  nlohmann::json report = {{"kind", "verify"}, {"threads", threads}, {"completed", true}};
  if (data.kind == "text") {
    // What the deployed language model writes, and how fast (incremental decoding with the key/value cache).
    const InputSpec input = InputSpec::from_json(int8.artifact().metadata().at("input"), p.artifact);
    const std::string prompt = "And God said, ";
    double tokens_per_s = 0.0;
    const std::string sample = generate(int8, input, prompt, 300, 0.8, 10, recipe.seed, &tokens_per_s);
    report["generation"] = {{"prompt", prompt}, {"characters", 300}, {"temperature", 0.8},
                            {"top_k", 10},      {"sample", sample},  {"tokens_per_s", tokens_per_s}};
  }
  if (p.quantized) {
    // The LibTorch simulation against the deployed file: the same predictions, the same logits up to the
    // float ops outside the quantized layers.
    QuantizedModel& qm = *p.quantized;
    const Forward sim = [&](const torch::Tensor& x) { return qm.forward(x); };
    report["simulation_vs_runtime"] = compare_models(sim, int8_fwd, data, Split::kTest);
  }
  // Criteria.
  const auto& t = models[0];
  const auto& q = models[3];
  nlohmann::json criteria = nlohmann::json::array();
  auto check = [&](const std::string& name, double value, double limit, bool at_most,
                   const std::string& text) {
    const bool pass = at_most ? value <= limit : value >= limit;
    criteria.push_back(
        {{"criterion", name}, {"value", value}, {"limit", limit}, {"pass", pass}, {"what", text}});
  };
  if (spec.max_accuracy_drop >= 0 && q.contains("accuracy")) {
    check("max_accuracy_drop", 100.0 * (t["accuracy"].get<double>() - q["accuracy"].get<double>()),
          spec.max_accuracy_drop, true, "accuracy points lost, teacher -> int8 student");
  }
  if (spec.max_bpc_increase >= 0 && q.contains("bits_per_char")) {
    check("max_bpc_increase", q["bits_per_char"].get<double>() - models[1]["bits_per_char"].get<double>(),
          spec.max_bpc_increase, true, "bits/char added by int8, fp32 student -> int8 student");
  }
  // The speedup from alternating runs of the two (the separate medians above can come from different loads).
  const auto paired = paired_latency(teacher_fwd, int8_fwd, data, eval.latency_runs);
  report["speedup_paired"] = paired;
  if (spec.min_speedup > 0) {
    check("min_speedup", paired["ratio"].get<double>(), spec.min_speedup, false,
          "batch-1 latency, LibTorch fp32 teacher / runtime int8 student, timed alternately");
  }
  if (spec.max_bytes > 0) {
    check("max_bytes", q["bytes"].get<double>(), static_cast<double>(spec.max_bytes), true,
          "bytes of model.mighty on disk");
  }
  bool pass = true;
  for (const auto& c : criteria) pass = pass && c["pass"].get<bool>();
  report["criteria"] = criteria;
  report["pass"] = pass;
  report["size_ratio"] = static_cast<double>(teacher_bytes) / q["bytes"].get<double>();
  report["speedup_b1"] = paired["ratio"];
  return report;
}

}  // namespace

std::string report_markdown(const nlohmann::json& report) {
  std::string out = fmt::format("# {} — mighty compress\n\n", report.at("recipe").get<std::string>());
  out +=
      "| model | role | engine | parameters | bytes | test | vs teacher (agreement, KL) | latency b1 (p50, "
      "p99) "
      "| throughput b64 |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& m : report.at("models")) {
    std::string agreement = "-";
    if (m.contains("agreement")) {
      agreement = fmt::format("{:.2f}%, {:.4f}", 100.0 * m["agreement"].get<double>(), m["kl"].get<double>());
    }
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
  if (report.contains("verify")) {
    const auto& v = report["verify"];
    out += fmt::format(
        "\nAll at {} thread{}. int8 student vs teacher: {:.1f}x smaller, {:.1f}x faster at batch 1 (timed "
        "alternately).\n",
        v["threads"].get<int>(), v["threads"].get<int>() == 1 ? "" : "s", v["size_ratio"].get<double>(),
        v["speedup_b1"].get<double>());
    if (v.contains("simulation_vs_runtime")) {
      out += fmt::format("LibTorch simulation vs runtime int8: {:.2f}% identical predictions.\n",
                         100.0 * v["simulation_vs_runtime"]["agreement"].get<double>());
    }
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
      out += fmt::format(
          "\nThe int8 model continues \"{}\" ({} characters/s, temperature {}, top-{}):\n\n> {}\n",
          gen["prompt"].get<std::string>(), static_cast<int64_t>(gen["tokens_per_s"].get<double>()),
          gen["temperature"].get<double>(), gen["top_k"].get<int64_t>(), quoted);
    }
    out += fmt::format("\nverify: **{}**\n", v["pass"].get<bool>() ? "pass" : "FAIL");
  }
  for (const auto& stage : report.at("stages")) {
    if (stage.value("kind", "") == "quantize") {
      out += fmt::format("\n## quantize (observer {}, {} calibration batches)\n\n",
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
      if (!stage["excluded"].empty()) {
        out += fmt::format("\nkept in fp32: {}\n", stage["excluded"].dump());
      }
      out += fmt::format("\nsimulated int8 test: {}\n", quality_cell(stage["simulated_test"]));
      continue;
    }
    if (stage.value("kind", "") == "prune") {
      out += prune_markdown(stage);
      continue;
    }
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
  ensure_run_dir(options.out_dir);
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
  teacher->remember_outputs(true);  // off again before anything is timed
  const Forward teacher_forward = [&](const torch::Tensor& x) { return teacher->logits(x); };
  // Data-parallel: the other ranks take part in the training stages only; rank 0 alone calibrates,
  // exports, verifies and reports.
  size_t last_training_stage = 0;
  bool trains = false;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    if (recipe.stages[i].kind == "distill" || recipe.stages[i].kind == "prune") {
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
  if (!recipe.student_torchscript.empty()) {
    p.student = lower_torchscript(recipe.student_torchscript, data.input_shape());
    fmt::print(stderr, "student: lowered {} to {} graph nodes, {} parameters\n", recipe.student_torchscript,
               p.student->graph().nodes().size(), with_commas(p.student->parameter_count()));
  } else {
    torch::manual_seed(recipe.seed);  // the initialization does not depend on whether the teacher was cached
    p.student = GraphModule(build_graph(fill_from_data(recipe.student, data, "/student/model")));
    if (!recipe.student_checkpoint.empty()) load_weights(p.student, recipe.student_checkpoint);
  }
  // Distillation fine-tunes given weights; a zoo student without a checkpoint starts from each seed's init.
  // Later training stages continue from the earlier ones.
  bool student_given = !recipe.student_torchscript.empty() || !recipe.student_checkpoint.empty();
  nlohmann::json stages = nlohmann::json::array();
  nlohmann::json baseline = nullptr;
  nlohmann::json verify_models;
  bool verified = false, pass = true;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const StageSpec& st = recipe.stages[i];
    nlohmann::json stage;
    if (st.kind == "distill") {
      StageOptions sopts;
      sopts.dir = fmt::format("{}/stages/{}-{}", options.out_dir, i, st.kind);
      sopts.resume = options.resume;
      sopts.stop_after_steps = options.stop_after_steps;
      sopts.identity = recipe.hash();
      stage = run_distill_stage(recipe, i, *teacher, recipe.teacher_hash(), data, p.student, student_given,
                                sopts);
      if (!stage.value("completed", false)) return {{"completed", false}};
      student_given = true;
      for (const auto& r : stage["runs"]) {
        if (r["kind"] != "scratch" || r["seed"] != stage["runs"][0]["seed"]) continue;
        baseline = model_entry("student (scratch)", "baseline_fp32", "libtorch fp32", r["params"],
                               r["fp32_bytes"], r["test"], nullptr);
        baseline["agreement"] = r["vs_teacher"]["agreement"];
        baseline["kl"] = r["vs_teacher"]["kl"];
      }
    } else if (st.kind == "prune") {
      StageOptions sopts;
      sopts.dir = fmt::format("{}/stages/{}-{}", options.out_dir, i, st.kind);
      sopts.resume = options.resume;
      sopts.stop_after_steps = options.stop_after_steps;
      sopts.identity = recipe.hash();
      stage = run_prune_stage(recipe, i, *teacher, data, p.student, sopts);
      if (!stage.value("completed", false)) return {{"completed", false}};
      student_given = true;
    } else if (st.kind == "quantize") {
      fmt::print(stderr, "quantize: calibrating\n");
      p.quantized = std::make_unique<QuantizedModel>(quantize_model(p.student, st.quantize, data, stage));
      QuantizedModel& qm = *p.quantized;
      stage["simulated_test"] =
          evaluate_forward([&](const torch::Tensor& x) { return qm.forward(x); }, data, Split::kTest);
      fmt::print(stderr, "quantize: {} layers int8; simulated test {}\n", stage["layers"].size(),
                 summarize_metrics(stage["simulated_test"]));
    } else if (st.kind == "export") {
      p.fp32_artifact = options.out_dir + "/student.fp32.mighty";
      p.student->eval();
      ArtifactWriter fp32_writer = export_fp32(p.student, artifact_metadata(recipe, data, "student_fp32"));
      add_input_tensors(fp32_writer, recipe, data);
      fp32_writer.write(p.fp32_artifact);
      p.artifact = options.out_dir + "/model.mighty";
      p.artifact_writer = p.quantized
                              ? p.quantized->export_artifact(artifact_metadata(recipe, data, "student_int8"))
                              : export_fp32(p.student, artifact_metadata(recipe, data, "student_fp32"));
      add_input_tensors(p.artifact_writer, recipe, data);
      p.artifact_writer.write(p.artifact);
      stage = {{"kind", "export"},
               {"path", p.artifact},
               {"bytes", std::filesystem::file_size(p.artifact)},
               {"fp32_path", p.fp32_artifact},
               {"fp32_bytes", std::filesystem::file_size(p.fp32_artifact)}};
      fmt::print(stderr, "export: {} ({} bytes)\n", p.artifact, with_commas(stage["bytes"].get<int64_t>()));
    } else if (st.kind == "verify") {
      teacher->remember_outputs(false);
      stage = verify(recipe, st.verify, p, *teacher, data, teacher_test, verify_models);
      verified = true;
      pass = stage["pass"].get<bool>();
      // The file carries the results it was shipped with.
      p.artifact_writer.metadata()["verify"] = {
          {"models", verify_models}, {"criteria", stage["criteria"]}, {"pass", pass}};
      p.artifact_writer.write(p.artifact);
      // The measured bytes are the file's before its verify results (a little JSON) were added.
      stage["shipped_bytes"] = std::filesystem::file_size(p.artifact);
    }
    stage["index"] = i;
    stages.push_back(stage);
    if (trains && i == last_training_stage) {
      if (!dist::writes()) return {{"completed", true}, {"rank", dist::rank()}};
      dist::finish();  // no collective follows
    }
  }
  save_weights(p.student, options.out_dir + "/student.pt");
  write_json(options.out_dir + "/student.graph.json", p.student->graph().to_json());

  nlohmann::json models = nlohmann::json::array();
  if (verified) {
    models = verify_models;
    if (!baseline.is_null()) models.insert(models.begin() + 1, baseline);
  } else {
    nlohmann::json teacher_speed, student_speed;
    teacher->remember_outputs(false);
    if (options.measure_speed) {
      teacher_speed = measure_speed(teacher_forward, data, recipe.eval);
      student_speed = measure_speed(p.student, data, recipe.eval);
    }
    models.push_back(model_entry("teacher", "teacher", "libtorch fp32", teacher->parameter_count(),
                                 teacher->fp32_bytes(), teacher_test, teacher_speed));
    if (!baseline.is_null()) models.push_back(baseline);
    auto sm =
        model_entry("student", "student_fp32", "libtorch fp32", p.student->parameter_count(),
                    p.student->fp32_bytes(), evaluate_split(p.student, data, Split::kTest), student_speed);
    const auto vs = compare_models(
        teacher_forward, [&](const torch::Tensor& x) { return p.student->forward(x); }, data, Split::kTest);
    sm["agreement"] = vs["agreement"];
    sm["kl"] = vs["kl"];
    models.push_back(sm);
  }
  nlohmann::json report = {{"recipe", recipe.name},  {"recipe_hash", recipe.hash()},
                           {"data_hash", data.hash}, {"teacher", teacher_info},
                           {"completed", true},      {"models", models},
                           {"stages", stages}};
  if (verified) report["verify"] = stages.back();
  write_json(options.out_dir + "/report.json", report);
  const std::string md = report_markdown(report);
  write_text(options.out_dir + "/report.md", md);
  if (!options.quiet) fmt::print("{}", md);
  if (!pass) {
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
