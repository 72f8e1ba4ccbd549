// ONNX out: a .mighty artifact written as an ONNX model (opset 17) that ONNX Runtime, OpenVINO or TensorRT
// load. An fp32 artifact becomes plain ONNX ops; an int8 one becomes the QDQ form with exactly the artifact's
// numbers: QuantizeLinear / DequantizeLinear at every static activation's scale and zero point (uint8),
// int8 weights with their per-output-channel scales (axis 0), biases in int32 at the accumulator's scale
// where the layer requantizes, and a uint8 chain (conv -> ReLU / Clip -> MaxPool -> Flatten -> next layer)
// kept as Q/DQ pairs around each of its nodes, so an engine that fuses QDQ runs the same integer computation
// mighty does. A Linear with dynamic (per-row) activations is the runtime's row quantization in ONNX ops and
// MatMulInteger (export_ops.cc). Layers mighty runs in fp32 are plain ops.
//
// The ONNX graph's input is the IR's Input node: normalized floats (images NCHW) or int64 token ids [batch,
// length]; the normalization (mean, std) and any tokenizer stay outside the model, recorded in its
// metadata_props ("mighty.input").
//
// Every written model passes ONNX's checker and its strict shape inference, whose output shape must be the
// IR's. An op or a quantization mode without an ONNX form here is one error naming the node.
#pragma once

#include <string>
#include <vector>

#include "runtime/format/artifact.h"

namespace mighty::onnx_io {

struct OnnxExport {
  std::string bytes;                    // the serialized ModelProto
  bool quantized = false;               // the artifact had int8 layers (QDQ form)
  std::vector<std::string> int8_nodes;  // the IR nodes written as int8 (QDQ) layers, in graph order
  std::vector<std::string> op_types;    // the ONNX op types used, sorted, unique
};

// The artifact's graph and tensors as an ONNX model; throws mighty::Error naming the artifact and node.
OnnxExport export_onnx(const Artifact& artifact);

// export_onnx written atomically to `path`.
OnnxExport write_onnx(const Artifact& artifact, const std::string& path);

// The op types of a serialized ONNX model's graph in node order, "domain:type" outside the default domain
// (e.g. "com.microsoft:QLinearConv" in a model ONNX Runtime optimized); an Error when it does not parse.
std::vector<std::string> model_op_types(const std::string& bytes, const std::string& name);

// The IR ops that have an ONNX form, for messages.
std::vector<std::string> exportable_ops();

}  // namespace mighty::onnx_io
