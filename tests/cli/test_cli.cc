// The command-line contract: useful help, and bad input gives one clear line and a non-zero exit.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "../use_lite_reference.h"
#include "helpers.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"
#include "runtime/io/idx.h"

using namespace mighty::testing;

namespace {

const std::string kMighty = MIGHTY_BIN;
const std::string kMightyRun = MIGHTY_RUN_BIN;

}  // namespace

TEST_CASE("--help and --version") {
  auto o = run(kMighty + " --help");
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("train") && Catch::Contains("eval") && Catch::Contains("compress"));
  o = run(kMighty + " train --help");
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out,
               Catch::Contains("--resume") && Catch::Contains("--threads") && Catch::Contains("--out"));
  o = run(kMighty + " --version");
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::StartsWith("mighty 0."));
  o = run(kMightyRun + " --help");
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("cpu"));
}

TEST_CASE("bad recipes exit non-zero with one line naming the problem") {
  auto missing = run(kMighty + " train /nonexistent/r.json --out /tmp/mighty_cli_never");
  REQUIRE(missing.status != 0);
  REQUIRE(lines(missing.err) == 1);
  REQUIRE_THAT(missing.err, Catch::Contains("/nonexistent/r.json"));

  const auto bad = write_temp("bad.json", R"({"data": {"kind": "images"},
  "teacher": {"model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 1, "lr": 99}}})");
  auto o = run(kMighty + " train " + bad + " --out /tmp/mighty_cli_never");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains(":2:") && Catch::Contains("/teacher/train/lr: 99 is outside (0, 10]"));
  std::filesystem::remove(bad);

  const auto broken_data =
      write_temp("data.json", R"({"data": {"kind": "images", "test_labels": "/nonexistent/l.gz"},
  "teacher": {"model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 1}}})");
  o = run(kMighty + " train " + broken_data + " --out /tmp/mighty_cli_never");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("/nonexistent/l.gz"));
  std::filesystem::remove(broken_data);
  std::filesystem::remove_all("/tmp/mighty_cli_never");
}

TEST_CASE("usage errors exit non-zero, and mighty offers no placeholder verbs") {
  REQUIRE(run(kMighty + " train").status != 0);
  REQUIRE(run(kMighty + " frobnicate").status != 0);
  // inspect, run and bench live in mighty-run; mighty neither lists nor accepts them.
  auto o = run(kMighty + " inspect x.json");
  REQUIRE(o.status != 0);
  REQUIRE_THAT(run(kMighty + " --help").out,
               !Catch::Contains("reserved") && !Catch::Contains("not available"));
  REQUIRE(run(kMighty + " train x.json --threads 0").status != 0);
}

TEST_CASE("mighty-run reports the CPU path and honours MIGHTY_ISA") {
  auto o = run(kMightyRun + " cpu");
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("best path"));
  o = run("MIGHTY_ISA=ref " + kMightyRun + " cpu");
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("selected: ref"));
  o = run("MIGHTY_ISA=bogus " + kMightyRun + " cpu");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("MIGHTY_ISA=bogus"));
}

