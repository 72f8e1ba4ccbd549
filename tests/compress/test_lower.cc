#include <catch2/catch.hpp>

#include <torch/script.h>

#include <cstdlib>

#include "compress/models/lower.h"
#include "compress/pipeline/pipeline.h"
#include "compress/recipe/recipe.h"
#include "helpers.h"
#include "runtime/error.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

// conv -> batch_norm -> relu -> max_pool -> flatten -> linear, written as TorchScript from C++.
std::string write_cnn(const std::string& dir, const std::string& extra_op = "") {
  torch::jit::Module m("SmallCnn");
  torch::manual_seed(9);
  m.register_parameter("cw", torch::randn({4, 1, 3, 3}) * 0.3, false);
  m.register_parameter("cb", torch::randn({4}) * 0.1, false);
  m.register_parameter("g", torch::rand({4}) + 0.5, false);
  m.register_parameter("b", torch::randn({4}) * 0.1, false);
  m.register_buffer("rm", torch::randn({4}) * 0.1);
  m.register_buffer("rv", torch::rand({4}) + 0.5);
  m.register_parameter("lw", torch::randn({10, 4 * 14 * 14}) * 0.05, false);
  m.register_parameter("lb", torch::randn({10}) * 0.1, false);
  m.define(R"(
def forward(self, x):
    y = torch.conv2d(x, self.cw, self.cb, [1, 1], [1, 1], [1, 1], 1)
    y = torch.batch_norm(y, self.g, self.b, self.rm, self.rv, False, 0.1, 1e-5, False)
    y = torch.relu(y)
    y = torch.max_pool2d(y, [2, 2], [2, 2], [0, 0], [1, 1], False)
    y = torch.flatten(y, 1, -1)
    )" + extra_op +
           R"(
    return torch.linear(y, self.lw, self.lb)
)");
  const std::string path = dir + "/student.pt";
  m.save(path);
  return path;
}

}  // namespace

TEST_CASE("a TorchScript CNN lowers to the graph IR and computes the same") {
  const std::string dir = testing::fresh_temp_dir("lower", "cnn");
  const std::string path = write_cnn(dir);
  GraphModule m = lower_torchscript(path, {1, 28, 28});
  std::vector<std::string> ops;
  for (const auto& n : m->graph().nodes()) ops.push_back(op_name(n.op));
  REQUIRE(ops == std::vector<std::string>{"Input", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten",
                                          "Linear"});
  auto module = torch::jit::load(path);
  module.eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, 1, 28, 28});
  REQUIRE(torch::allclose(module.forward({x}).toTensor(), m->forward(x), 1e-5, 1e-5));
}

TEST_CASE("an op outside the IR is a clear error naming the op and the node") {
  const std::string dir = testing::fresh_temp_dir("lower", "bad");
  const std::string path = write_cnn(dir, "y = torch.sin(y)");
  REQUIRE_THROWS_WITH(lower_torchscript(path, {1, 28, 28}),
                      Catch::Contains("TorchScript op 'aten::sin'") && Catch::Contains("sin(") &&
                          Catch::Contains("supported: ") && Catch::Contains("aten::conv2d") &&
                          Catch::Contains("aten::tanh"));
  // Tanh is in the IR: the same model with it lowers and computes what TorchScript computes.
  const std::string with_tanh = write_cnn(testing::fresh_temp_dir("lower", "tanh"), "y = torch.tanh(y)");
  auto m = lower_torchscript(with_tanh, {1, 28, 28});
  bool has_tanh = false;
  for (const auto& n : m->graph().nodes()) has_tanh = has_tanh || n.op == OpKind::kTanh;
  REQUIRE(has_tanh);
  auto module = torch::jit::load(with_tanh);
  module.eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({3, 1, 28, 28});
  REQUIRE(torch::allclose(module.forward({x}).toTensor(), m->forward(x), 1e-5, 1e-5));
  REQUIRE_THROWS_WITH(lower_torchscript(dir + "/missing.pt", {1, 28, 28}),
                      Catch::Contains("missing.pt: TorchScript student file not found"));
}

TEST_CASE("a TorchScript student goes through distill, quantize, export and verify") {
  const std::string dir = testing::fresh_temp_dir("lower", "pipeline");
  const testing::ScopedEnv data_cache("MIGHTY_DATA", dir + "/cache");
  const std::string student = write_cnn(dir);
  const Recipe recipe = parse_recipe(R"({"name": "ts", "seed": 2,
    "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 300,
             "calibration_size": 200, "normalize": {"mean": 0.286, "std": 0.353}},
    "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}], "hidden": [32]},
                "train": {"lr": 0.003, "batch_size": 64, "steps": 24}},
    "student": {"torchscript": ")" + student +
                                         R"("},
    "stages": [{"kind": "distill", "train": {"lr": 0.003, "batch_size": 64, "steps": 16}},
               {"kind": "quantize"}, {"kind": "export"}, {"kind": "verify", "latency_runs": 3}],
    "eval": {"latency_runs": 3, "throughput_batch": 4}})",
                                     "ts.json");
  REQUIRE(parse_recipe(recipe.to_json().dump(), "again.json").hash() == recipe.hash());
  JobOptions o;
  o.quiet = true;
  o.out_dir = dir + "/run";
  const auto report = run_compress(recipe, o);
  REQUIRE(report["verify"]["pass"] == true);
  REQUIRE(report["models"][3]["role"] == "student_int8");
  REQUIRE(report["models"][3]["params"] == 4 * 9 + 4 + 4 * 2 + 10 * 784 + 10);
  REQUIRE(report["verify"]["simulation_vs_runtime"]["agreement"].get<double>() >= 0.999);
}
