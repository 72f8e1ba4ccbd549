// mighty-onnx: a .mighty artifact as an ONNX model (onnx_io/export.h), outside the deployable runtime (it
// links protobuf and ONNX's checker).
//   mighty-onnx export MODEL.mighty OUT.onnx
#include <cstdio>
#include <exception>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include "onnx_io/export.h"
#include "runtime/format/artifact.h"

int main(int argc, char** argv) {
  CLI::App app{"mighty-onnx: write a .mighty artifact as an ONNX model (QDQ int8 or fp32)"};
  app.require_subcommand(1);
  std::string model, out;
  auto* exp = app.add_subcommand("export", "Write MODEL as ONNX (opset 17), checked by ONNX's checker");
  exp->add_option("model", model, "The .mighty artifact")->required();
  exp->add_option("out", out, "The .onnx file to write (atomically)")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    const mighty::Artifact artifact = mighty::Artifact::open(model);
    const mighty::onnx_io::OnnxExport e = mighty::onnx_io::write_onnx(artifact, out);
    fmt::print("{}: {} bytes, {}; ONNX ops: {}\n", out, e.bytes.size(),
               e.quantized ? fmt::format("QDQ int8 ({} int8 layers)", e.int8_nodes.size()) : "fp32",
               fmt::join(e.op_types, ", "));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "mighty-onnx: error: {}\n", e.what());
    return 1;
  }
}
