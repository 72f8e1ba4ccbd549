// mighty tune from the command line: a small search end to end, the same model after a kill at a random
// moment and --resume, one-line errors, and (with the web build) the report drawn in headless Chromium.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "helpers.h"

using namespace mighty::testing;

namespace {

const std::string kMighty = MIGHTY_BIN;
const std::string kMightyRun = MIGHTY_RUN_BIN;
const std::string kTestImages = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

// Two students, distilled or not, pruned or not: 8 configurations; the pre-check leaves out the wider
// unpruned student (over 8,000 bytes), and the 6 left are drawn; rungs of 6 and 3 trials.
const char* kRecipe = R"({
  "name": "tiny_tune", "seed": 4,
  "data": {"kind": "images", "validation_size": 200, "train_limit": 512, "test_limit": 300},
  "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}, {"channels": 16, "pool": "max"}],
                        "hidden": [32]},
              "train": {"steps": 20, "batch_size": 64}},
  "student": {"from_teacher": {"width": 0.5}},
  "stages": [
    {"kind": "distill", "train": {"epochs": 4, "batch_size": 64}},
    {"kind": "prune", "sparsity": 0.5, "alpha": 0.5, "train": {"epochs": 2, "batch_size": 64}},
    {"kind": "quantize"},
    {"kind": "export", "onnx": false},
    {"kind": "verify", "latency_runs": 20, "onnxruntime": false}
  ],
  "eval": {"latency_runs": 5, "throughput_batch": 4},
  "tune": {
    "constraints": {"max_bytes": 8000, "max_latency_ms": 50},
    "space": {"width": [0.25, 0.5], "supervision": ["teacher", "labels"], "sparsity": [0, 0.7]},
    "search": {"trials": 6, "eta": 2, "rungs": 2, "latency_runs": 30}
  }
})";

nlohmann::json read_json(const std::filesystem::path& p) { return nlohmann::json::parse(slurp(p.string())); }

}  // namespace

