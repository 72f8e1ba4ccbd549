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
#include "onnx_io/onnxruntime.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/io/atomic_file.h"

using namespace mighty;
namespace fs = std::filesystem;

namespace {

std::string node_modules() {
  const char* data = std::getenv("MIGHTY_DATA");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  return onnx_io::ort_node_modules(
      data ? data : (xdg ? std::string(xdg) : std::string(home ? home : "/root") + "/.cache") + "/mighty");
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
  REQUIRE(onnx_io::ort_unavailable(node_modules()).empty());
  onnx_io::OrtSession ort((dir / "model.onnx").string(), {node_modules(), 1, (dir / "opt.onnx").string()});
  CHECK(ort.version() == "1.30.0");
  std::vector<float> got_all;
  for (int64_t i = 0; i < count; i += 64) {  // in batches, the last one short
    const int64_t n = std::min<int64_t>(64, count - i);
    std::vector<int64_t> shape;
    const std::vector<float> y = ort.run(x.data() + i * per, {n, 2, 6, 6}, &shape);
    REQUIRE(shape == std::vector<int64_t>{n, 3});
    got_all.insert(got_all.end(), y.begin(), y.end());
  }
  REQUIRE(got_all.size() == static_cast<size_t>(count * 3));
  const float* got = got_all.data();
  // Timings: as many as asked, positive, for the model and for the runner's own overhead.
  for (bool identity : {false, true}) {
    const std::vector<double> ms = ort.time(x.data(), {1, 2, 6, 6}, 5, identity);
    REQUIRE(ms.size() == 5);
    for (double t : ms) CHECK(t > 0);
  }
  // A malformed request is one error line; the session goes on.
  CHECK_THROWS_WITH(ort.run(x.data(), {1, 3, 6, 6}),
                    Catch::Contains("onnxruntime (") && Catch::Contains("model.onnx"));
  CHECK(ort.run(x.data(), {1, 2, 6, 6}).size() == 3);
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

TEST_CASE("ONNX Runtime: a file it cannot load is one line naming it") {
  const fs::path dir = fs::temp_directory_path() / ("mighty_ort_bad_" + std::to_string(getpid()));
  fs::create_directories(dir);
  write_file_atomic((dir / "bad.onnx").string(), "not a model");
  try {
    onnx_io::OrtSession ort((dir / "bad.onnx").string(), {node_modules(), 1, ""});
    FAIL("loaded a file that is not a model");
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("bad.onnx") != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
  CHECK(onnx_io::ort_unavailable((dir / "nothing").string()).find("scripts/setup") != std::string::npos);
  fs::remove_all(dir);
}
