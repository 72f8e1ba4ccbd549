// Writes seed models for the ONNX import fuzzer (arguments: ONNX's backend node-test directory, output
// directory): every node test whose ops the importer claims, as a model file the importer takes alone, i.e.
// with the operands the test feeds as graph inputs after the first bound as initializers (the conformance run
// binds them the same way through ImportOptions). Mutations of these reach every op's attribute and operand
// checks.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_io/import.h"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_onnx_seeds NODE_TEST_DIR OUT_DIR\n");
    return 2;
  }
  const auto& ops = mighty::onnx_io::supported_ops();
  const std::set<std::string> supported(ops.begin(), ops.end());
  int written = 0;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(argv[1])) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    onnx::ModelProto m;
    if (!m.ParseFromString(slurp(dir / "model.onnx"))) continue;
    bool claimed = m.graph().node_size() > 0;
    for (const auto& n : m.graph().node()) claimed = claimed && supported.count(n.op_type()) > 0;
    if (!claimed) continue;
    // The first data set's inputs after the first become initializers under their graph input's name.
    for (int k = 1; k < m.graph().input_size(); ++k) {
      onnx::TensorProto t;
      if (!t.ParseFromString(slurp(dir / "test_data_set_0" / ("input_" + std::to_string(k) + ".pb")))) break;
      t.set_name(m.graph().input(k).name());
      *m.mutable_graph()->add_initializer() = t;
    }
    std::ofstream(fs::path(argv[2]) / ("seed-" + dir.filename().string()), std::ios::binary)
        << m.SerializeAsString();
    ++written;
  }
  std::printf("make_onnx_seeds: %d models\n", written);
  return written > 0 ? 0 : 1;
}