TEST_CASE("train then eval end to end on a small subset and resume through the CLI") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_cli_run_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto recipe = write_temp("tiny.json", R"({
  "name": "tiny", "seed": 4,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 300,
           "normalize": {"mean": 0.286, "std": 0.353}},
  "teacher": {"model": {"arch": "mlp", "hidden": [32]},
              "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "checkpoint_every": 3}},
  "eval": {"latency_runs": 5, "throughput_batch": 8}})");
  const std::string straight = (dir / "straight").string(), resumed = (dir / "resumed").string();
  auto o = run(kMighty + " train " + recipe + " --threads 1 --out " + straight);
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("test accuracy") && Catch::Contains("latency, batch 1"));
  for (const char* f : {"recipe.json", "checkpoint.pt", "teacher.pt", "teacher.graph.json", "metrics.json"}) {
    REQUIRE(std::filesystem::exists(std::filesystem::path(straight) / f));
  }
  const std::string metrics = slurp(straight + "/metrics.json");
  REQUIRE_THAT(metrics, Catch::Contains("\"train\"") && Catch::Contains("\"confusion\"") &&
                            Catch::Contains("\"latency_ms_b1\""));

  // The exported fp32 artifact, run by mighty-run, gives LibTorch's test accuracy on the same 300 images.
  o = run(kMighty + " export " + recipe + " --threads 1 --out " + straight);
  REQUIRE(o.status == 0);
  const std::string artifact = straight + "/teacher.fp32.mighty";
  REQUIRE(std::filesystem::exists(artifact));
  const std::string base = "/usr/share/datasets/fashion-mnist/";
  auto e = run("MIGHTY_PROGRESS=off " + kMightyRun + " eval " + artifact + " --images " + base +
               "t10k-images-idx3-ubyte.gz --labels " + base + "t10k-labels-idx1-ubyte.gz --limit 300");
  INFO(e.err);
  REQUIRE(e.status == 0);
  // The number before the first '%' after `key`, e.g. "93.09".
  const auto pct = [](const std::string& text, const std::string& key) {
    const auto at = text.find(key);
    REQUIRE(at != std::string::npos);
    const auto end = text.find('%', at);
    const auto begin = text.find_last_of(' ', end) + 1;
    return text.substr(begin, end - begin);
  };
  REQUIRE_THAT(e.out, Catch::Contains("over 300 images"));
  const auto libtorch = run(kMighty + " eval " + recipe + " --threads 1 --out " + straight);
  REQUIRE(pct(e.out, "accuracy") == pct(libtorch.out, "test accuracy"));
  auto b = run(kMightyRun + " bench " + artifact + " --runs 3 --batch 2");
  REQUIRE(b.status == 0);
  REQUIRE_THAT(b.out, Catch::Contains("input: synthetic"));
  // Real images: the first ones of the file, as many as the batch (at least 1024 when the file has them).
  b = run(kMightyRun + " bench " + artifact + " --runs 3 --batch 2 --images " + base +
          "t10k-images-idx3-ubyte.gz");
  REQUIRE(b.status == 0);
  REQUIRE_THAT(b.out, Catch::Contains("input: 1024 images of"));
  b = run(kMightyRun + " bench " + artifact + " --runs 3 --text " + recipe);
  REQUIRE(b.status != 0);
  REQUIRE_THAT(b.err, Catch::Contains("bench: this artifact takes images; give --images for images"));
  b = run(kMightyRun + " bench " + artifact + " --runs 3 --images " + base + "t10k-labels-idx1-ubyte.gz");
  REQUIRE(b.status != 0);
  REQUIRE_THAT(b.err, Catch::Contains("images have 1 pixels, the model takes 784"));

  // Re-evaluating keeps the training record.
  o = run(kMighty + " eval " + recipe + " --threads 1 --out " + straight);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(slurp(straight + "/metrics.json"),
               Catch::Contains("\"train\"") && Catch::Contains("\"history\""));

  // Interrupted after 5 steps (last checkpoint at 3), then resumed: the same test result as the straight run.
  o = run(kMighty + " train " + recipe + " --threads 1 --stop-after 5 --out " + resumed);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.err, Catch::Contains("continue with --resume"));
  REQUIRE_FALSE(std::filesystem::exists(resumed + "/teacher.pt"));
  o = run(kMighty + " train " + recipe + " --threads 1 --resume --out " + resumed);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.err, Catch::Contains("resumed from") && Catch::Contains("at step 3/16"));
  auto test_line = [](const std::string& text) {
    const auto at = text.find("test accuracy");
    return text.substr(at, text.find('\n', at) - at);
  };
  REQUIRE(test_line(o.out) ==
          test_line(run(kMighty + " eval " + recipe + " --threads 1 --out " + straight).out));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
}

TEST_CASE("compress distills on a small subset and prints the side-by-side table") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mighty_cli_compress_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const std::string teacher = R"(
  "name": "tiny_distill", "seed": 4,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 256, "test_limit": 200},
  "teacher": {"model": {"arch": "mlp", "hidden": [32]}, "train": {"steps": 8, "batch_size": 64}},
  "eval": {"latency_runs": 3, "throughput_batch": 4})";
  const auto no_stages = write_temp("no_stages.json", "{" + teacher + "}");
  auto o = run("MIGHTY_DATA=" + dir.string() + " " + kMighty + " compress " + no_stages + " --out " +
               dir.string());
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("no stages to run"));
  const auto recipe = write_temp("distill.json", "{" + teacher + R"(,
  "student": {"from_teacher": {"width": 0.25}},
  "stages": [{"kind": "distill", "baseline": true, "train": {"steps": 8, "batch_size": 64}}]})");
  o = run("MIGHTY_DATA=" + dir.string() + " " + kMighty + " compress " + recipe + " --threads 1 --out " +
          (dir / "run").string());
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("| teacher | teacher |") &&
                          Catch::Contains("| student | student_fp32 |") &&
                          Catch::Contains("gain of distillation over scratch"));
  REQUIRE(std::filesystem::exists(dir / "run" / "report.json"));
  REQUIRE_THAT(slurp((dir / "run" / "report.md").string()), Catch::Contains("| distilled | 4 |"));
  // report.html beside it; `mighty report` writes both again from report.json, to the byte.
  const std::string html = slurp((dir / "run" / "report.html").string());
  REQUIRE_THAT(html,
               Catch::Contains("data-chart=\"training\"") && Catch::Contains("data-chart=\"quality_bytes\""));
  std::filesystem::remove(dir / "run" / "report.html");
  o = run(kMighty + " report " + (dir / "run").string());
  REQUIRE(o.status == 0);
  REQUIRE(slurp((dir / "run" / "report.html").string()) == html);
  o = run(kMighty + " report " + dir.string());  // not a run directory
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("report.json: no such file"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
  std::filesystem::remove(no_stages);
}

