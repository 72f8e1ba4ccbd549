// Models a user brings: MobileNet- and ResNet-style networks traced and scripted by Debian's python3-torch
// (tests/models/make_models.py; scripts/setup installs it), lowered to the graph IR, trained a step, folded,
// exported and run by the runtime.
#include <catch2/catch.hpp>

#include <torch/script.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <stdexcept>

#include "compress/data/data.h"
#include "compress/models/lower.h"
#include "compress/passes/export.h"
#include "compress/passes/prune.h"
#include "compress/passes/quantize.h"
#include "compress/passes/structured.h"
#include "helpers.h"
#include "onnx_io/import.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

// The models, written once per test process.
const std::string& models_dir() {
  static const std::string dir = [] {
    const std::string d = testing::fresh_temp_dir("import", "models");
    const std::string cmd =
        "/usr/bin/python3 " MIGHTY_SOURCE_DIR "/tests/models/make_models.py " + d + " >/dev/null";
    if (std::system(cmd.c_str()) != 0)
      throw std::runtime_error("tests/models/make_models.py failed (scripts/setup installs python3-torch)");
    return d;
  }();
  return dir;
}

std::map<std::string, int> op_counts(const Graph& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.nodes()) ++counts[op_name(n.op)];
  return counts;
}

int grouped_convs(const Graph& g) {
  int count = 0;
  for (const auto& n : g.nodes()) count += n.op == OpKind::kConv2d && n.attrs.value("groups", 1) != 1;
  return count;
}

// The runtime's fp32 output for x [B, 1, 28, 28].
torch::Tensor run_runtime(const ArtifactWriter& writer, const torch::Tensor& x) {
  const Session session(Artifact::from_bytes(writer.serialize(), "imported.mighty"));
  const auto xc = x.contiguous();
  auto y = session.run(xc.data_ptr<float>(), x.size(0));
  return torch::from_blob(y.data(), {x.size(0), static_cast<int64_t>(y.size()) / x.size(0)}).clone();
}

}  // namespace

TEST_CASE("traced and scripted MobileNet- and ResNet-style models lower and the runtime computes the same") {
  const std::map<std::string, std::vector<std::string>> expect = {
      {"mobilenet_v2", {"Conv2d", "BatchNorm2d", "Clip", "Add", "GlobalAvgPool", "Flatten", "Linear"}},
      {"mobilenet_v3",
       {"HardSwish", "GlobalAvgPool", "ReLU", "HardSigmoid", "Mul", "SiLU", "Sigmoid", "MaxPool2d", "Concat",
        "Clip", "Flatten", "Linear"}},
      {"resnet",
       {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "Add", "GlobalAvgPool", "Linear"}}};
  for (const auto& [name, ops] : expect) {
    for (const char* form : {"traced", "scripted"}) {
      INFO(name << " " << form);
      const std::string path = models_dir() + "/" + name + "." + form + ".pt";
      GraphModule m = lower_torchscript(path, {1, 28, 28});
      const auto counts = op_counts(m->graph());
      for (const auto& op : ops) {
        INFO(op);
        REQUIRE(counts.count(op) == 1);
      }
      if (name != "resnet") REQUIRE(grouped_convs(m->graph()) > 0);
      auto module = torch::jit::load(path);
      module.eval();
      torch::NoGradGuard no_grad;
      torch::manual_seed(3);
      const auto x = torch::randn({4, 1, 28, 28});
      const auto expected = module.forward({x}).toTensor();
      REQUIRE(torch::allclose(m->forward(x), expected, 1e-4, 1e-5));
      const auto got = run_runtime(export_fp32(m, {{"producer", "test"}}), x);
      REQUIRE(torch::allclose(got, expected, 1e-4, 1e-4));
      // BatchNorm folded into the (grouped) convolutions computes the same; what remains is arithmetic with
      // constants after other ops (mobilenet_v3: the input's normalization, its layer scale and shift).
      GraphModule folded = fold_batchnorm(m);
      int left = 0;
      for (const Node& n : folded->graph().nodes())
        if (n.op == OpKind::kBatchNorm2d) left += n.attrs.value("frozen_statistics", false) ? 1 : 100;
      REQUIRE(left == (name == "mobilenet_v3" ? 4 : 0));
      REQUIRE(torch::allclose(folded->forward(x), expected, 1e-4, 1e-4));
      // The dynamic-int8 export keeps grouped convolutions in fp32 and runs.
      const auto q = run_runtime(export_int8_dynamic(folded, {{"producer", "test"}}), x);
      REQUIRE(q.sizes() == expected.sizes());
      REQUIRE((q.argmax(1) == expected.argmax(1)).sum().item<int64_t>() >= 3);
    }
  }
}

