// ONNX Runtime beside mighty in verify: the exported model.onnx (int8) and student.fp32.onnx run by
// onnxruntime-node (onnx_io/onnxruntime.h) on the whole test split, timed in rounds alternating with mighty's
// own session of the same precision on the same examples.
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compress/pipeline/stages.h"
#include "compress/pipeline/verify_onnxruntime.h"
#include "compress/train/evaluate.h"
#include "onnx_io/export.h"
#include "onnx_io/onnxruntime.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/timing.h"

namespace mighty::compress {
namespace {

using onnx_io::OrtSession;

std::string file_name(const nlohmann::json& path) {
  return std::filesystem::path(path.get<std::string>()).filename().string();
}

Forward ort_forward(OrtSession& ort) {
  return [&ort](const torch::Tensor& x) {
    const std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    std::vector<int64_t> out_shape;
    std::vector<float> y;
    if (x.scalar_type() == torch::kInt64) {
      const auto ids = x.contiguous();
      y = ort.run(ids.data_ptr<int64_t>(), shape, &out_shape);
    } else {
      const auto in = x.to(torch::kFloat32).contiguous();
      y = ort.run(in.data_ptr<float>(), shape, &out_shape);
    }
    return torch::from_blob(y.data(), out_shape, torch::kFloat32).clone();
  };
}

// One call of mighty's session on `x` (as an application calls it: a pointer and a count).
void mighty_call(const Session& s, const torch::Tensor& x) {
  if (x.scalar_type() == torch::kInt64) {
    s.run_tokens(x.data_ptr<int64_t>(), x.size(0), x.size(1));
  } else {
    s.run(x.data_ptr<float>(), x.size(0));
  }
}

std::vector<double> ort_times(OrtSession& ort, const torch::Tensor& x, int runs, bool identity) {
  const std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  return x.scalar_type() == torch::kInt64 ? ort.time(x.data_ptr<int64_t>(), shape, runs, identity)
                                          : ort.time(x.data_ptr<float>(), shape, runs, identity);
}

// Batch-1 latency and batch-N throughput of mighty's session and ONNX Runtime on the same examples, in
// `rounds` rounds that alternate the two, so a change in the machine's load hits both.
nlohmann::json paired_speed(const Session& mighty, OrtSession& ort, const Dataset& data, const EvalSpec& eval,
                            int64_t latency_runs, int threads) {
  constexpr int kRounds = 5;
  const torch::Tensor one = example_input(data, 1).contiguous();
  torch::Tensor batch = example_input(data, eval.throughput_batch).contiguous();
  if (one.scalar_type() != torch::kInt64) batch = batch.to(torch::kFloat32).contiguous();
  const torch::Tensor one_in =
      one.scalar_type() == torch::kInt64 ? one : one.to(torch::kFloat32).contiguous();
  const int per_round = static_cast<int>(std::max<int64_t>(1, latency_runs / kRounds));
  const int batch_runs = 3;
  for (int i = 0; i < 10; ++i) mighty_call(mighty, one_in);
  using clock = std::chrono::steady_clock;
  auto time_mighty = [&](const torch::Tensor& x, int runs, std::vector<double>& ms) {
    mighty_call(mighty, x);  // warm-up, as the runner does
    for (int r = 0; r < runs; ++r) {
      const auto t0 = clock::now();
      mighty_call(mighty, x);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
  };
  std::vector<double> m1, o1, mb, ob, overhead;
  for (int round = 0; round < kRounds; ++round) {
    time_mighty(one_in, per_round, m1);
    for (double t : ort_times(ort, one_in, per_round, false)) o1.push_back(t);
    time_mighty(batch, batch_runs, mb);
    for (double t : ort_times(ort, batch, batch_runs, false)) ob.push_back(t);
    for (double t : ort_times(ort, one_in, std::max(1, per_round / 4), true)) overhead.push_back(t);
  }
  const double n = static_cast<double>(eval.throughput_batch);
  auto speed = [&](const std::vector<double>& b1, const std::vector<double>& bn) {
    return nlohmann::json{{"latency_ms_b1", percentile(b1, 0.5)},
                          {"latency_ms_b1_p99", percentile(b1, 0.99)},
                          {"throughput_per_s", n / (percentile(bn, 0.5) / 1e3)},
                          {"throughput_batch", eval.throughput_batch},
                          {"latency_runs", static_cast<int64_t>(b1.size())},
                          {"threads", threads}};
  };
  nlohmann::json m = speed(m1, mb), o = speed(o1, ob);
  const double mighty_b1 = m["latency_ms_b1"].get<double>(), ort_b1 = o["latency_ms_b1"].get<double>();
  const double binding = percentile(overhead, 0.5);
  // Net: ONNX Runtime's time less its Node binding's cost per call, as a C++ caller of ONNX Runtime sees it
  // (never below half its measured time).
  return {{"mighty", m},
          {"onnxruntime", o},
          {"rounds", kRounds},
          {"speedup_b1", ort_b1 / mighty_b1},
          {"speedup_b1_net", std::max(ort_b1 - binding, 0.5 * ort_b1) / mighty_b1},
          {"speedup_batch", m["throughput_per_s"].get<double>() / o["throughput_per_s"].get<double>()},
          {"overhead_ms_b1", binding}};
}

// The row of one exported ONNX file, or why there is none.
nlohmann::json ort_row(const OrtRowInputs& in, const std::string& key, const std::string& engine) {
  const nlohmann::json& file = in.exported[key];
  nlohmann::json row = {{"engine", engine}, {"path", file.value("path", "")}};
  if (file.contains("error")) {
    row["unavailable"] = "not exported: " + file["error"].get<std::string>();
    return row;
  }
  const std::string path = file["path"].get<std::string>();
  const bool int8 = key == "model";
  const std::string optimized = (std::filesystem::path(in.stage_dir) /
                                 (int8 ? "model.ort-optimized.onnx" : "student.fp32.ort-optimized.onnx"))
                                    .string();
  std::filesystem::create_directories(in.stage_dir);
  fmt::print(stderr, "verify: {} ({})\n", engine, path);
  OrtSession ort(path, {in.node_modules, in.threads, optimized});
  const Forward forward = ort_forward(ort);
  const nlohmann::json test = evaluate_forward(forward, in.data, Split::kTest);
  const Forward& mine = int8 ? in.int8 : in.fp32;
  const nlohmann::json same = compare_models(mine, forward, in.data, Split::kTest);
  const nlohmann::json vs_teacher = compare_models(in.teacher_on_test, forward, in.data, Split::kTest);
  const nlohmann::json speed = paired_speed(int8 ? in.int8_session : in.fp32_session, ort, in.data, in.eval,
                                            in.latency_runs, in.threads);
  nlohmann::json entry =
      model_entry("student", int8 ? "student_int8" : "student_fp32", engine, in.params,
                  static_cast<int64_t>(std::filesystem::file_size(path)), test, speed["onnxruntime"]);
  entry["agreement"] = vs_teacher["agreement"];
  entry["kl"] = vs_teacher["kl"];
  entry["path"] = path;
  entry["version"] = ort.version();
  entry["identical_to_mighty"] = same["agreement"];
  entry["paired"] = speed;
  entry["optimized_path"] = optimized;
  entry["optimized_op_types"] = onnx_io::model_op_types(read_file(optimized), optimized);
  return entry;
}

}  // namespace

nlohmann::json onnxruntime_rows(const OrtRowInputs& in) {
  nlohmann::json out = {{"rows", nlohmann::json::array()}};
  if (in.exported.is_null()) {
    out["unavailable"] = "export.onnx is off: no ONNX files to run";
    return out;
  }
  const std::string why = onnx_io::ort_unavailable(in.node_modules);
  if (!why.empty()) {
    out["unavailable"] = why;
    return out;
  }
  for (const auto& [key, engine] :
       {std::pair<const char*, const char*>{"fp32", "onnxruntime fp32"}, {"model", "onnxruntime int8"}}) {
    out["rows"].push_back(ort_row(in, key, engine));
    if (out["rows"].back().contains("version")) out["version"] = out["rows"].back()["version"];
  }
  return out;
}

std::string onnxruntime_markdown(const nlohmann::json& ort) {
  if (ort.contains("unavailable"))
    return fmt::format("\nONNX Runtime: not run ({}).\n", ort["unavailable"].get<std::string>());
  const nlohmann::json* measured = nullptr;  // the header's numbers come from the first measured row
  for (const auto& r : ort["rows"])
    if (!measured && r.contains("paired")) measured = &r;
  std::string out = "\nONNX Runtime: no ONNX file to run.\n";
  if (measured) {
    const auto& p = (*measured)["paired"];
    const auto batch = p["mighty"]["throughput_batch"].get<int64_t>();
    out = fmt::format(
        "\nONNX Runtime {} (onnxruntime-node, CPU, all graph optimizations), timed in {} rounds alternating "
        "with mighty's session of the same precision; the Node binding's own cost per call, {:.4f} ms, is "
        "inside ONNX Runtime's times (net: without it).\n\n| ONNX file | identical top-1 vs mighty | batch-1 "
        "p50: "
        "mighty, ORT | mighty faster at batch 1 (net) | batch-{} throughput: mighty, ORT | mighty faster at "
        "batch {} |\n|---|---:|---:|---:|---:|---:|\n",
        (*measured)["version"].get<std::string>(), p["rounds"].get<int>(), p["overhead_ms_b1"].get<double>(),
        batch, batch);
  }
  for (const auto& r : ort["rows"]) {
    if (r.contains("unavailable")) {
      out +=
          fmt::format("| `{}` | {} | | | | |\n", file_name(r["path"]), r["unavailable"].get<std::string>());
      continue;
    }
    const auto& p = r["paired"];
    out += fmt::format(
        "| `{}` | {:.2f}% | {:.4f} ms, {:.4f} ms | {:.2f}x ({:.2f}x) | {:.0f}/s, {:.0f}/s | {:.2f}x |\n",
        file_name(r["path"]), 100.0 * r["identical_to_mighty"].get<double>(),
        p["mighty"]["latency_ms_b1"].get<double>(), p["onnxruntime"]["latency_ms_b1"].get<double>(),
        p["speedup_b1"].get<double>(), p["speedup_b1_net"].get<double>(),
        p["mighty"]["throughput_per_s"].get<double>(), p["onnxruntime"]["throughput_per_s"].get<double>(),
        p["speedup_batch"].get<double>());
  }
  for (const auto& r : ort["rows"]) {
    if (!r.contains("optimized_op_types")) continue;
    std::map<std::string, int> counts;
    for (const auto& op : r["optimized_op_types"]) ++counts[op.get<std::string>()];
    std::vector<std::string> parts;
    for (const auto& [op, n] : counts) parts.push_back(n > 1 ? fmt::format("{} x{}", op, n) : op);
    out += fmt::format("\nThe graph ONNX Runtime optimized from `{}`: {}.\n", file_name(r["path"]),
                       fmt::join(parts, ", "));
  }
  return out;
}

}  // namespace mighty::compress
