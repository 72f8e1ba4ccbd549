// ONNX import against files a user or an attacker may hand it: the import fuzzer's corpus (scripts/fuzz onnx)
// replayed through the fuzzer's own check, and the findings it made, each kept as a small model built here.
// Every input either imports, loads and runs, or is one mighty::Error line naming the file and the node.
#include <catch2/catch.hpp>

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "../fuzz/onnx_one.h"
#include "../fuzz/replay.h"
#include "onnx_io/import.h"
#include "runtime/error.h"

using namespace mighty;

namespace {

void add_dims(onnx::ValueInfoProto* v, const std::vector<int64_t>& dims) {
  v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = v->mutable_type()->mutable_tensor_type()->mutable_shape();
  for (int64_t d : dims) {
    if (d < 0)
      shape->add_dim()->set_dim_param("batch");
    else
      shape->add_dim()->set_dim_value(d);
  }
}

// x -> OP(x, k) -> y as node `node`: one operation on the data input and a constant k (the initializer `t`,
// whose name is set here).
std::string one_op_model(const char* op, const char* node, const std::vector<int64_t>& in,
                         const std::vector<int64_t>& out, onnx::TensorProto t) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name(node);
  add_dims(g->add_input(), in);
  g->mutable_input(0)->set_name("x");
  add_dims(g->add_output(), out);
  g->mutable_output(0)->set_name("y");
  t.set_name("k");
  *g->add_initializer() = std::move(t);
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(node);
  n->add_input("x");
  n->add_input("k");
  n->add_output("y");
  return m.SerializeAsString();
}

// x [batch, 2, 3, 4] -> Reshape(x, shape) -> y, with the shape an initializer: int64 values, or float ones.
std::string reshape_model(const std::vector<int64_t>& ints, const std::vector<float>& floats = {}) {
  onnx::TensorProto t;
  t.set_data_type(floats.empty() ? onnx::TensorProto::INT64 : onnx::TensorProto::FLOAT);
  t.add_dims(static_cast<int64_t>(floats.empty() ? ints.size() : floats.size()));
  for (int64_t v : ints) t.add_int64_data(v);
  for (float v : floats) t.add_float_data(v);
  return one_op_model("Reshape", "flatten", {-1, 2, 3, 4}, {-1, 24}, t);
}

}  // namespace

TEST_CASE("the ONNX import fuzzer's corpus replays: each file imported and run, or one error") {
  REQUIRE(fuzz::replay_corpus("onnx", [](const std::string& bytes) {
            return fuzz::onnx_one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
          }) > 100);
}

TEST_CASE("ONNX import: shape constants are read as exact integers") {
  // [batch, -1] and [0, 24] flatten; int64 values are not rounded through float.
  REQUIRE(onnx_io::import_bytes(reshape_model({0, -1}), "m.onnx").graph.output_shape() == Shape{24});
  REQUIRE(onnx_io::import_bytes(reshape_model({0, 24}), "m.onnx").graph.output_shape() == Shape{24});
  // 2^24 + 1 has no float of its own (it would read as 2^24); the message shows the value as written.
  REQUIRE_THROWS_WITH(
      onnx_io::import_bytes(reshape_model({0, 16777217}), "m.onnx"),
      Catch::Contains(
          "m.onnx: ONNX node 0 ('flatten', Reshape): only a reshape to [batch, -1] (a flatten) is "
          "supported; shape [0, 16777217]"));
  // A value past what float -> int64 can hold was undefined behaviour (found by scripts/fuzz onnx).
  REQUIRE_THROWS_WITH(
      onnx_io::import_bytes(reshape_model({0, std::numeric_limits<int64_t>::max()}), "m.onnx"),
      Catch::Contains("shape [0, 9223372036854775807]"));
  // A float constant as a shape must hold whole numbers.
  REQUIRE(onnx_io::import_bytes(reshape_model({}, {0, -1}), "m.onnx").graph.output_shape() == Shape{24});
  REQUIRE_THROWS_WITH(
      onnx_io::import_bytes(reshape_model({}, {0, 2.5}), "m.onnx"),
      Catch::Contains("m.onnx: ONNX node 0 ('flatten', Reshape): input 1 holds 2.5, where an integer "
                      "is needed"));
  REQUIRE_THROWS_WITH(onnx_io::import_bytes(reshape_model({}, {0, 1e30}), "m.onnx"),
                      Catch::Contains("input 1 holds 1e+30, where an integer is needed"));
}

TEST_CASE("ONNX import: a tensor's values are counted before its dims are believed") {
  // A few bytes of dims claiming 2^40 floats with no data behind them (found by scripts/fuzz onnx as a 4 GB
  // allocation): one line, nothing allocated.
  onnx::ModelProto m;
  REQUIRE(m.ParseFromString(reshape_model({0, -1})));
  auto* huge = m.mutable_graph()->add_initializer();
  huge->set_name("huge");
  huge->set_data_type(onnx::TensorProto::FLOAT);
  huge->add_dims(int64_t{1} << 20);
  huge->add_dims(int64_t{1} << 20);
  huge->add_float_data(1.0f);
  REQUIRE_THROWS_WITH(onnx_io::import_bytes(m.SerializeAsString(), "m.onnx"),
                      Catch::Equals("m.onnx: initializer 'huge': 1 values for shape [1048576, 1048576] "
                                    "(1099511627776 expected)"));
  huge->clear_float_data();
  huge->set_raw_data(std::string(16, '\0'));
  REQUIRE_THROWS_WITH(
      onnx_io::import_bytes(m.SerializeAsString(), "m.onnx"),
      Catch::Equals("m.onnx: initializer 'huge': 16 raw bytes for 1099511627776 values of 4 bytes"));
}

TEST_CASE("ONNX import: dividing by a constant without a finite reciprocal is one line") {
  // Found by the differential test over the fuzz corpus: x / 1e-45 became a scale of inf, which the runtime
  // computed as infinities and LibTorch's BatchNorm as NaN.
  auto div_model = [](float k) {
    onnx::TensorProto t;
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_float_data(k);
    return one_op_model("Div", "scale", {-1, 4, 1, 5}, {-1, 4, 1, 5}, t);
  };
  REQUIRE(onnx_io::import_bytes(div_model(4.0f), "m.onnx").graph.output_shape() == Shape{4, 1, 5});
  REQUIRE_THROWS_WITH(
      onnx_io::import_bytes(div_model(0.0f), "m.onnx"),
      Catch::Equals("m.onnx: ONNX node 0 ('scale', Div): dividing by 0 has no finite reciprocal in "
                    "float"));
  REQUIRE_THROWS_WITH(onnx_io::import_bytes(div_model(1e-45f), "m.onnx"),
                      Catch::Contains("dividing by 1e-45 has no finite reciprocal in float"));
}
