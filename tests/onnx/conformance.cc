// ONNX conformance: every backend node test that ONNX ships (Debian's libonnx-testdata) for an op type the
// importer claims, imported and run by the runtime's fp32 path, compared with the expected outputs. Prints
// one row per op (passed, failed, skipped and why) and exits 1 if any test in the supported subset fails.
//
// A test is skipped, with the importer's own reason, when its model lies outside what the IR expresses
// (attributes, ranks, a constant operand varying over the batch, ...): that is the supported subset. Weights
// and other operands that the tests feed as graph inputs are bound as constants; the first input is the data
// and its first dimension the batch.
//
// Usage: onnx-conformance [--data DIR] [--json FILE] [--verbose]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>
#include <nlohmann/json.hpp>

#include "onnx_io/import.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"

namespace fs = std::filesystem;
using namespace mighty;

namespace {

struct Row {
  int passed = 0, failed = 0, skipped = 0;
  std::map<std::string, std::vector<std::string>> skip_reasons;  // reason -> tests
  std::vector<std::string> failures;
};

std::vector<std::string> sorted_files(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // input_10 after input_9
  });
  return out;
}

// The name a .pb test tensor carries: the graph input it feeds.
std::string tensor_name(const std::string& pb_path) {
  std::ifstream in(pb_path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  onnx::TensorProto t;
  t.ParseFromString(bytes);
  return t.name();
}

// The op types of a model (sorted, joined by '+'); this only groups the table, the importer's own parse is
// the one that counts. Node tests have one node; the "_expanded" variants several.
std::string model_ops(const fs::path& model) {
  std::ifstream in(model, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes)) return "";
  std::set<std::string> ops;
  for (const auto& n : m.graph().node()) ops.insert(n.op_type());
  std::string key;
  for (const auto& o : ops) key += (key.empty() ? "" : "+") + o;
  return key;
}

bool close(float got, float want) { return std::abs(got - want) <= 1e-5f + 1e-3f * std::abs(want); }

// Runs one test directory; returns "" on a pass, "skip: ..." or "fail: ...".
std::string run_test(const fs::path& dir, bool verbose) {
  const auto sets = sorted_files(dir, "test_data_set_");
  if (sets.empty()) return "skip: no test data";
  for (const auto& set : sets) {
    const auto inputs = sorted_files(set, "input_");
    const auto outputs = sorted_files(set, "output_");
    if (inputs.empty()) return "skip: no inputs (a constant-only graph)";
    if (outputs.size() != 1) return "skip: several outputs (mighty models have one)";
    onnx_io::ImportOptions options;
    std::vector<onnx_io::Tensor> feeds;
    onnx_io::Tensor expected;
    try {
      for (const auto& path : inputs) feeds.push_back(onnx_io::read_tensor_file(path));
      expected = onnx_io::read_tensor_file(outputs[0]);
    } catch (const Error& e) {
      const std::string what = e.what();
      return "skip: test data: " + what.substr(what.find(": ") + 2);
    }
    // Bind every input but the first by its name in the model (the .pb files carry it).
    for (size_t k = 1; k < inputs.size(); ++k) options.constant_inputs[tensor_name(inputs[k])] = feeds[k];
    const onnx_io::Tensor& x = feeds[0];
    if (x.shape.size() < 2) return "skip: the data input has rank < 2 (no batch dimension)";
    onnx_io::Imported model;
    try {
      model = onnx_io::import_file((dir / "model.onnx").string(), options);
    } catch (const Error& e) {
      std::string what = e.what();
      const auto colon = what.find("): ");
      return "skip: " +
             (colon == std::string::npos ? what.substr(what.find(": ") + 2) : what.substr(colon + 3));
    }
    const int64_t batch = x.shape[0];
    try {
      const Session session(
          Artifact::from_bytes(onnx_io::to_artifact(model, {}).serialize(), "conformance.mighty"), 1);
      const std::vector<float> got = session.run(x.data.data(), batch);
      if (got.size() != expected.data.size())
        return fmt::format("fail: {} outputs, {} expected", got.size(), expected.data.size());
      for (size_t i = 0; i < got.size(); ++i) {
        if (!close(got[i], expected.data[i]))
          return fmt::format("fail: output {} is {}, expected {}", i, got[i], expected.data[i]);
      }
    } catch (const Error& e) {
      return fmt::format("fail: {}", e.what());
    }
    if (verbose) std::cout << "  " << dir.filename().string() << " " << set << ": pass\n";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data/node", json_path;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) {
      data = argv[++i];
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--verbose") {
      verbose = true;
    } else {
      std::cerr << "usage: onnx-conformance [--data DIR] [--json FILE] [--verbose]\n";
      return 2;
    }
  }
  if (!fs::is_directory(data)) {
    std::cerr << "onnx-conformance: " << data
              << ": no such directory (scripts/setup installs libonnx-testdata)\n";
    return 2;
  }
  const auto& claimed = onnx_io::supported_ops();
  const std::set<std::string> claimed_set(claimed.begin(), claimed.end());
  std::map<std::string, Row> rows;
  std::vector<fs::path> tests;
  for (const auto& e : fs::directory_iterator(data))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) tests.push_back(e.path());
  std::sort(tests.begin(), tests.end());
  int considered = 0;
  for (const auto& dir : tests) {
    const std::string ops = model_ops(dir / "model.onnx");
    if (ops.empty()) continue;
    // A test belongs to the table when every op type of its model is claimed.
    bool all_claimed = true;
    for (size_t b = 0, e; b <= ops.size(); b = e + 1) {
      e = ops.find('+', b);
      if (e == std::string::npos) e = ops.size();
      all_claimed = all_claimed && claimed_set.count(ops.substr(b, e - b));
    }
    if (!all_claimed) continue;
    ++considered;
    Row& row = rows[ops];
    const std::string result = run_test(dir, verbose);
    const std::string name = dir.filename().string();
    if (result.empty()) {
      ++row.passed;
    } else if (result.rfind("skip: ", 0) == 0) {
      ++row.skipped;
      row.skip_reasons[result.substr(6)].push_back(name);
    } else {
      ++row.failed;
      row.failures.push_back(name + ": " + result.substr(6));
    }
  }
  int passed = 0, failed = 0, skipped = 0;
  std::cout << fmt::format(
      "ONNX backend node tests for the {} op types the importer claims ({}; {} tests)\n\n", claimed.size(),
      data, considered);
  std::cout << fmt::format("{:<34} {:>6} {:>6} {:>7}  {}\n", "op types", "passed", "failed", "skipped",
                           "why skipped");
  nlohmann::json report = nlohmann::json::array();
  for (const auto& [ops, row] : rows) {
    passed += row.passed;
    failed += row.failed;
    skipped += row.skipped;
    std::string why;
    for (const auto& [reason, names] : row.skip_reasons)
      why += fmt::format("{}{} ({})", why.empty() ? "" : "; ", reason, names.size());
    std::cout << fmt::format("{:<34} {:>6} {:>6} {:>7}  {}\n", ops, row.passed, row.failed, row.skipped, why);
    for (const auto& f : row.failures) std::cout << "    FAILED " << f << "\n";
    report.push_back({{"ops", ops},
                      {"passed", row.passed},
                      {"failed", row.failed},
                      {"skipped", row.skipped},
                      {"skip_reasons", row.skip_reasons},
                      {"failures", row.failures}});
  }
  std::cout << fmt::format("\n{} passed, {} failed, {} skipped (outside the supported subset)\n", passed,
                           failed, skipped);
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(1) << "\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}