TEST_CASE("mighty-run inspect describes a valid artifact and rejects a corrupt one in one line") {
  mighty::Graph g;
  int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {4}}});
  g.add("fc", mighty::OpKind::kLinear, {x}, {{"in_features", 4}, {"out_features", 2}});
  g.infer_shapes();
  mighty::ArtifactWriter w;
  w.set_metadata({{"producer", "test_cli"}, {"graph", g.to_json()}, {"labels", {"no", "yes"}}});
  const float weight[8] = {0, 1, 0, 2, 0, 0, 3, 0};
  const float bias[2] = {0.5f, -0.5f};
  w.add_tensor("fc.weight", mighty::TensorType::kFloat32, {2, 4}, weight);
  w.add_tensor("fc.bias", mighty::TensorType::kFloat32, {2}, bias);
  const std::string path = write_temp("m.mighty", "");
  w.write(path);
  auto o = run(kMightyRun + " inspect " + path);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("test_cli") && Catch::Contains("Linear") &&
                          Catch::Contains("fc.weight") && Catch::Contains("sparsity 62.5%"));
  std::string bytes = slurp(path);
  bytes[bytes.size() - 1] ^= 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  o = run(kMightyRun + " inspect " + path);
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("fc.bias") && Catch::Contains("checksum"));
  std::filesystem::remove(path);
}

TEST_CASE("the C API example classifies through a model built here") {
  // input [1, 2, 2] -> flatten -> linear 4 -> 3 with weights that pick out single pixels.
  mighty::Graph g;
  int x = g.add("input", mighty::OpKind::kInput, {}, {{"shape", {1, 2, 2}}});
  x = g.add("flatten", mighty::OpKind::kFlatten, {x});
  g.add("out", mighty::OpKind::kLinear, {x}, {{"in_features", 4}, {"out_features", 3}});
  g.infer_shapes();
  mighty::ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()},
                  {"input", {{"kind", "images"}, {"shape", {1, 2, 2}}, {"mean", 0.0}, {"std", 1.0}}},
                  {"labels", {"first", "second", "third"}}});
  const float weight[12] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};  // class c reads pixel c (c = 0, 2, 3)
  const float bias[3] = {0, 0, 0};
  w.add_tensor("out.weight", mighty::TensorType::kFloat32, {3, 4}, weight);
  w.add_tensor("out.bias", mighty::TensorType::kFloat32, {3}, bias);
  const std::string model = write_temp("c_api.mighty", "");
  w.write(model);
  const std::string image = write_temp("pixels.raw", std::string("\x10\x00\xff\x20", 4));
  auto o = run(std::string(CLASSIFY_BIN) + " " + model + " " + image);
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::StartsWith("1 second 1.0000"));  // pixel 2 = 255 -> 1.0
  o = run(std::string(CLASSIFY_BIN) + " " + image + " " + image);
  REQUIRE(o.status == 1);
  REQUIRE_THAT(o.err, Catch::Contains("header at byte 0"));
  std::filesystem::remove(model);
  std::filesystem::remove(image);
}

