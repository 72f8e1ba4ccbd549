// ONNX export (onnx_io/export.h) without LibTorch or ONNX Runtime: fp32 graphs with every exported op
// written, checked (the exporter runs ONNX's checker and strict shape inference), read back by mighty's own
// ONNX importer and run: the same outputs as the artifact they came from (only the summation order may
// differ). int8 artifacts: the QDQ structure (scales and zero points exactly the artifact's, int8 weights,
// int32 biases of requantizing layers, Q/DQ pairs along a uint8 chain). Ops without an ONNX form: one error
// naming the node. ONNX Runtime's view of the same files: tests/onnx/ort (scripts/ort-check).
#include <catch2/catch.hpp>

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "int8_models.h"
#include "onnx_io/export.h"
#include "onnx_io/import.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

using namespace mighty;
using mighty::test::int8_cnn_artifact;

namespace {

// The bytes of an fp32 artifact of `g` with random tensors (variances positive).
std::string fp32_artifact(Graph g, uint32_t seed) {
  g.infer_shapes();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), pos(0.5f, 1.5f);
  ArtifactWriter w;
  nlohmann::json meta = {{"graph", g.to_json()}};
  if (g.input_shape().size() == 3)
    meta["input"] = {{"kind", "images"}, {"shape", g.input_shape()}, {"mean", 0.5}, {"std", 0.25}};
  w.set_metadata(meta);
  for (const auto& spec : g.all_tensors()) {
    std::vector<float> v(static_cast<size_t>(spec.numel()));
    const bool variance = spec.name.find("running_var") != std::string::npos;
    for (float& x : v) x = variance ? pos(rng) : u(rng);
    w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, v.data());
  }
  return w.serialize();
}

std::vector<float> random_input(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Exports the artifact, imports the ONNX model back and runs both on a batch: the outputs must agree.
onnx_io::OnnxExport require_round_trip(const std::string& bytes, int64_t batch) {
  const Artifact artifact = Artifact::from_bytes(bytes, "fp32.mighty");
  onnx_io::OnnxExport e = onnx_io::export_onnx(artifact);
  REQUIRE_FALSE(e.quantized);
  const onnx_io::Imported back = onnx_io::import_bytes(e.bytes, "exported.onnx");
  const Session original(Artifact::from_bytes(bytes, "fp32.mighty"));
  const Session imported(Artifact::from_bytes(onnx_io::to_artifact(back, {}).serialize(), "back.mighty"));
  int64_t per_example = 1;
  for (int64_t d : original.graph().input_shape()) per_example *= d;
  const std::vector<float> x = random_input(static_cast<size_t>(batch * per_example), 7);
  const std::vector<float> want = original.run(x.data(), batch), got = imported.run(x.data(), batch);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("output element " << i);
    REQUIRE(got[i] == Approx(want[i]).epsilon(1e-4).margin(1e-5));
  }
  return e;
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  REQUIRE(m.ParseFromString(bytes));
  return m;
}

const onnx::TensorProto& initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return t;
  FAIL("no initializer " << name);
  throw;
}

template <class T>
T scalar(const onnx::TensorProto& t) {
  T v{};
  REQUIRE(t.raw_data().size() == sizeof(T));
  std::memcpy(&v, t.raw_data().data(), sizeof(T));
  return v;
}

}  // namespace

