// ONNX Runtime (npm onnxruntime-node, installed by scripts/setup; driven by scripts/ort-runner.js) on models
// mighty exported: the int8 model computes what mighty's runtime computes (identical top-1, logits within
// the float rounding of the last layer), and after ONNX Runtime's optimizations every int8 layer runs as an
// integer kernel (QLinearConv, QGemm), none as DequantizeLinear into a float Conv or Gemm.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "int8_models.h"
#include "onnx_io/export.h"
#include "runtime/exec/session.h"
#include "runtime/io/atomic_file.h"

using namespace mighty;
namespace fs = std::filesystem;

namespace {

std::string node_modules() {
  const char* data = std::getenv("MIGHTY_DATA");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string cache =
      data ? data : (xdg ? std::string(xdg) : std::string(home ? home : "/root") + "/.cache") + "/mighty";
  return cache + "/npm-onnxruntime-1.30.0/node_modules";
}

// Runs the runner; returns its JSON line.
nlohmann::json run_ort(const std::string& args) {
  const std::string out = fs::temp_directory_path() / ("ort_out_" + std::to_string(getpid()) + ".json");
  const std::string cmd = "NODE_PATH='" + node_modules() + "' node '" MIGHTY_SOURCE_DIR "/scripts/ort-runner.js' " +
                          args + " > '" + out + "'";
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(out);
  nlohmann::json j = nlohmann::json::parse(in);
  fs::remove(out);
  return j;
}

}  // namespace

TEST_CASE("ONNX Runtime computes the exported int8 model as mighty does, on integer kernels") {
  const fs::path dir = fs::temp_directory_path() / ("mighty_ort_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string bytes = test::int8_cnn_artifact();
  const Artifact artifact = Artifact::from_bytes(bytes, "int8.mighty");
  onnx_io::write_onnx(artifact, (dir / "model.onnx").string());
  const int64_t count = 500, per = 2 * 6 * 6;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-2.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(count * per));
  for (float& v : x) v = u(rng);
  write_file_atomic((dir / "x.bin").string(),
                    std::string_view(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
  const nlohmann::json r = run_ort("--model '" + (dir / "model.onnx").string() + "' --input '" +
                                   (dir / "x.bin").string() + "' --shape 2,6,6 --out '" +
                                   (dir / "y.bin").string() + "' --optimized '" + (dir / "opt.onnx").string() +
                                   "' --batch 64");
  REQUIRE(r["count"] == count);
  REQUIRE(r["output_size"] == 3);
  const std::string y = read_file((dir / "y.bin").string());
  REQUIRE(y.size() == static_cast<size_t>(count * 3 * 4));
  const float* got = reinterpret_cast<const float*>(y.data());
  const Session session(Artifact::from_bytes(bytes, "int8.mighty"));
  const std::vector<float> want = session.run(x.data(), count);
  int64_t same = 0;
  double worst = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float* a = got + i * 3;
    const float* b = want.data() + i * 3;
    same += std::max_element(a, a + 3) - a == std::max_element(b, b + 3) - b;
    for (int k = 0; k < 3; ++k) worst = std::max(worst, std::abs(static_cast<double>(a[k]) - b[k]));
  }
  INFO("identical top-1: " << same << " of " << count << ", largest logit difference " << worst);
  CHECK(same == count);
  CHECK(worst < 1e-4);
  // The optimized graph: integer kernels for the four int8 layers, no float Conv / Gemm / MatMul.
  const std::vector<std::string> ops =
      onnx_io::model_op_types(read_file((dir / "opt.onnx").string()), "opt.onnx");
  INFO("optimized graph: " << nlohmann::json(ops).dump());
  CHECK(std::count(ops.begin(), ops.end(), "com.microsoft:QLinearConv") == 2);
  CHECK(std::count(ops.begin(), ops.end(), "com.microsoft:QGemm") == 2);
  for (const char* fp : {"Conv", "Gemm", "MatMul", "com.microsoft.nchwc:Conv", "com.microsoft:FusedGemm"})
    CHECK(std::count(ops.begin(), ops.end(), fp) == 0);
  fs::remove_all(dir);
}