TEST_CASE("a spam filter from USE-Lite, end to end: compress, mighty-run on raw emails, the C API") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_cli_spam_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  // A small corpus in SpamAssassin's layout: folders named after the classes, each email as .json and .txt.
  const char* spam_lines[] = {"WIN a FREE cruise, click here now", "Cheap meds online, no prescription",
                              "Make $5000 a week from home", "Lowest mortgage rates, apply today"};
  const char* ham_lines[] = {"Minutes of Tuesday's build meeting", "Re: the patch for the parser",
                             "Lunch on Friday?", "Draft of the quarterly report attached"};
  for (int i = 0; i < 40; ++i) {
    for (int spam = 0; spam < 2; ++spam) {
      const auto folder = dir / "corpus" / (spam ? "spam-1" : "easy-ham-1");
      std::filesystem::create_directories(folder);
      const std::string subject = spam ? spam_lines[i % 4] : ham_lines[i % 4];
      const std::string text = "Received: from relay\nSubject: " + subject + "\n\n" + subject + ". Message " +
                               std::to_string(i) + (spam ? ". Unsubscribe: reply REMOVE." : ". Thanks, Ann");
      std::ofstream(folder / (std::to_string(i) + ".txt")) << text;
      std::ofstream(folder / (std::to_string(i) + ".json")) << nlohmann::json{{"text", text}}.dump();
    }
  }
  const std::string model_dir = mighty::testing::use_lite_model_dir();
  const auto recipe =
      write_temp("spam.json", R"({
  "name": "spam_tiny", "seed": 2,
  "data": {"kind": "documents", "corpus": ")" +
                                  (dir / "corpus").string() + R"(",
           "vocab": ")" + model_dir +
                                  R"(/vocab.json", "max_tokens": 32, "validation_size": 10, "test_size": 20},
  "teacher": {"use_lite": ")" + model_dir +
                                  R"(/model.json", "train": {"epochs": 5, "batch_size": 16}},
  "student": {"model": {"arch": "bag", "dim": 8, "hidden": [8]}},
  "stages": [{"kind": "distill", "train": {"epochs": 10, "batch_size": 8, "lr": 0.01}},
             {"kind": "quantize", "activations": "dynamic"}, {"kind": "export"},
             {"kind": "verify", "max_accuracy_drop": 100, "min_speedup": 1}],
  "eval": {"latency_runs": 5, "throughput_batch": 4}})");
  auto o = run("MIGHTY_DATA=" + (dir / "cache").string() + " " + kMighty + " compress " + recipe +
               " --threads 1 --out " + (dir / "run").string());
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("spam precision") && Catch::Contains("verify: **pass**"));
  const std::string model = (dir / "run" / "model.mighty").string();
  // The cascade's teacher is USE-Lite + head as a graph on the runtime (teacher.fp32.mighty beside the
  // student, the tokenizer inside), so the cascade can be served.
  const auto report = nlohmann::json::parse(slurp((dir / "run" / "report.json").string()));
  const auto& cascade = report["verify"]["cascade"];
  REQUIRE(cascade["teacher_engine"] == "runtime fp32");
  REQUIRE(cascade["teacher_file"] == "teacher.fp32.mighty");
  REQUIRE(cascade["test"]["examples"] == 20);
  REQUIRE(cascade["curve_test"].size() == 21);
  REQUIRE(cascade["cpu_seconds_per_million"]["teacher"].get<double>() > 0);
  REQUIRE_THAT(o.out, !Catch::Contains("not servable"));
  // On the runtime the teacher computes what it computed in LibTorch: the same test accuracy.
  for (const auto& m : report["models"])
    if (m["role"] == "teacher")
      REQUIRE(cascade["test"]["teacher_accuracy"].get<double>() == Approx(m["accuracy"].get<double>()));
  const std::string teacher = (dir / "run" / "teacher.fp32.mighty").string();
  REQUIRE_THAT(run(kMightyRun + " inspect " + teacher).out,
               Catch::Contains("L2Normalize") && Catch::Contains("ScaledDotProductAttention"));
  // `mighty export` writes the same teacher from the cached head, in fp32 (byte for byte what verify wrote)
  // or with int8 Linear layers.
  for (const char* precision : {"fp32", "int8"}) {
    o = run("MIGHTY_DATA=" + (dir / "cache").string() + " " + kMighty + " export " + recipe + " --out " +
            (dir / "exported").string() + (std::string(precision) == "int8" ? " --int8" : ""));
    INFO(o.err);
    REQUIRE(o.status == 0);
    const std::string file = (dir / "exported" / (std::string("teacher.") + precision + ".mighty")).string();
    if (std::string(precision) == "fp32") REQUIRE(slurp(file) == slurp(teacher));
    o = run(kMightyRun + " run " + file + " --email " + (dir / "corpus" / "spam-1" / "0.txt").string());
    REQUIRE(o.status == 0);
    REQUIRE_THAT(o.out, Catch::Contains("0.txt\t"));
  }
  // The deployed file reads raw emails: the easy cases come out right.
  const std::string spam_email = (dir / "corpus" / "spam-1" / "0.txt").string();
  const std::string ham_email = (dir / "corpus" / "easy-ham-1" / "0.txt").string();
  o = run(kMightyRun + " run " + model + " --email " + spam_email + " " + ham_email);
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("0.txt\tspam\t") && Catch::Contains("0.txt\tham\t"));
  o = run("MIGHTY_PROGRESS=off " + kMightyRun + " eval " + model + " --documents " +
          (dir / "corpus").string());
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("over 80 documents; spam precision"));
  o = run(kMightyRun + " bench " + model + " --runs 20 --batch 2 --email " + spam_email);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("latency, batch 1"));
  o = run(std::string(CLASSIFY_BIN) + " " + model + " " + spam_email);
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::StartsWith("1 spam "));
  // A document model without documents, or an email for an image model: one clear line.
  o = run(kMightyRun + " run " + model);
  REQUIRE(o.status != 0);
  REQUIRE_THAT(o.err, Catch::Contains("needs --email"));