TEST_CASE(
    "tune: a small search chooses, exports and verifies a model, and killed and resumed it ships the same "
    "one") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_tune_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto recipe = write_temp("tune.json", kRecipe);
  const std::string env = "MIGHTY_PROGRESS=off MIGHTY_DATA=" + (dir / "cache").string() + " ";
  const std::string tune = kMighty + " tune " + recipe + " --threads 1 --out ";

  const auto t0 = std::chrono::steady_clock::now();
  auto o = run(env + tune + (dir / "a").string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(o.err);
  REQUIRE(o.status == 0);
  const auto a = read_json(dir / "a" / "report.json");
  REQUIRE(a["trials"].size() == 9);  // 6 + 3
  REQUIRE(a["chosen"].is_string());
  REQUIRE(a["final"]["pass"] == true);
  REQUIRE(a["supervision"].is_object());  // distilled and labels-only trials met in a rung
  // The pre-check: one export per shape (width x sparsity), the wider unpruned one left out before training.
  REQUIRE(a["precheck"].size() == 4);
  REQUIRE(a["feasible_configurations"] == 6);
  std::map<std::string, nlohmann::json> shapes;
  for (const auto& p : a["precheck"]) {
    shapes[p["shape"].dump()] = p;
    const bool over = p["bytes"].get<int64_t>() > 8000 * 1.03;
    REQUIRE(p["skip"].empty() == !over);
    REQUIRE(p["bytes"].get<int64_t>() ==
            static_cast<int64_t>(std::filesystem::file_size(dir / "a" / "precheck" /
                                                            p["id"].get<std::string>() / "model.mighty")));
  }
  REQUIRE(shapes.at(R"({"sparsity":0.0,"width":0.5})")["skip"].size() == 1);
  for (const auto& t : a["trials"]) {
    // Judged on its own exported artifact: bytes as on disk.
    const auto artifact = dir / "a" / "trials" / t["id"].get<std::string>() / "model.mighty";
    REQUIRE(t["bytes"].get<int64_t>() == static_cast<int64_t>(std::filesystem::file_size(artifact)));
    if (t["bytes"].get<int64_t>() > 8000) REQUIRE_FALSE(t["misses"].empty());
    // Never a left-out shape; its bytes those of its shape's pre-check, up to int8 weights rounded to zero
    // and the metadata's length (the recipe it holds).
    nlohmann::json shape = t["config"];
    shape.erase("supervision");
    const auto& p = shapes.at(shape.dump());
    REQUIRE(p["skip"].empty());
    REQUIRE(std::abs(t["bytes"].get<double>() - p["bytes"].get<double>()) <= 0.03 * p["bytes"].get<double>());
  }
  REQUIRE_THAT(o.out, Catch::Contains("**Chosen: " + a["chosen"].get<std::string>()));
  REQUIRE(std::filesystem::exists(dir / "a" / "model.mighty"));
  REQUIRE(std::filesystem::exists(dir / "a" / "final" / "report.html"));
  // The test split (300 images) is used once, by the final run: inside a trial, every stage's "test" is the
  // validation split (200).
  for (const auto& t : a["trials"]) {
    const auto trial = read_json(dir / "a" / "trials" / t["id"].get<std::string>() / "report.json");
    REQUIRE(trial["stages"][0]["runs"][0]["test"]["examples"] == 200);
  }

  // Killed at a random moment (SIGKILL: no cleanup), then resumed.
  std::random_device rd;
  const double kill_at = std::uniform_real_distribution<double>(0.5, std::max(1.0, seconds))(rd);
  INFO("killed after " << kill_at << " s of a " << seconds << " s run");
  o = run(env + fmt::format("timeout -s KILL {:.2f} ", kill_at) + tune + (dir / "b").string());
  o = run(env + tune + (dir / "b").string() + " --resume");
  INFO(o.err);
  REQUIRE(o.status == 0);
  const auto b = read_json(dir / "b" / "report.json");
  REQUIRE(b["chosen"] == a["chosen"]);
  REQUIRE(b["trials"].size() == a["trials"].size());
  for (size_t i = 0; i < a["trials"].size(); ++i) {
    REQUIRE(b["trials"][i]["id"] == a["trials"][i]["id"]);
    REQUIRE(b["trials"][i]["accuracy"] == a["trials"][i]["accuracy"]);
    REQUIRE(b["trials"][i]["bytes"] == a["trials"][i]["bytes"]);
  }
  auto logits = [&](const std::filesystem::path& model) {
    const auto r =
        run(kMightyRun + " run " + model.string() + " --images " + kTestImages + " --limit 64 --logits");
    REQUIRE(r.status == 0);
    return r.out;
  };
  REQUIRE(logits(dir / "b" / "model.mighty") == logits(dir / "a" / "model.mighty"));

  // Two ranks running the trials side by side (--nproc 2, the training launcher): the same trials, the same
  // validation results and the same chosen model (latencies are measured by rank 0 alone, after each round).
  o = run(env + kMighty + " tune " + recipe + " --nproc 2 --out " + (dir / "p").string());
  INFO(o.err);
  REQUIRE(o.status == 0);
  const auto p = read_json(dir / "p" / "report.json");
  REQUIRE(p["chosen"] == a["chosen"]);
  REQUIRE(p["trials"].size() == a["trials"].size());
  std::set<int64_t> ranks;
  for (size_t i = 0; i < a["trials"].size(); ++i) {
    REQUIRE(p["trials"][i]["id"] == a["trials"][i]["id"]);
    REQUIRE(p["trials"][i]["accuracy"] == a["trials"][i]["accuracy"]);
    REQUIRE(p["trials"][i]["latency_alone"] == true);
    ranks.insert(p["trials"][i]["rank"].get<int64_t>());
  }
  REQUIRE(ranks == std::set<int64_t>{0, 1});
  REQUIRE(logits(dir / "p" / "model.mighty") == logits(dir / "a" / "model.mighty"));

  // One line for each misuse.
  o = run(env + tune + (dir / "a").string());
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("--resume"));
  const auto other = write_temp(
      "tune_other.json",
      std::string(kRecipe).replace(std::string(kRecipe).find("\"trials\": 6"), 11, "\"trials\": 5"));
  o = run(env + kMighty + " tune " + other + " --out " + (dir / "a").string() + " --resume");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("another recipe"));
  const auto plain = write_temp("tune_plain.json", R"({"data": {"kind": "images"},
    "teacher": {"model": {"arch": "mlp", "hidden": [4]}, "train": {"epochs": 1}}})");
  o = run(env + kMighty + " tune " + plain + " --out " + (dir / "c").string());
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("no 'tune' block"));

#if defined(MIGHTY_WEB_PAGE)
  // report.html in headless Chromium: every trial on both charts, the sensitivity of every layer, offline.
  const char* data = std::getenv("MIGHTY_DATA");
  const std::string cache = data ? data : std::string(std::getenv("HOME")) + "/.cache/mighty";
  std::filesystem::remove(MIGHTY_TUNE_SCREENSHOT);
  o = run("NODE_PATH=" + cache +
          "/npm-playwright-core-1.64.1/node_modules node " MIGHTY_SOURCE_DIR
          "/tests/web/report-test.js --run " +
          (dir / "a").string() + " --screenshot " MIGHTY_TUNE_SCREENSHOT);
  INFO(o.out << o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("tune_bytes 9") && Catch::Contains("tune_latency 9") &&
                          Catch::Contains("tune_sensitivity") && Catch::Contains("nothing fetched"));
  REQUIRE(std::filesystem::file_size(MIGHTY_TUNE_SCREENSHOT) > 10000);
#endif
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
  std::filesystem::remove(other);
  std::filesystem::remove(plain);
}
