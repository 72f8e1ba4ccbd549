// Metadata values of the wrong type or out of range: every value the runtime reads goes through one checked
// accessor (runtime/format/metadata.h), so each such file is one mighty::Error line naming the file and the
// JSON path — never another exception type, never a silent default. The cases the fuzzer found first are
// checked by name; then every value of three models is replaced in turn by values of other types.
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/format/inspect.h"
#include "runtime/graph/graph.h"

using namespace mighty;

namespace {

struct Model {
  nlohmann::json metadata;
  std::vector<std::pair<std::string, std::vector<float>>> f32;
  std::vector<std::pair<std::string, std::vector<int8_t>>> i8;
  std::vector<std::vector<int64_t>> f32_shapes, i8_shapes;
};

// Two static int8 convs with a uint8 chain between them, then Flatten and a static int8 Linear reading the
// uint8 map: every kind of quantization parameter the runtime reads.
Model chain_model() {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {1, 4, 4}}, {"dtype", "float32"}});
  const nlohmann::json qa = {{"weight", "int8"},        {"activation", "static"}, {"input_scale", 0.02},
                             {"input_zero_point", 128}, {"output_scale", 0.05},   {"output_zero_point", 0},
                             {"output_relu", true}};
  x = g.add("a", OpKind::kConv2d, {x},
            {{"in_channels", 1}, {"out_channels", 2}, {"kernel", 3}, {"padding", 1}, {"quant", qa}});
  x = g.add("act", OpKind::kReLU, {x});
  x = g.add("flat", OpKind::kFlatten, {x});
  const nlohmann::json qb = {
      {"weight", "int8"}, {"activation", "static"}, {"input_scale", 0.05}, {"input_zero_point", 0}};
  g.add("fc", OpKind::kLinear, {x}, {{"in_features", 32}, {"out_features", 2}, {"quant", qb}});
  g.infer_shapes();
  Model m;
  m.metadata = {{"producer", "test"},
                {"producer_version", "0"},
                {"recipe_hash", "ab"},
                {"data_hash", "cd"},
                {"labels", {"no", "yes"}},
                {"graph", g.to_json()},
                {"input", {{"kind", "images"}, {"shape", {1, 4, 4}}, {"mean", 0.25}, {"std", 0.5}}}};
  m.i8 = {{"a.weight", std::vector<int8_t>(18, 3)}, {"fc.weight", std::vector<int8_t>(64, -5)}};
  m.i8_shapes = {{2, 1, 3, 3}, {2, 32}};
  m.f32 = {{"a.weight_scale", {0.01f, 0.02f}},
           {"a.bias", {0.1f, -0.2f}},
           {"fc.weight_scale", {0.03f, 0.04f}},
           {"fc.bias", {0.5f, 0.25f}}};
  m.f32_shapes = {{2}, {2}, {2}, {2}};
  return m;
}

// A character language model's input spec (kind "text").
Model text_model() {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {4}}, {"dtype", "int64"}});
  x = g.add("tok", OpKind::kEmbedding, {x}, {{"num_embeddings", 3}, {"dim", 2}});
  g.add("att", OpKind::kMultiHeadAttention, {x}, {{"d_model", 2}, {"heads", 1}, {"causal", true}});
  g.infer_shapes();
  Model m;
  m.metadata = {{"graph", g.to_json()},
                {"input", {{"kind", "text"}, {"context", 4}, {"vocab", {97, 98, 99}}}}};
  for (const auto& spec : g.all_tensors()) {
    m.f32.emplace_back(spec.name, std::vector<float>(static_cast<size_t>(spec.numel()), 0.5f));
    m.f32_shapes.push_back(spec.shape);
  }
  return m;
}

std::string serialize(const Model& m, const nlohmann::json& metadata) {
  ArtifactWriter w;
  w.set_metadata(metadata);
  for (size_t i = 0; i < m.f32.size(); ++i)
    w.add_tensor(m.f32[i].first, TensorType::kFloat32, m.f32_shapes[i], m.f32[i].second.data());
  for (size_t i = 0; i < m.i8.size(); ++i)
    w.add_tensor(m.i8[i].first, TensorType::kInt8, m.i8_shapes[i], m.i8[i].second.data());
  return w.serialize();
}

// Everything a reader does with a file: open, inspect, build the session.
void open_everything(const std::string& bytes) {
  const Artifact a = Artifact::from_bytes(bytes, "m.mighty");
  describe_artifact(a);
  Session s(Artifact::from_bytes(bytes, "m.mighty"));
  if (s.has_input_spec()) s.input_spec();
}

