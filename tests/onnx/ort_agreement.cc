// ONNX Runtime (npm onnxruntime-node, installed by scripts/setup; driven by onnx_io/onnxruntime.h) on models
// mighty exported (static QDQ CNNs, dynamic per-row MLPs, the bag model on token ids, a transformer language
// model): ONNX Runtime computes what mighty's runtime computes (identical top-1, outputs within float
// rounding), and after its optimizations every int8 layer runs as an integer kernel (QLinearConv, QGemm,
// MatMulInteger), none as DequantizeLinear into a float Conv, Gemm or MatMul.
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

namespace {

// ONNX Runtime's outputs against mighty's on the same inputs, row by row (a row: one example's output, or
// one position's for a language model).
struct Agreement {
  int64_t rows = 0, same = 0;
  double worst = 0;
  std::vector<std::string> ops;  // of the graph ONNX Runtime optimized
};

Agreement compare_rows(const std::vector<float>& got, const std::vector<float>& want, int64_t width) {
  REQUIRE(got.size() == want.size());
  Agreement a;
  a.rows = static_cast<int64_t>(got.size()) / width;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* g = got.data() + r * width;
    const float* w = want.data() + r * width;
    a.same += std::max_element(g, g + width) - g == std::max_element(w, w + width) - w;
    for (int64_t k = 0; k < width; ++k)
      a.worst = std::max(a.worst, std::abs(static_cast<double>(g[k]) - w[k]));
  }
  return a;
}

// Exports `bytes`, runs it in ONNX Runtime on `ids` [batch, length] and in mighty's runtime.
Agreement agree_tokens(const std::string& bytes, const std::vector<int64_t>& ids, int64_t batch,
                       int64_t length, int64_t width) {
  const fs::path dir = fs::temp_directory_path() / ("mighty_ort_tokens_" + std::to_string(getpid()));
  fs::create_directories(dir);
  onnx_io::write_onnx(Artifact::from_bytes(bytes, "tokens.mighty"), (dir / "m.onnx").string());
  onnx_io::OrtSession ort((dir / "m.onnx").string(), {node_modules(), 1, (dir / "opt.onnx").string()});
  const std::vector<float> got = ort.run(ids.data(), {batch, length});
  const Session session(Artifact::from_bytes(bytes, "tokens.mighty"));
  Agreement a = compare_rows(got, session.run_tokens(ids.data(), batch, length), width);
  a.ops = onnx_io::model_op_types(read_file((dir / "opt.onnx").string()), "opt.onnx");
  fs::remove_all(dir);
  return a;
}

int64_t count_of(const std::vector<std::string>& ops, const char* op) {
  return std::count(ops.begin(), ops.end(), op);
}

}  // namespace

TEST_CASE("ONNX Runtime: dynamic (per-row) int8 Linear layers compute mighty's integers, on MatMulInteger") {
  const fs::path dir = fs::temp_directory_path() / ("mighty_ort_dyn_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string bytes = test::dynamic_mlp_artifact();
  onnx_io::write_onnx(Artifact::from_bytes(bytes, "dyn.mighty"), (dir / "m.onnx").string());
  const int64_t count = 400;
  std::mt19937 rng(4);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(count * 24));
  for (float& v : x) v = n(rng);
  for (int k = 0; k < 24; ++k) x[static_cast<size_t>(24 + k)] = 0.0f;              // a zero row: scale 1
  for (int k = 0; k < 24; ++k) x[static_cast<size_t>(48 + k)] = 0.5f + 0.01f * k;  // all positive: lo = 0
  onnx_io::OrtSession ort((dir / "m.onnx").string(), {node_modules(), 1, (dir / "opt.onnx").string()});
  const Session session(Artifact::from_bytes(bytes, "dyn.mighty"));
  const Agreement a = compare_rows(ort.run(x.data(), {count, 24}), session.run(x.data(), count), 4);
  const auto ops = onnx_io::model_op_types(read_file((dir / "opt.onnx").string()), "opt.onnx");
  INFO("identical top-1: " << a.same << " of " << a.rows << ", largest difference " << a.worst
                           << "; optimized graph: " << nlohmann::json(ops).dump());
  CHECK(a.same == count);
  CHECK(a.worst < 1e-4);
  CHECK(count_of(ops, "MatMulInteger") == 2);
  for (const char* fp : {"MatMul", "Gemm", "com.microsoft:FusedGemm", "com.microsoft:FusedMatMul"})
    CHECK(count_of(ops, fp) == 0);
  fs::remove_all(dir);
}