#if defined(MIGHTY_SERVE_LOAD)
  // Served: the same file under mighty-run serve answers raw emails sent as JSON strings, as `run` does.
  const auto served = dir / "served";
  std::filesystem::create_directories(served);
  std::filesystem::copy_file(model, served / "spam.mighty");
  std::filesystem::copy_file(teacher, served / "teacher.mighty");
  // Threshold 1: every email goes on to the teacher.
  std::ofstream(served / "cascades.json")
      << R"({"cascades": {"spam_cascade": {"student": "spam", "teacher": "teacher", "threshold": 1.0}}})";
  const auto port_file = dir / "port", pid_file = dir / "pid";
  run("sh -c '" + kMightyRun + " serve " + served.string() + " --port 0 --port-file " + port_file.string() +
      " >/dev/null 2>" + (dir / "server.log").string() + " & echo $! >" + pid_file.string() + "'");
  for (int i = 0; i < 200 && !std::filesystem::exists(port_file); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(std::filesystem::exists(port_file));
  const std::string post = std::string(MIGHTY_BUILD_DIR) + "/mighty-serve-load --port " +
                           std::to_string(std::stoi(slurp(port_file.string()))) +
                           " --post /v1/models/spam:predict --body ";
  const auto good = write_temp("spam_body.json",
                               nlohmann::json{{"instances", {slurp(spam_email), slurp(ham_email)}}}.dump());
  const auto bad = write_temp("spam_bad.json", R"({"instances": [[1, 2, 3]]})");
  const auto answer = run(post + good), refused = run(post + bad);
  std::string cascade_post = post;
  cascade_post.replace(cascade_post.find("spam:predict"), 12, "spam_cascade:predict");
  const auto by_teacher = run(cascade_post + good);
  run("kill " + slurp(pid_file.string()));
  INFO(answer.out << answer.err << slurp((dir / "server.log").string()));
  REQUIRE(answer.status == 0);
  REQUIRE(answer.out.rfind("200\n", 0) == 0);
  const auto predictions = nlohmann::json::parse(answer.out.substr(4))["predictions"];
  REQUIRE(predictions.size() == 2);
  REQUIRE(predictions[0]["label"] == "spam");
  REQUIRE(predictions[1]["label"] == "ham");
  REQUIRE(refused.out.rfind("400\n", 0) == 0);
  REQUIRE(nlohmann::json::parse(refused.out.substr(4))["kind"] == "wrong_type");
  // The cascade: both emails answered by the served USE-Lite teacher, as `mighty-run run` answers them.
  INFO(by_teacher.out);
  REQUIRE(by_teacher.out.rfind("200\n", 0) == 0);
  const auto teacher_answers = nlohmann::json::parse(by_teacher.out.substr(4))["predictions"];
  const auto teacher_run = run(kMightyRun + " run " + teacher + " --email " + spam_email + " " + ham_email);
  REQUIRE(teacher_run.status == 0);
  REQUIRE(teacher_answers.size() == 2);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(teacher_answers[i]["answered_by"] == "teacher");
    REQUIRE_THAT(teacher_run.out, Catch::Contains(std::string(i == 0 ? "spam-1" : "easy-ham-1") + "/0.txt\t" +
                                                  teacher_answers[i]["label"].get<std::string>() + "\t"));
  }
  std::filesystem::remove(good);
  std::filesystem::remove(bad);