TEST_CASE("an imported MobileNet trains: every parameter gets a gradient, and a step lowers the loss") {
  GraphModule m = lower_torchscript(models_dir() + "/mobilenet_v3.traced.pt", {1, 28, 28});
  m->train();
  torch::manual_seed(5);
  const auto x = torch::randn({16, 1, 28, 28});
  const auto target = torch::randint(0, 10, {16});
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.05));
  auto loss = torch::nn::functional::cross_entropy(m->forward(x), target);
  opt.zero_grad();
  loss.backward();
  for (const auto& p : m->named_parameters()) {
    INFO(p.key());
    REQUIRE(p.value().grad().defined());
  }
  opt.step();
  const double before = loss.item<double>();
  const double after = torch::nn::functional::cross_entropy(m->forward(x), target).item<double>();
  REQUIRE(after < before);
}

TEST_CASE("channel pruning leaves grouped convolutions alone") {
  GraphModule m = lower_torchscript(models_dir() + "/mobilenet_v2.traced.pt", {1, 28, 28});
  const Graph& g = m->graph();
  const auto groups = unit_groups(g);
  REQUIRE(!groups.empty());  // the last projection and the head conv: 1x1 into 1x1
  for (const auto& u : groups) {
    const Node& producer = g.nodes()[static_cast<size_t>(u.producer)];
    const Node& consumer = g.nodes()[static_cast<size_t>(u.consumer)];
    INFO(producer.name << " -> " << consumer.name);
    REQUIRE(producer.attrs.value("groups", 1) == 1);
    REQUIRE(consumer.attrs.value("groups", 1) == 1);
  }
  // The pruner says which layers it leaves alone, and why.
  PruneSpec spec;
  spec.method = "channels";
  spec.sparsity = 0.5;
  Pruner pruner(spec, m, "/stages/0");
  const auto report = pruner.report();
  int grouped = 0;
  for (const auto& l : report["left_alone"])
    grouped += l["why"].get<std::string>().find("a grouped convolution") == 0;
  REQUIRE(grouped == grouped_convs(g));
  REQUIRE(report["left_alone"].size() + report["layers"].size() ==
          static_cast<size_t>(op_counts(g).at("Conv2d") + op_counts(g).at("Linear")));
}

TEST_CASE("unsupported pieces of a traced model are one clear line") {
  // A reshape that is not a flatten, in a module scripted from C++.
  torch::jit::Module mod("Bad");
  mod.define(R"(
def forward(self, x):
    return x.view(x.size(0), 28, 28)
)");
  const std::string dir = testing::fresh_temp_dir("import", "bad");
  mod.save(dir + "/bad.pt");
  REQUIRE_THROWS_WITH(
      lower_torchscript(dir + "/bad.pt", {1, 28, 28}),
      Catch::Contains("bad.pt: TorchScript node") && Catch::Contains("only a reshape to [batch, -1]"));
}