TEST_CASE("fp32 export: a MobileNet- and ResNet-style graph round-trips through ONNX") {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {3, 8, 8}}, {"dtype", "float32"}});
  x = g.add("stem", OpKind::kConv2d, {x},
            {{"in_channels", 3}, {"out_channels", 8}, {"kernel", 3}, {"stride", 1}, {"padding", 1}});
  x = g.add("stem_bn", OpKind::kBatchNorm2d, {x}, {{"channels", 8}});
  x = g.add("stem_act", OpKind::kReLU, {x});
  const int pooled = g.add("pool", OpKind::kMaxPool2d, {x}, {{"kernel", 2}, {"stride", 2}});
  int y = g.add("dw", OpKind::kConv2d, {pooled},
                {{"in_channels", 8}, {"out_channels", 8}, {"kernel", 3}, {"padding", 1}, {"groups", 8}});
  y = g.add("dw_act", OpKind::kClip, {y}, {{"min", 0.0}, {"max", 6.0}});
  y = g.add("pw", OpKind::kConv2d, {y}, {{"in_channels", 8}, {"out_channels", 8}, {"kernel", 1}});
  int gate = g.add("se_pool", OpKind::kGlobalAvgPool, {y}, {{"keepdim", true}});
  gate = g.add("se_act", OpKind::kHardSigmoid, {gate});
  y = g.add("se", OpKind::kMul, {y, gate});
  y = g.add("res", OpKind::kAdd, {y, pooled});
  y = g.add("hs", OpKind::kHardSwish, {y});
  int z = g.add("avg", OpKind::kAvgPool2d, {pooled},
                {{"kernel", 3}, {"stride", 1}, {"padding", 1}, {"count_include_pad", false}});
  z = g.add("silu", OpKind::kSiLU, {z});
  y = g.add("cat", OpKind::kConcat, {y, z}, {{"axis", 0}});
  y = g.add("gap", OpKind::kGlobalAvgPool, {y});
  y = g.add("fc", OpKind::kLinear, {y}, {{"in_features", 16}, {"out_features", 12}});
  y = g.add("fc_act", OpKind::kGELU, {y});
  y = g.add("sig", OpKind::kSigmoid, {y});
  y = g.add("out", OpKind::kLinear, {y}, {{"in_features", 12}, {"out_features", 5}, {"bias", false}});
  g.add("prob", OpKind::kSoftmax, {y});
  g.set_output(static_cast<int>(g.nodes().size()) - 1);
  const onnx_io::OnnxExport e = require_round_trip(fp32_artifact(g, 3), 3);
  for (const char* op : {"Conv", "BatchNormalization", "Clip", "HardSigmoid", "HardSwish", "AveragePool",
                         "Concat", "Erf", "Gemm", "Softmax", "GlobalAveragePool"})
    REQUIRE(std::count(e.op_types.begin(), e.op_types.end(), op) == 1);
  // The input's normalization travels in the metadata; the graph's input is the normalized tensor.
  const onnx::ModelProto m = parse(e.bytes);
  REQUIRE(m.opset_import(0).version() == 17);
  REQUIRE(m.graph().input(0).name() == "input");
  REQUIRE(m.graph().output(0).name() == "output");
  bool has_input_spec = false;
  for (const auto& p : m.metadata_props()) has_input_spec |= p.key() == "mighty.input";
  REQUIRE(has_input_spec);
}

TEST_CASE("fp32 export: a token MLP with LayerNorm over [T, d] round-trips (MatMul over the last axis)") {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {4, 6}}, {"dtype", "float32"}});
  x = g.add("ln", OpKind::kLayerNorm, {x}, {{"dim", 6}});
  x = g.add("proj", OpKind::kLinear, {x}, {{"in_features", 6}, {"out_features", 8}});
  x = g.add("act", OpKind::kGELU, {x});
  x = g.add("flat", OpKind::kFlatten, {x});
  x = g.add("head", OpKind::kLinear, {x}, {{"in_features", 32}, {"out_features", 3}});
  g.set_output(x);
  const onnx_io::OnnxExport e = require_round_trip(fp32_artifact(g, 4), 2);
  REQUIRE(std::count(e.op_types.begin(), e.op_types.end(), "LayerNormalization") == 1);
  REQUIRE(std::count(e.op_types.begin(), e.op_types.end(), "MatMul") == 1);
}

TEST_CASE("fp32 export: IR nodes named like the graph's own input and output values") {
  // The graph's values "input" and "output" are the exporter's; a node of either name (found by the ONNX
  // import fuzzer's round trip: an ONNX node named "output") made a second value of that name, which ONNX's
  // checker refuses (SSA).
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {5}}});
  x = g.add("output", OpKind::kLinear, {x}, {{"in_features", 5}, {"out_features", 4}});
  x = g.add("input_1", OpKind::kReLU, {x});
  x = g.add("output_1", OpKind::kLinear, {x}, {{"in_features", 4}, {"out_features", 3}});
  g.set_output(x);
  require_round_trip(fp32_artifact(g, 5), 3);
}