#endif
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
}

#if defined(MIGHTY_AARCH64_BIN) || defined(MIGHTY_WASM_BIN) || defined(MIGHTY_SERVE_LOAD)
// A tiny compressed model (int8 with a uint8 convolution chain, pools and Linear; its fp32 student beside it)
// for the other builds' agreement tests, written to `dir`.
void compress_agreement_model(const std::filesystem::path& dir) {
  std::filesystem::remove_all(dir);
  const auto recipe = write_temp("agreement.json", R"({
  "name": "agreement", "seed": 3,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 100,
           "normalize": {"mean": 0.286, "std": 0.353}},
  "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "kernel": 3, "pool": "max"}], "hidden": [16]},
              "train": {"steps": 8, "batch_size": 64}},
  "student": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "kernel": 3},
                                                 {"channels": 16, "kernel": 3, "pool": "max"}],
                        "hidden": [16]}},
  "stages": [{"kind": "distill", "train": {"steps": 8, "batch_size": 64}},
             {"kind": "quantize", "activations": "static"}, {"kind": "export"}],
  "eval": {"latency_runs": 3, "throughput_batch": 4}})");
  auto o = run(kMighty + " compress " + recipe + " --threads 1 --out " + dir.string());
  INFO(o.err);
  REQUIRE(o.status == 0);
  std::filesystem::remove(recipe);
}
#endif

#if defined(MIGHTY_AARCH64_BIN) || defined(MIGHTY_WASM_BIN)
// `args` run on every x86 path this CPU has print exactly `want`.
void require_x86_paths_print(const std::string& args, const std::string& want) {
  for (const char* isa : {"ref", "avx2", "avx512vnni", "amx"}) {
    const auto cpu = run("MIGHTY_ISA=" + std::string(isa) + " " + kMightyRun + " cpu");
    if (cpu.status != 0) continue;  // a path this CPU lacks
    const auto on_x86 = run("MIGHTY_ISA=" + std::string(isa) + " " + kMightyRun + args);
    INFO("x86 path " << isa);
    REQUIRE(on_x86.status == 0);
    REQUIRE(on_x86.out == want);
  }
}

// One raw 28 x 28 image of patterned bytes, for the C API example.
std::string patterned_image(const std::string& name) {
  std::string pixels(784, '\0');
  for (int i = 0; i < 784; ++i) pixels[static_cast<size_t>(i)] = static_cast<char>((i * 37) % 256);
  return write_temp(name, pixels);
}
#endif

#if defined(MIGHTY_AARCH64_BIN)
// An artifact made here runs on the aarch64 build (scripts/build-aarch64, under qemu-aarch64) exactly as on
// x86-64: the same outputs bit for bit (hex floats), for the int8 model (uint8 convolution chain, pools,
// Linear) and its fp32 student, on every x86 path this CPU has and every aarch64 path. The C API example
// agrees too.
TEST_CASE("aarch64: an x86-made artifact gives the same outputs, bit for bit, under qemu-aarch64") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_aarch64_" + std::to_string(::getpid()));
  compress_agreement_model(dir);
  const std::string base = "/usr/share/datasets/fashion-mnist/";
  // Three emulated CPUs: cortex-a53 (neon), cortex-a76 (dotprod) and max (i8mm).
  const std::string arm = std::string("qemu-aarch64 ") + MIGHTY_AARCH64_BIN;
  for (const char* model : {"model.mighty", "student.fp32.mighty"}) {
    const std::string args = std::string(" run ") + (dir / model).string() + " --images " + base +
                             "t10k-images-idx3-ubyte.gz --limit 40 --logits";
    const auto on_arm = run("QEMU_CPU=max " + arm + args);
    INFO(model << ": " << on_arm.err);
    REQUIRE(on_arm.status == 0);
    REQUIRE(lines(on_arm.out) == 40);
    REQUIRE(run("QEMU_CPU=cortex-a53 " + arm + args).out == on_arm.out);
    REQUIRE(run("QEMU_CPU=cortex-a76 " + arm + args).out == on_arm.out);
    require_x86_paths_print(args, on_arm.out);
  }
  const std::string image = patterned_image("aarch64.raw");
  const auto c_x86 = run(std::string(CLASSIFY_BIN) + " " + (dir / "model.mighty").string() + " " + image);
  const auto c_arm = run("qemu-aarch64 " + std::string(MIGHTY_AARCH64_CLASSIFY) + " " +
                         (dir / "model.mighty").string() + " " + image);
  REQUIRE(c_x86.status == 0);
  REQUIRE(c_arm.status == 0);
  REQUIRE(c_arm.out == c_x86.out);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(image);
}
#endif