// Between the int8 layers lie Clip, Add, max pooling (exact) and the global pooling (float sums in another
// order), so logits may differ by a rounding step of the last layer's input, no more.
void require_runtime_computes_simulation(QuantizedModel& qm, const Session& s, const Dataset& data) {
  torch::NoGradGuard no_grad;
  const auto x = normalize_images(data.images.test_x, 0.286, 0.353);
  const auto sim = qm.forward(x);
  const auto xc = x.contiguous();
  const auto out = s.run(xc.data_ptr<float>(), x.size(0));
  const auto rt = torch::from_blob(const_cast<float*>(out.data()), sim.sizes(), torch::kFloat32);
  REQUIRE(sim.argmax(1).eq(rt.argmax(1)).to(torch::kFloat32).mean().item<double>() >= 0.99);
  REQUIRE((sim - rt).abs().max().item<double>() <= 0.02 * sim.abs().max().item<double>());
}

TEST_CASE(
    "imported ONNX models with padded max pooling and constant arithmetic quantize static, and the runtime "
    "computes "
    "the simulation") {
  const Dataset data = testing::small_fashion_mnist(256, 50, 300, 200, /*augment=*/false, 3);
  for (const char* name : {"resnet", "mobilenet_v3"}) {
    INFO(name);
    GraphModule m = import_onnx(models_dir() + "/" + name + ".onnx", {1, 28, 28});
    bool padded_pool = false;
    for (const Node& n : m->graph().nodes())
      padded_pool = padded_pool || (n.op == OpKind::kMaxPool2d && n.attrs.value("padding", 0) == 1);
    REQUIRE(padded_pool == (std::string(name) == "resnet"));
    QuantizeSpec spec;
    spec.activations = "static";
    nlohmann::json report;
    QuantizedModel qm = quantize_model(m, spec, data, report);
    auto writer = qm.export_artifact({{"producer", "test"}});
    const Session s(Artifact::from_bytes(writer.serialize(), "imported.mighty"), 1);
    require_runtime_computes_simulation(qm, s, data);
  }
}

TEST_CASE(
    "an imported MobileNetV2 quantizes with int8 depthwise convolutions, and the runtime computes the "
    "simulation") {
  GraphModule m = lower_torchscript(models_dir() + "/mobilenet_v2.traced.pt", {1, 28, 28});
  const Dataset data = testing::small_fashion_mnist(256, 50, 300, 200, /*augment=*/false, 3);
  QuantizeSpec spec;
  spec.activations = "static";
  nlohmann::json report;
  QuantizedModel qm = quantize_model(m, spec, data, report);
  int depthwise = 0;
  for (const auto& l : report["layers"]) {
    for (const auto& n : qm.fp32()->graph().nodes())
      if (n.name == l["layer"] && n.attrs.value("groups", 1) != 1) ++depthwise;
  }
  REQUIRE(depthwise == grouped_convs(m->graph()));
  // ReLU6 is the requantization clamp: expansion -> depthwise -> projection stay uint8.
  int clip_fused = 0;
  for (const auto& l : report["layers"]) clip_fused += l["output"] == "uint8 (Clip fused)";
  REQUIRE(clip_fused >= 2 * depthwise - 1);
  auto writer = qm.export_artifact({{"producer", "test"}});
  const Session s(Artifact::from_bytes(writer.serialize(), "dw.mighty"), 1);
  int runtime_depthwise = 0;
  for (const auto& n : s.graph().nodes())
    runtime_depthwise += n.attrs.value("groups", 1) != 1 && n.attrs.contains("quant");
  REQUIRE(runtime_depthwise == depthwise);
  require_runtime_computes_simulation(qm, s, data);
  // Dynamic activations keep depthwise layers in fp32 (the runtime's depthwise kernel is static only).
  spec.activations = "dynamic";
  nlohmann::json dynamic_report;
  QuantizedModel dq = quantize_model(m, spec, data, dynamic_report);
  for (const auto& n : dq.fp32()->graph().nodes()) {
    if (n.attrs.value("groups", 1) == 1) continue;
    bool excluded = false;
    for (const auto& e : dynamic_report["excluded"]) excluded = excluded || e == n.name;
    REQUIRE(excluded);
  }
}

