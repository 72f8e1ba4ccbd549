// Data-parallel training through the CLI, several processes on loopback: two ranks train what one rank
// trains, a lost rank stops the others within the timeout naming it, and --resume completes the run.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "helpers.h"
#include "runtime/format/artifact.h"

using namespace mighty;
using namespace mighty::testing;

namespace {

const std::string kMighty = MIGHTY_BIN;

std::filesystem::path temp_dir(const std::string& name) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mighty_dp_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The largest |a - b| / max(1, |b|) over every fp32 tensor of two artifacts with the same tensors.
double max_relative_difference(const std::string& a_path, const std::string& b_path) {
  const Artifact a = Artifact::open(a_path), b = Artifact::open(b_path);
  REQUIRE(a.tensors().size() == b.tensors().size());
  double worst = 0.0;
  for (const auto& ta : a.tensors()) {
    const auto& tb = b.tensor(ta.name);
    REQUIRE(ta.shape == tb.shape);
    if (ta.type != TensorType::kFloat32) continue;
    for (int64_t i = 0; i < ta.numel(); ++i) {
      const double x = ta.as<float>()[i], y = tb.as<float>()[i];
      worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
    }
  }
  return worst;
}

// Children of `parent` and their RANK.
std::vector<std::pair<pid_t, int>> ranks_of(pid_t parent) {
  std::vector<std::pair<pid_t, int>> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) != 2 || ppid != parent) continue;
    std::ifstream env(entry.path() / "environ");
    std::string var;
    while (std::getline(env, var, '\0')) {
      if (var.rfind("RANK=", 0) == 0) out.emplace_back(std::stoi(name), std::stoi(var.substr(5)));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("two ranks with global batch B train the weights one rank trains with batch B") {
  // An MLP (no BatchNorm: its batch statistics are each rank's own) on 500 images: 500 = 7 x 64 + 52, so
  // every epoch ends with a short batch that the ranks split 26 + 26.
  const auto dir = temp_dir("equal");
  const auto recipe = write_temp("dp_equal.json", R"({
  "name": "dp_equal", "seed": 4,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 500, "test_limit": 300},
  "teacher": {"model": {"arch": "mlp", "hidden": [64, 32], "dropout": 0},
              "train": {"epochs": 3, "batch_size": 64, "lr": 0.003, "grad_clip": 1.0}},
  "eval": {"latency_runs": 3, "throughput_batch": 4}})");
  const std::string one = (dir / "one").string(), two = (dir / "two").string();
  auto o = run(kMighty + " train " + recipe + " --threads 1 --out " + one);
  INFO(o.err);
  REQUIRE(o.status == 0);
  o = run(kMighty + " train " + recipe + " --threads 1 --nproc 2 --out " + two);
  INFO(o.err);
  REQUIRE(o.status == 0);
  // Only rank 0 speaks and writes.
  const auto first = o.out.find("test accuracy");
  REQUIRE(first != std::string::npos);
  REQUIRE(o.out.find("test accuracy", first + 1) == std::string::npos);
  REQUIRE(o.err.find("epoch 1:") == o.err.rfind("epoch 1:"));

  // The same loss trajectory: per-epoch training and validation loss within 1e-5.
  const auto m1 = nlohmann::json::parse(slurp(one + "/metrics.json"));
  const auto m2 = nlohmann::json::parse(slurp(two + "/metrics.json"));
  const auto& h1 = m1["train"]["history"];
  const auto& h2 = m2["train"]["history"];
  REQUIRE(h1.size() == 3);
  REQUIRE(h2.size() == h1.size());
  for (size_t e = 0; e < h1.size(); ++e) {
    INFO("epoch " << e + 1);
    REQUIRE(h2[e]["step"] == h1[e]["step"]);
    REQUIRE(h2[e]["train_loss"].get<double>() == Approx(h1[e]["train_loss"].get<double>()).epsilon(1e-5));
    REQUIRE(h2[e]["validation"]["loss"].get<double>() ==
            Approx(h1[e]["validation"]["loss"].get<double>()).epsilon(1e-5));
  }
  // The same final weights up to float32 sums in another order: 1e-7 per step, amplified by Adam where a
  // gradient is near zero (its update is ~lr x sign). Measured after 24 steps: ~1e-6 on one machine, 2.3e-5
  // on an AMD EPYC (Zen 4) with the same binaries; a wrong split of the batch moves weights by ~1e-2.
  REQUIRE(run(kMighty + " export " + recipe + " --threads 1 --out " + one).status == 0);
  REQUIRE(run(kMighty + " export " + recipe + " --threads 1 --out " + two).status == 0);
  const double diff = max_relative_difference(one + "/teacher.fp32.mighty", two + "/teacher.fp32.mighty");
  INFO("max relative weight difference " << diff);
  REQUIRE(diff < 1e-4);
  REQUIRE(m2["test"]["accuracy"] == m1["test"]["accuracy"]);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
}