std::string error_of(const Model& m, const std::string& pointer, const nlohmann::json& value) {
  nlohmann::json meta = m.metadata;
  meta[nlohmann::json::json_pointer(pointer)] = value;
  try {
    open_everything(serialize(m, meta));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every leaf's JSON pointer.
void leaves(const nlohmann::json& j, const std::string& at, std::vector<std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items()) leaves(v, at + "/" + k, out);
  } else if (j.is_array() && !j.empty()) {
    for (size_t i = 0; i < j.size(); ++i) leaves(j[i], at + "/" + std::to_string(i), out);
  } else {
    out.push_back(at);
  }
}

}  // namespace

TEST_CASE("metadata: values of the wrong type name the file and the JSON path") {
  const Model m = chain_model();
  REQUIRE_NOTHROW(open_everything(serialize(m, m.metadata)));
  // What was read survives moves (the session owns its artifact).
  const Session s(Artifact::from_bytes(serialize(m, m.metadata), "m.mighty"));
  REQUIRE(s.artifact().labels() == std::vector<std::string>{"no", "yes"});
  REQUIRE(s.input_spec().mean == 0.25f);
  using Case = std::tuple<std::string, nlohmann::json, std::string>;
  for (const auto& [pointer, value, expected] : std::vector<Case>{
           {"/input/kind", 5, "m.mighty: metadata /input/kind: expected a string, found 5"},
           {"/graph/nodes/1/attrs/quant/weight", 5,
            "m.mighty: metadata /graph/nodes/1/attrs/quant/weight: expected a string, found 5"},
           {"/graph/nodes/0/attrs/dtype", 5,
            "m.mighty: graph node 0 ('input', Input): attribute 'dtype' must be \"float32\" or \"int64\", "
            "found 5"},
           {"/data_hash", 5, "m.mighty: metadata /data_hash: expected a string, found 5"},
           {"/input/mean", 1e300, "m.mighty: metadata /input/mean: expected a finite number"},
           {"/input/std", 0, "m.mighty: metadata /input/std: expected a finite number"},
           {"/labels/1", false, "m.mighty: metadata /labels/1: expected a string, found false"},
           {"/graph/nodes/1/attrs/quant/input_scale", "0.02",
            "metadata /graph/nodes/1/attrs/quant/input_scale"},
           {"/graph/nodes/1/attrs/quant/output_zero_point", 256,
            "metadata /graph/nodes/1/attrs/quant/output_zero_point: expected an integer in [0, 255], found "
            "256"},
           {"/graph/nodes/1/attrs/quant/output_relu", 1, "metadata /graph/nodes/1/attrs/quant/output_relu"},
       }) {
    INFO(pointer);
    const std::string message = error_of(m, pointer, value);
    REQUIRE_THAT(message, Catch::Contains(expected));
    REQUIRE(message.find('\n') == std::string::npos);
  }
}

TEST_CASE("metadata: every value replaced by values of other types is loaded or one mighty::Error") {
  const std::vector<nlohmann::json> replacements = {nullptr,
                                                    true,
                                                    -1,
                                                    0,
                                                    7,
                                                    1e300,
                                                    -1e300,
                                                    0.5,
                                                    "x",
                                                    nlohmann::json::array(),
                                                    nlohmann::json::object(),
                                                    nlohmann::json::array({1, "a"}),
                                                    nlohmann::json::object({{"k", 1}}),
                                                    uint64_t{18446744073709551615u}};
  size_t tried = 0, rejected = 0;
  for (const Model& m : {chain_model(), text_model()}) {
    std::vector<std::string> pointers;
    leaves(m.metadata, "", pointers);
    for (const auto& pointer : pointers) {
      for (const auto& value : replacements) {
        INFO(pointer << " = " << value.dump());
        nlohmann::json meta = m.metadata;
        meta[nlohmann::json::json_pointer(pointer)] = value;
        ++tried;
        try {
          open_everything(serialize(m, meta));
        } catch (const Error& e) {
          ++rejected;
          REQUIRE(std::string(e.what()).find('\n') == std::string::npos);
        }
        // Any other exception type escapes here and fails the test.
      }
    }
  }
  INFO(tried << " files, " << rejected << " rejected");
  REQUIRE(rejected > tried / 2);
}
