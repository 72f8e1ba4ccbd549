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
#include <vector>

#include "../fuzz/onnx_one.h"
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

// x [batch, 2, 3, 4] -> Reshape(x, shape) -> y, with `shape` an initializer of the given type and values.
std::string reshape_model(onnx::TensorProto::DataType type, const std::vector<double>& shape) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("reshape");
  add_dims(g->add_input(), {-1, 2, 3, 4});
  g->mutable_input(0)->set_name("x");
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* t = g->add_initializer();
  t->set_name("shape");
  t->set_data_type(type);
  t->add_dims(static_cast<int64_t>(shape.size()));
  for (double v : shape) {
    if (type == onnx::TensorProto::INT64)
      t->add_int64_data(static_cast<int64_t>(v));
    else
      t->add_float_data(static_cast<float>(v));
  }
  auto* n = g->add_node();
  n->set_op_type("Reshape");
  n->set_name("flatten");
  n->add_input("x");
  n->add_input("shape");
  n->add_output("y");
  return m.SerializeAsString();
}

}  // namespace

TEST_CASE("the ONNX import fuzzer's corpus replays: each file imported and run, or one error") {
  const auto corpus = std::filesystem::path(MIGHTY_SOURCE_DIR) / "tests/fuzz/corpus/onnx";
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(e.path().filename().string());
    CHECK(fuzz::onnx_one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == "");
    ++files;
  }
  REQUIRE(files > 100);
}

TEST_CASE("ONNX import: shape constants are read as exact integers") {
  // [batch, -1] and [0, 24] flatten; int64 values are not rounded through float.
  REQUIRE(onnx_io::import_bytes(reshape_model(onnx::TensorProto::INT64, {0, -1}), "m.onnx").graph.output_shape() ==
          Shape{24});
  REQUIRE(onnx_io::import_bytes(reshape_model(onnx::TensorProto::INT64, {0, 24}), "m.onnx").graph.output_shape() ==
          Shape{24});
  // 2^24 + 1 has no float of its own (it would read as 2^24); the message shows the value as written.
  REQUIRE_THROWS_WITH(
      onnx_io::import_bytes(reshape_model(onnx::TensorProto::INT64, {0, 16777217}), "m.onnx"),
      Catch::Contains("m.onnx: ONNX node 0 ('flatten', Reshape): only a reshape to [batch, -1] (a flatten) is "
                      "supported; shape [0, 16777217]"));
  // A value past what float -> int64 can hold was undefined behaviour (found by scripts/fuzz onnx).
  REQUIRE_THROWS_WITH(onnx_io::import_bytes(reshape_model(onnx::TensorProto::INT64,
                                                          {0, static_cast<double>(std::numeric_limits<int64_t>::max())}),
                                            "m.onnx"),
                      Catch::Contains("shape [0, 9223372036854775807]"));
  // A float constant as a shape must hold whole numbers.
  REQUIRE(onnx_io::import_bytes(reshape_model(onnx::TensorProto::FLOAT, {0, -1}), "m.onnx").graph.output_shape() ==
          Shape{24});
  REQUIRE_THROWS_WITH(onnx_io::import_bytes(reshape_model(onnx::TensorProto::FLOAT, {0, 2.5}), "m.onnx"),
                      Catch::Contains("m.onnx: ONNX node 0 ('flatten', Reshape): input 1 holds 2.5, where an integer "
                                      "is needed"));
  REQUIRE_THROWS_WITH(onnx_io::import_bytes(reshape_model(onnx::TensorProto::FLOAT, {0, 1e30}), "m.onnx"),
                      Catch::Contains("input 1 holds 1e+30, where an integer is needed"));
}