TEST_CASE("a lost rank stops the others within the timeout, naming it, and --resume completes the run") {
  const auto recipe = write_temp("dp_kill.json", R"({
  "name": "dp_kill", "seed": 5,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 4000, "test_limit": 300},
  "teacher": {"model": {"arch": "mlp", "hidden": [128]},
              "train": {"epochs": 2, "batch_size": 32, "lr": 0.002, "checkpoint_every": 10}},
  "eval": {"latency_runs": 3, "throughput_batch": 4}})");
  const double timeout_s = 30.0;
  for (int victim : {1, 0}) {
    DYNAMIC_SECTION("rank " << victim << " is killed") {
      const auto dir = temp_dir("kill" + std::to_string(victim));
      const std::string out = (dir / "run").string(), err = (dir / "launcher.err").string();
      const std::string cmd =
          fmt::format("exec {} train {} --threads 1 --nproc 2 --dist-timeout {} --out {} 2>{}", kMighty,
                      recipe, timeout_s, out, err);
      const pid_t launcher = ::fork();
      REQUIRE(launcher >= 0);
      if (launcher == 0) {
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
      }
      // Mid-run: after the first checkpoint (step 10 of 250).
      const auto start = std::chrono::steady_clock::now();
      while (!std::filesystem::exists(out + "/checkpoint.pt") &&
             std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      REQUIRE(std::filesystem::exists(out + "/checkpoint.pt"));
      pid_t target = -1;
      for (const auto& [pid, rank] : ranks_of(launcher)) {
        if (rank == victim) target = pid;
      }
      REQUIRE(target > 0);
      REQUIRE(::kill(target, SIGKILL) == 0);
      const auto killed = std::chrono::steady_clock::now();
      int status = 0;
      REQUIRE(::waitpid(launcher, &status, 0) == launcher);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
      const std::string text = slurp(err);
      INFO(text);
      // The launcher passes the killed rank's status on; the survivor names the lost rank.
      REQUIRE(WIFEXITED(status));
      REQUIRE(WEXITSTATUS(status) == 128 + SIGKILL);
      REQUIRE_THAT(text, Catch::Contains(fmt::format("rank {} was killed by signal 9", victim)));
      REQUIRE_THAT(text, Catch::Contains(fmt::format("mighty: error: rank {}: distributed:", 1 - victim)));
      REQUIRE_THAT(text, Catch::Contains(fmt::format("lost rank {}", victim)));
      REQUIRE(seconds < timeout_s);
      REQUIRE_FALSE(std::filesystem::exists(out + "/teacher.pt"));

      // Relaunched with --resume: continues from the last complete checkpoint and finishes.
      auto o = run(kMighty + " train " + recipe + " --threads 1 --nproc 2 --resume --out " + out);
      INFO(o.err);
      REQUIRE(o.status == 0);
      REQUIRE_THAT(o.err, Catch::Contains("resumed from"));
      REQUIRE_THAT(o.out, Catch::Contains("test accuracy"));
      REQUIRE(std::filesystem::exists(out + "/teacher.pt"));
      std::filesystem::remove_all(dir);
    }
  }
  std::filesystem::remove(recipe);
}

TEST_CASE("compress with two ranks: the teacher, distillation and pruning data-parallel, rank 0 reports") {
  const auto dir = temp_dir("compress");
  const auto recipe = write_temp("dp_compress.json", R"({
  "name": "dp_compress", "seed": 4,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 200},
  "teacher": {"model": {"arch": "mlp", "hidden": [48]}, "train": {"steps": 12, "batch_size": 64}},
  "student": {"from_teacher": {"width": 0.5}},
  "stages": [{"kind": "distill", "train": {"steps": 12, "batch_size": 64}},
             {"kind": "prune", "method": "magnitude", "sparsity": 0.5, "train": {"steps": 8, "batch_size": 64}},
             {"kind": "quantize"}, {"kind": "export"}],
  "eval": {"latency_runs": 3, "throughput_batch": 4}})");
  const std::string out = (dir / "run").string();
  // MIGHTY_DATA: a fresh cache, so the teacher is trained by both ranks and read back from rank 0's file.
  auto o = run("MIGHTY_DATA=" + (dir / "cache").string() + " " + kMighty + " compress " + recipe +
               " --threads 1 --nproc 2 --out " + out);
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.err, Catch::Contains("training it once into the cache"));
  const auto report = nlohmann::json::parse(slurp(out + "/report.json"));
  std::vector<std::string> kinds;
  for (const auto& st : report["stages"]) kinds.push_back(st["kind"]);
  REQUIRE(kinds == std::vector<std::string>{"distill", "prune", "quantize", "export"});
  REQUIRE(report["stages"][1]["masks"]["sparsity"].get<double>() == Approx(0.5).margin(0.01));
  REQUIRE(std::filesystem::exists(out + "/model.mighty"));
  // Resumed: every stage run is found complete (rank 0's files, seen by both ranks).
  o = run("MIGHTY_DATA=" + (dir / "cache").string() + " " + kMighty + " compress " + recipe +
          " --threads 1 --nproc 2 --resume --out " + out);
  INFO(o.err);
  REQUIRE(o.status == 0);
  REQUIRE_THAT(o.err, Catch::Contains("trained earlier, reusing") && Catch::Contains("already complete"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(recipe);
}

TEST_CASE("bad distributed settings are one clear line") {
  const auto recipe = write_temp("dp_bad.json", R"({
  "name": "dp_bad", "seed": 5,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 200, "test_limit": 100},
  "teacher": {"model": {"arch": "mlp", "hidden": [8]}, "train": {"steps": 2, "batch_size": 32}}})");
  auto o = run(kMighty + " train " + recipe + " --rank 2 --world-size 2");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("rank 2 is not in a world of 2"));
  o = run(kMighty + " train " + recipe + " --world-size 2 --rank 1 --master localhost");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("expected HOST:PORT"));
  o = run(kMighty + " train " + recipe + " --nproc 2 --rank 0");
  REQUIRE(o.status != 0);
  REQUIRE_THAT(o.err, Catch::Contains("--nproc starts its own ranks"));
  // A rank whose peers never come: the rendezvous gives up after the timeout, naming the address.
  o = run(kMighty + " train " + recipe +
          " --world-size 2 --rank 0 --master 127.0.0.1:29517 --dist-timeout 2");
  REQUIRE(o.status != 0);
  REQUIRE(lines(o.err) == 1);
  REQUIRE_THAT(o.err, Catch::Contains("could not join the group at 127.0.0.1:29517 within 2 s"));
  std::filesystem::remove(recipe);
}