TEST_CASE("PyTorch-exported ONNX models (opsets 13 and 17) import and compute what LibTorch computes") {
  const std::map<std::string, std::vector<std::string>> expect = {
      {"mobilenet_v2", {"Conv2d", "Clip", "Add", "GlobalAvgPool", "Flatten", "Linear"}},
      {"mobilenet_v3", {"HardSigmoid", "Mul", "Sigmoid", "MaxPool2d", "Concat", "Clip", "Flatten", "Linear"}},
      {"resnet", {"Conv2d", "ReLU", "MaxPool2d", "AvgPool2d", "Add", "GlobalAvgPool", "Linear"}},
      {"gelu_resnet", {"Conv2d", "GELU", "Add", "GlobalAvgPool", "Linear"}}};
  for (const auto& [name, ops] : expect) {
    auto module = torch::jit::load(models_dir() + "/" + name + ".traced.pt");
    module.eval();
    torch::NoGradGuard no_grad;
    torch::manual_seed(4);
    const auto x = torch::randn({3, 1, 28, 28});
    const auto expected = module.forward({x}).toTensor();
    for (const char* suffix : {".onnx", ".opset17.onnx"}) {
      const std::string path = models_dir() + "/" + name + suffix;
      INFO(path);
      GraphModule m = import_onnx(path, {1, 28, 28});
      const auto counts = op_counts(m->graph());
      for (const auto& op : ops) {
        INFO(op);
        REQUIRE(counts.count(op) == 1);
      }
      // Exporters fold BatchNorm into the convolutions; the GELU pattern and the computed flatten fold back;
      // arithmetic with a constant is a frozen per-channel affine (mobilenet_v3: the input's normalization,
      // its layer scale and shift).
      int normalizing = 0, affine = 0;
      for (const Node& n : m->graph().nodes()) {
        if (n.op != OpKind::kBatchNorm2d) continue;
        (n.attrs.value("frozen_statistics", false) ? affine : normalizing) += 1;
      }
      REQUIRE(normalizing == 0);
      REQUIRE(affine == (name == "mobilenet_v3" ? 4 : 0));
      if (name != "resnet") REQUIRE(grouped_convs(m->graph()) > 0);
      REQUIRE(torch::allclose(m->forward(x), expected, 1e-4, 1e-4));
      const auto got =
          run_runtime(onnx_io::to_artifact(onnx_io::import_file(path), {{"producer", "test"}}), x);
      REQUIRE(torch::allclose(got, expected, 1e-4, 1e-4));
    }
  }
}

TEST_CASE("an ONNX student gets its BatchNorms back for training, the same function until it trains") {
  GraphModule m = import_onnx(models_dir() + "/mobilenet_v2.onnx", {1, 28, 28});
  m->eval();
  int convs = 0;
  for (const Node& n : m->graph().nodes()) convs += n.op == OpKind::kConv2d;
  int inserted = 0;
  GraphModule with_bn = with_batchnorm_after_convs(m, &inserted);
  REQUIRE(inserted == convs);  // the exporter folded every one
  REQUIRE(op_counts(with_bn->graph()).at("BatchNorm2d") == convs);
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const auto x = torch::randn({4, 1, 28, 28});
  with_bn->eval();
  REQUIRE(torch::allclose(with_bn->forward(x), m->forward(x), 1e-5, 1e-5));
  // A zoo-style student already has them: nothing to add.
  int again = 0;
  with_batchnorm_after_convs(with_bn, &again);
  REQUIRE(again == 0);
  // Training mode normalizes with the batch's statistics, and quantize folds them away again.
  with_bn->train();
  with_bn->forward(x);
  with_bn->eval();
  GraphModule folded = fold_batchnorm(with_bn);
  REQUIRE(op_counts(folded->graph()).count("BatchNorm2d") == 0);
  REQUIRE(torch::allclose(folded->forward(x), with_bn->forward(x), 1e-4, 1e-4));
}