TEST_CASE("ONNX Runtime: the bag model (token ids in, int8 table, padding) as mighty computes it") {
  const int64_t vocabulary = 50, length = 20, batch = 64;
  std::mt19937 rng(8);
  std::uniform_int_distribution<int64_t> id(-1, vocabulary - 1);  // -1: padding
  std::vector<int64_t> ids(static_cast<size_t>(batch * length));
  for (auto& v : ids) v = id(rng);
  for (int64_t t = 0; t < length; ++t) ids[static_cast<size_t>(length + t)] = -1;  // an empty document
  const Agreement a = agree_tokens(test::bag_artifact(vocabulary, length), ids, batch, length, 2);
  INFO("identical top-1: " << a.same << " of " << a.rows << ", largest difference " << a.worst
                           << "; optimized graph: " << nlohmann::json(a.ops).dump());
  CHECK(a.rows == batch);
  CHECK(a.same == batch);
  CHECK(a.worst < 1e-4);
  CHECK(count_of(a.ops, "MatMulInteger") == 2);
}

TEST_CASE("ONNX Runtime: a transformer language model (causal attention, LayerNorm, GELU) per position") {
  const int64_t vocabulary = 30, context = 12, batch = 16;
  std::mt19937 rng(9);
  std::uniform_int_distribution<int64_t> id(0, vocabulary - 1);
  std::vector<int64_t> ids(static_cast<size_t>(batch * context));
  for (auto& v : ids) v = id(rng);
  const std::string bytes = test::transformer_lm_artifact(vocabulary, context);
  Agreement a = agree_tokens(bytes, ids, batch, context, vocabulary);
  INFO("identical top-1: " << a.same << " of " << a.rows << ", largest difference " << a.worst
                           << "; optimized graph: " << nlohmann::json(a.ops).dump());
  CHECK(a.rows == batch * context);
  // Float attention and LayerNorm sum in another order than mighty's (measured: 4e-6 apart at most); a
  // row's dynamic quantization could move by one step, which these fixed inputs do not hit.
  CHECK(a.same == a.rows);
  CHECK(a.worst < 1e-3);
  CHECK(count_of(a.ops, "MatMulInteger") == 3);
  // A shorter input: the positional rows and the causal mask follow the input's length.
  const std::vector<int64_t> short_ids(ids.begin(), ids.begin() + 5);
  a = agree_tokens(bytes, short_ids, 1, 5, vocabulary);
  CHECK(a.rows == 5);
  CHECK(a.same == 5);
  CHECK(a.worst < 1e-3);
}

TEST_CASE("ONNX Runtime: a sentence encoder's end with Tanh and L2Normalize in fp32 as mighty computes it") {
  const fs::path dir = fs::temp_directory_path() / ("mighty_ort_l2_" + std::to_string(getpid()));
  fs::create_directories(dir);
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {6}}, {"dtype", "float32"}});
  x = g.add("fc", OpKind::kLinear, {x}, {{"in_features", 6}, {"out_features", 8}});
  x = g.add("tanh", OpKind::kTanh, {x});
  x = g.add("norm", OpKind::kL2Normalize, {x}, {{"eps", 1e-12}});
  g.add("out", OpKind::kLinear, {x}, {{"in_features", 8}, {"out_features", 3}});
  g.set_output(static_cast<int>(g.nodes().size()) - 1);
  g.infer_shapes();
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()}});
  for (const auto& spec : g.all_tensors()) {
    std::vector<float> v(static_cast<size_t>(spec.numel()));
    for (float& e : v) e = u(rng);
    w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, v.data());
  }
  const std::string bytes = w.serialize();
  onnx_io::write_onnx(Artifact::from_bytes(bytes, "l2.mighty"), (dir / "m.onnx").string());
  const int64_t count = 200;
  std::vector<float> in(static_cast<size_t>(count * 6));
  for (float& v : in) v = 3.0f * u(rng);
  onnx_io::OrtSession ort((dir / "m.onnx").string(), {node_modules(), 1, ""});
  const Session session(Artifact::from_bytes(bytes, "l2.mighty"));
  const Agreement a = compare_rows(ort.run(in.data(), {count, 6}), session.run(in.data(), count), 3);
  INFO("identical top-1: " << a.same << " of " << a.rows << ", largest difference " << a.worst);
  CHECK(a.same == count);
  CHECK(a.worst < 1e-5);
  fs::remove_all(dir);
}