TEST_CASE("int8 export: QDQ with the artifact's own scales, zero points, weights and int32 biases") {
  const std::string bytes = int8_cnn_artifact();
  const Artifact artifact = Artifact::from_bytes(bytes, "int8.mighty");
  REQUIRE_NOTHROW(Session(Artifact::from_bytes(bytes, "int8.mighty")));  // a valid int8 artifact
  const onnx_io::OnnxExport e = onnx_io::export_onnx(artifact);
  REQUIRE(e.quantized);
  REQUIRE(e.int8_nodes == std::vector<std::string>{"c1", "c2", "fc", "out"});
  const onnx::ModelProto m = parse(e.bytes);
  // Every QuantizeLinear: its scale and zero point, keyed by the value it quantizes.
  std::map<std::string, std::pair<float, int>> q;
  std::vector<std::string> order;
  for (const auto& n : m.graph().node()) {
    order.push_back(n.op_type());
    if (n.op_type() != "QuantizeLinear") continue;
    q[n.input(0)] = {scalar<float>(initializer(m, n.input(1))), scalar<uint8_t>(initializer(m, n.input(2)))};
  }
  REQUIRE(q.at("input") == std::pair<float, int>{0.02f, 100});  // c1's input
  REQUIRE(q.at("c1_act") == std::pair<float, int>{0.05f, 0});   // after the ReLU, not between conv and ReLU
  REQUIRE(q.count("c1") == 0);
  REQUIRE(q.at("c1_pool") == std::pair<float, int>{0.05f, 0});  // c2 reads the chain's pair, no second one
  // Clip(0, 6) changes values on c2's output range [0, 7.65]: an engine cannot drop it, so c2 gets a pair of
  // its own (conv -> Q fuses into an integer conv) and the Clip runs between a DequantizeLinear and the
  // chain's pair.
  REQUIRE(q.at("c2") == std::pair<float, int>{0.03f, 0});
  REQUIRE(q.at("c2_act") == std::pair<float, int>{0.03f, 0});
  REQUIRE(q.at("flat") == std::pair<float, int>{0.03f, 0});
  REQUIRE(q.at("fc_act") == std::pair<float, int>{0.1f, 7});  // a float value into a static layer
  REQUIRE(q.size() == 7);
  // Weights: the artifact's int8 values and per-channel scales, axis 0.
  const onnx::TensorProto& w = initializer(m, "c2.weight_int8");
  REQUIRE(w.data_type() == onnx::TensorProto::INT8);
  const TensorView& want = artifact.tensor("c2.weight");
  REQUIRE(w.raw_data() == std::string(static_cast<const char*>(want.data), want.bytes));
  const onnx::TensorProto& ws = initializer(m, "c2.weight_scale");
  REQUIRE(ws.raw_data() ==
          std::string(static_cast<const char*>(artifact.tensor("c2.weight_scale").data), 12));
  // The requantizing convs' biases in int32 at input scale x weight scale; the float-output Linear adds
  // its float bias after the Gemm.
  const onnx::TensorProto& b = initializer(m, "c1.bias_int32");
  REQUIRE(b.data_type() == onnx::TensorProto::INT32);
  for (int c = 0; c < 4; ++c) {
    int32_t got = 0;
    std::memcpy(&got, b.raw_data().data() + 4 * c, 4);
    const double acc = 0.02f * static_cast<double>(artifact.tensor("c1.weight_scale").as<float>()[c]);
    REQUIRE(got == static_cast<int32_t>(std::nearbyint(artifact.tensor("c1.bias").as<float>()[c] / acc)));
  }
  REQUIRE(std::count(order.begin(), order.end(), "Gemm") == 2);
  REQUIRE(std::count(order.begin(), order.end(), "Conv") == 2);
}

TEST_CASE("ONNX export refuses what has no ONNX form, naming the node") {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {1, 4, 4}}, {"dtype", "float32"}});
  x = g.add("conv", OpKind::kConv2d, {x},
            {{"in_channels", 1},
             {"out_channels", 2},
             {"kernel", 3},
             {"quant", {{"weight", "int8"}, {"activation", "dynamic"}}}});
  g.set_output(x);
  g.infer_shapes();
  ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()}});
  const std::vector<int8_t> q(18, 1);
  const std::vector<float> s(2, 0.01f), b(2, 0.0f);
  w.add_tensor("conv.weight", TensorType::kInt8, {2, 1, 3, 3}, q.data());
  w.add_tensor("conv.weight_scale", TensorType::kFloat32, {2}, s.data());
  w.add_tensor("conv.bias", TensorType::kFloat32, {2}, b.data());
  const Artifact a = Artifact::from_bytes(w.serialize(), "dyn.mighty");
  REQUIRE_THROWS_WITH(onnx_io::export_onnx(a),
                      Catch::Contains("dyn.mighty: ONNX export of graph node 1 ('conv', Conv2d)") &&
                          Catch::Contains("dynamic"));
}