#if defined(MIGHTY_WASM_BIN)
// The same under Node.js for the WebAssembly build (scripts/build-wasm), on its simd128 and ref paths. That
// build reads no gzip, so the test images go to it decompressed; a .gz is refused with one line naming it.
TEST_CASE("wasm: an x86-made artifact gives the same outputs, bit for bit, under Node.js") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_wasm_" + std::to_string(::getpid()));
  compress_agreement_model(dir);
  const std::string gz = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  const std::string images = (dir / "t10k-images-idx3-ubyte").string();
  {
    std::ifstream in(gz, std::ios::binary);
    const std::string packed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(images, std::ios::binary) << mighty::gunzip(packed, gz);
  }
  const std::string wasm = std::string("node ") + MIGHTY_WASM_BIN;
  for (const char* model : {"model.mighty", "student.fp32.mighty"}) {
    const std::string args =
        std::string(" run ") + (dir / model).string() + " --images " + images + " --limit 40 --logits";
    const auto on_wasm = run(wasm + args);
    INFO(model << ": " << on_wasm.err);
    REQUIRE(on_wasm.status == 0);
    REQUIRE(lines(on_wasm.out) == 40);
    REQUIRE(run("MIGHTY_ISA=ref " + wasm + args).out == on_wasm.out);
    require_x86_paths_print(args, on_wasm.out);
  }
  const auto refused =
      run(wasm + " run " + (dir / "model.mighty").string() + " --images " + gz + " --limit 1");
  REQUIRE(refused.status != 0);
  REQUIRE(lines(refused.err) == 1);
  REQUIRE(refused.err.find("gzip") != std::string::npos);
  const std::string image = patterned_image("wasm.raw");
  const auto c_x86 = run(std::string(CLASSIFY_BIN) + " " + (dir / "model.mighty").string() + " " + image);
  const auto c_wasm =
      run("node " + std::string(MIGHTY_WASM_CLASSIFY) + " " + (dir / "model.mighty").string() + " " + image);
  REQUIRE(c_x86.status == 0);
  REQUIRE(c_wasm.status == 0);
  REQUIRE(c_wasm.out == c_x86.out);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(image);
}

// The web page in headless Chromium (tests/web/page-test.js): it picks the model and test image 3 through the
// page's file inputs and must show the class the native runtime gives, with no request leaving the page. The
// screenshot stays at MIGHTY_WEB_SCREENSHOT for people to look at.
TEST_CASE("wasm: the web page classifies a test image in headless Chromium, offline") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_web_" + std::to_string(::getpid()));
  compress_agreement_model(dir);
  const std::string model = (dir / "model.mighty").string();
  const std::string gz = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  const auto native = run(kMightyRun + " run " + model + " --images " + gz + " --limit 4");
  REQUIRE(native.status == 0);
  // The fourth line: "3<TAB>index<TAB>name".
  std::istringstream lines_in(native.out);
  std::string line;
  for (int i = 0; i < 4; ++i) std::getline(lines_in, line);
  const std::string expect = line.substr(line.rfind('\t') + 1);
  const char* data = std::getenv("MIGHTY_DATA");
  const std::string cache = data ? data : std::string(std::getenv("HOME")) + "/.cache/mighty";
  std::filesystem::remove(MIGHTY_WEB_SCREENSHOT);
  const auto o = run("NODE_PATH=" + cache +
                     "/npm-playwright-core-1.64.1/node_modules node " MIGHTY_SOURCE_DIR
                     "/tests/web/page-test.js --page " MIGHTY_WEB_PAGE " --model " +
                     model + " --images " + gz + " --index 3 --expect '" + expect +
                     "' --screenshot " MIGHTY_WEB_SCREENSHOT);
  INFO(o.out << o.err);
  REQUIRE(o.status == 0);
  REQUIRE(o.out.find("none outside") != std::string::npos);
  REQUIRE(std::filesystem::file_size(MIGHTY_WEB_SCREENSHOT) > 10000);
  // A wrong expectation fails: the check can fail.
  const auto wrong = run("NODE_PATH=" + cache +
                         "/npm-playwright-core-1.64.1/node_modules node " MIGHTY_SOURCE_DIR
                         "/tests/web/page-test.js --page " MIGHTY_WEB_PAGE " --model " +
                         model + " --images " + gz + " --index 3 --expect 'not a class' --screenshot " +
                         (dir / "wrong.png").string());
  REQUIRE(wrong.status != 0);
  REQUIRE(wrong.err.find("expected 'not a class'") != std::string::npos);
  std::filesystem::remove_all(dir);
}
#endif

