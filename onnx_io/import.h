// ONNX in: a model file (protobuf, ONNX's own schema through Debian's libonnx) lowered to mighty's graph IR
// with its weights, for the runtime (fp32) and for compress (a GraphModule to distill, prune and quantize).
// Checked like any input: ONNX's checker, then every node's op, attributes and constants against what the
// IR can express; anything else is one error line naming the file, the node and why.
//
// Supported: opsets 11-17 of the default domain; one float input [batch, ...] (NCHW for images) and one
// output; initializers and Constant nodes; the op types of onnx_ops_supported(), and patterns exporters emit
// folded back into IR ops (Erf-based GELU, MatMul + Add as Linear, Gemm with transB / alpha / beta,
// ReduceMean over H and W as global pooling, Clip as ReLU6, Reshape to [batch, -1] as Flatten).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

namespace mighty::onnx_io {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // float32 (int64 constants are converted; they only carry shapes and axes)
  // An integer tensor's exact values (int32, int64, a Constant's value_int[s]), which shape computations
  // read: float holds integers exactly only up to 2^24. Empty for floating-point tensors.
  std::vector<int64_t> ints;
};

struct Imported {
  Graph graph;                            // shapes inferred; node 0 is the Input
  std::map<std::string, Tensor> tensors;  // every tensor the graph names (op_def tensors)
  std::string producer;                   // producer_name producer_version
  int64_t opset = 0;
  std::string input_name, output_name;  // the ONNX graph's
};

struct ImportOptions {
  // Graph inputs other than the data input bound to constants (ONNX's backend node tests feed weights as
  // inputs); without them every graph input but the first must be an initializer.
  std::map<std::string, Tensor> constant_inputs;
  // One example's input shape; when given, the model's declared shape (past the batch) must agree.
  std::vector<int64_t> input_shape;
};

Imported import_file(const std::string& path, const ImportOptions& options = {});
Imported import_bytes(const std::string& bytes, const std::string& name, const ImportOptions& options = {});

// A serialized TensorProto (the backend tests' input_N.pb / output_N.pb).
Tensor read_tensor_file(const std::string& path);

// The ONNX op types the importer maps, for messages and the conformance table.
const std::vector<std::string>& supported_ops();

// The imported model as an fp32 artifact (the graph and every tensor), with `metadata` merged in.
ArtifactWriter to_artifact(const Imported& model, const nlohmann::json& metadata);

}  // namespace mighty::onnx_io