TEST_CASE("a broken or unsupported ONNX file is one line naming the file and what") {
  const std::string dir = testing::fresh_temp_dir("import", "onnx_bad");
  { std::ofstream(dir + "/garbage.onnx") << "this is not a protobuf"; }
  REQUIRE_THROWS_WITH(import_onnx(dir + "/garbage.onnx", {1, 28, 28}),
                      Catch::Contains("garbage.onnx: not an ONNX model"));
  REQUIRE_THROWS_WITH(import_onnx(dir + "/missing.onnx", {1, 28, 28}),
                      Catch::Contains("missing.onnx: ONNX file not found"));
  // The data shape must be the model's.
  REQUIRE_THROWS_WITH(
      import_onnx(models_dir() + "/resnet.onnx", {3, 32, 32}),
      Catch::Contains("resnet.onnx: input 'image' has shape [batch, 1, 28, 28], but the data gives "
                      "examples of shape [3, 32, 32]"));
  // A truncated file.
  const std::string whole = [&] {
    std::ifstream in(models_dir() + "/resnet.onnx", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  { std::ofstream(dir + "/cut.onnx", std::ios::binary) << whole.substr(0, whole.size() / 2); }
  REQUIRE_THROWS_WITH(import_onnx(dir + "/cut.onnx", {1, 28, 28}), Catch::Contains("cut.onnx: "));
}

TEST_CASE("recipes name the teacher and student sources they accept") {
  const std::string base = R"({"name": "t", "data": {"kind": "images", "validation_size": 10},)";
  REQUIRE_THAT(
      testing::recipe_error(base + R"("teacher": {"onx": "m.onnx"}})"),
      Catch::Contains("'model' (a zoo model, with 'train' or 'checkpoint'), 'torchscript' (a TorchScript "
                      "file), 'onnx' (an ONNX file), 'use_lite' (documents)"));
  REQUIRE_THAT(
      testing::recipe_error(base + R"("teacher": {"onnx": "m.onnx"}, "student": {"zoo": 1}})"),
      Catch::Contains("the student needs one of: 'model'") && Catch::Contains("'onnx' (an ONNX file)"));
  REQUIRE(testing::recipe_error(base + R"("teacher": {"onnx": "m.onnx"}, "student": {"onnx": "s.onnx"}})") ==
          "no error");
}

// Every model in the ONNX import fuzzer's corpus (scripts/fuzz onnx: ONNX's node tests and their mutations)
// that imports is a student too: the LibTorch module compress trains computes what the runtime computes.
TEST_CASE("every importable model of the ONNX fuzz corpus computes the same in LibTorch and the runtime") {
  const auto corpus = std::filesystem::path(MIGHTY_SOURCE_DIR) / "tests/fuzz/corpus/onnx";
  const std::string dir = testing::fresh_temp_dir("import", "onnx_corpus");
  int compared = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    onnx_io::Imported imported;
    try {
      imported = onnx_io::import_bytes(bytes, e.path().string());
    } catch (const Error&) {
      continue;  // refused: the ONNX tests check the message
    }
    const Shape& shape = imported.graph.input_shape();
    if (std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>()) > 4096) continue;
    INFO(e.path().filename().string());
    const std::string path = dir + "/model.onnx";
    std::ofstream(path, std::ios::binary) << bytes;
    GraphModule m = import_onnx(path, std::vector<int64_t>(shape.begin(), shape.end()));
    m->eval();
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    std::vector<int64_t> batch_shape = {2};
    batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
    const auto x = torch::randn(batch_shape);
    const auto expected = m->forward(x).reshape({2, -1});
    const auto got = run_runtime(onnx_io::to_artifact(imported, {{"producer", "test"}}), x);
    REQUIRE(got.sizes() == expected.sizes());
    REQUIRE(torch::allclose(got, expected, 1e-4, 1e-4, /*equal_nan=*/true));
    ++compared;
  }
  REQUIRE(compared > 50);
}