#if defined(MIGHTY_WEB_PAGE)
// A compress run's report.html in headless Chromium (tests/web/report-test.js): every model, training epoch
// and cascade point report.json holds is drawn inside its chart, and nothing is fetched. The screenshot stays
// at MIGHTY_REPORT_SCREENSHOT for people to look at.
TEST_CASE("report.html draws every point of a run in headless Chromium, offline") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_report_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto recipe = write_temp("report.json", R"({
  "name": "report", "seed": 5,
  "data": {"kind": "images", "validation_size": 200, "train_limit": 512, "test_limit": 200},
  "teacher": {"model": {"arch": "mlp", "hidden": [32]}, "train": {"epochs": 2, "batch_size": 64}},
  "student": {"from_teacher": {"width": 0.5}},
  "stages": [{"kind": "distill", "train": {"epochs": 3, "batch_size": 64}},
             {"kind": "quantize", "activations": "static"}, {"kind": "export", "onnx": false},
             {"kind": "verify", "onnxruntime": false, "latency_runs": 3}],
  "eval": {"latency_runs": 3, "throughput_batch": 8}})");
  auto o = run(kMighty + " compress " + recipe + " --threads 1 --out " + dir.string());
  INFO(o.err);
  REQUIRE(o.status == 0);
  const char* data = std::getenv("MIGHTY_DATA");
  const std::string cache = data ? data : std::string(std::getenv("HOME")) + "/.cache/mighty";
  const std::string node = "NODE_PATH=" + cache +
                           "/npm-playwright-core-1.64.1/node_modules node " MIGHTY_SOURCE_DIR
                           "/tests/web/report-test.js --run ";
  std::filesystem::remove(MIGHTY_REPORT_SCREENSHOT);
  o = run(node + dir.string() + " --screenshot " MIGHTY_REPORT_SCREENSHOT);
  INFO(o.out << o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.out, Catch::Contains("training 3") && Catch::Contains("cascade_accuracy 22") &&
                          Catch::Contains("nothing fetched"));
  REQUIRE(std::filesystem::file_size(MIGHTY_REPORT_SCREENSHOT) > 10000);
  // The check can fail: a page that lost a cascade point is caught.
  std::string page = slurp((dir / "report.html").string());
  const auto at = page.find("<circle class=\"point\" data-chart=\"cascade_accuracy\"");
  REQUIRE(at != std::string::npos);
  page.erase(at, page.find("</circle>", at) + 9 - at);
  std::ofstream(dir / "report.html", std::ios::binary | std::ios::trunc) << page;
  o = run(node + dir.string() + " --screenshot " + (dir / "broken.png").string());
  REQUIRE(o.status != 0);
  REQUIRE_THAT(o.err, Catch::Contains("chart 'cascade_accuracy' draws 21 points, report.json has 22"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
}
#endif

#if defined(MIGHTY_SERVE_LOAD)
// The short version of the serving load test (scripts/serve-load --quick; the full one is the same with
// longer phases): mighty-run serve on loopback under load at 1 and 2 threads, paced at half load, a hot
// reload and a damaged reload under load, 256 clients connecting at once (each answered: the listen backlog
// holds them), a burst past the queue limit and 200 malformed requests of ten kinds. The script fails on any
// failed, mixed-up or lost answer, a malformed request not answered 4xx, a reload not taken or a damaged file
// not refused.
TEST_CASE(
    "serve: the short load test (reloads under load, 256 connections at once, a burst past the queue, 200 "
    "malformed requests)") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_serve_" + std::to_string(::getpid()));
  compress_agreement_model(dir);
  const auto o =
      run(std::string(MIGHTY_SOURCE_DIR) + "/scripts/serve-load --quick --build " + MIGHTY_BUILD_DIR + " " +
          (dir / "model.mighty").string() + " /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  INFO(o.out << o.err);
  CHECK(o.status == 0);
  CHECK_THAT(o.out, Catch::Contains("malformed: 200/200 answered 4xx"));
  CHECK_THAT(o.out, Catch::Contains("| connect: 256 connections at once, 1 image each |"));
  std::filesystem::remove_all(dir);
}
#endif
