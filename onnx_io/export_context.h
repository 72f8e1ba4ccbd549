// What an IR op's ONNX export (export_ops.cc) sees: the IR node, its inputs' ONNX values, the artifact's
// tensors, and the ONNX graph it adds nodes and initializers to; with the int8 pieces every quantized layer
// shares (weights and activations as QuantizeLinear / DequantizeLinear, int32 biases). Errors name the
// artifact and the node.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "kernels/quantize.h"
#include "runtime/format/artifact.h"
#include "runtime/format/metadata.h"
#include "runtime/graph/graph.h"

namespace mighty::onnx_io {

class ExportContext {
 public:
  // The graph's input and output values are named "input" and "output": reserved, so that no node named so in
  // the IR (any name is allowed there) makes a second value of that name.
  ExportContext(const Artifact& artifact, const Graph& graph, onnx::GraphProto& proto)
      : artifact_(artifact),
        graph_(graph),
        proto_(proto),
        values_(graph.nodes().size()),
        names_{"input", "output"} {}

  void begin(int index) { index_ = index; }
  const Node& node() const { return graph_.nodes()[static_cast<size_t>(index_)]; }
  int index() const { return index_; }
  const Graph& graph() const { return graph_; }
  const Artifact& artifact() const { return artifact_; }
  [[noreturn]] void fail(const std::string& what) const;

  // Input k's ONNX value (float) and per-example shape; the node's result.
  const std::string& in(int k = 0) const;
  const Shape& in_shape(int k = 0) const;
  void set_result(const std::string& value) { values_[static_cast<size_t>(index_)] = value; }
  const std::string& value(int node) const { return values_[static_cast<size_t>(node)]; }
  void set_value(int node, const std::string& value) { values_[static_cast<size_t>(node)] = value; }

  // A new ONNX node of this IR node whose single output is a fresh value "<node name><suffix>".
  onnx::NodeProto& add(const std::string& op_type, const std::vector<std::string>& inputs,
                       const std::string& suffix = "");
  static const std::string& output(const onnx::NodeProto& n) { return n.output(0); }
  std::string fresh(const std::string& suffix) { return unique(node().name + suffix); }  // a new value name
  static void attr(onnx::NodeProto& n, const char* name, int64_t v);
  static void attr(onnx::NodeProto& n, const char* name, const std::vector<int64_t>& v);
  static void attr(onnx::NodeProto& n, const char* name, float v);

  // Initializers, named "<node name><suffix>" (unique).
  std::string initializer(const std::string& suffix, int32_t data_type, const std::vector<int64_t>& shape,
                          const void* data, size_t bytes);
  std::string floats(const std::string& suffix, const std::vector<int64_t>& shape,
                     const std::vector<float>& v);
  std::string int64s(const std::string& suffix, const std::vector<int64_t>& v);
  // This node's tensor "<node name><suffix>" (".weight", ...), as a float initializer of its own shape or
  // `shape`.
  const TensorView& tensor(const std::string& suffix) const;
  std::string float_tensor(const std::string& suffix, const std::vector<int64_t>& shape = {});

  // The node's "quant" attribute; quantized() when it has one.
  bool quantized() const { return node().attrs.contains("quant"); }
  MetaValue quant() const;
  bool static_activation() const;
  kernels::QuantParams input_params() const;  // quant.input_scale / input_zero_point

  // `value` through QuantizeLinear and DequantizeLinear at `p` (uint8); returns the dequantized value. A
  // value already dequantized at `p` is returned as it is.
  std::string quantize_dequantize(const std::string& value, kernels::QuantParams p);
  // The node's int8 weight [out, ...] with its per-output-channel scales, dequantized (axis 0); or, for a
  // 2-D weight, transposed to [in, out] (axis 1), as MatMul reads it.
  std::string int8_weight(bool transposed = false);
  // A 2-D float tensor of this node transposed, as an initializer.
  std::string float_transposed(const std::string& suffix);
  // The node's bias in int32 at the accumulator's scale (input scale x weight scale, per channel),
  // dequantized; the same integers the runtime adds.
  std::string int32_bias(kernels::QuantParams input);

  std::set<std::string>& op_types() { return op_types_; }

 private:
  std::string unique(const std::string& name);

  const Artifact& artifact_;
  const Graph& graph_;
  onnx::GraphProto& proto_;
  int index_ = -1;
  std::vector<std::string> values_;
  std::set<std::string> names_;
  std::map<std::string, kernels::QuantParams> dequantized_;  // value -> the parameters it was dequantized at
  std::set<std::string> op_types_;
};

// One entry per IR op with an ONNX form (export_ops.cc).
struct OnnxExportDef {
  OpKind op;
  void (*write)(ExportContext& ctx);
};
const OnnxExportDef* find_export(OpKind op);
const std::vector<OnnxExportDef>& export_table();

}  // namespace mighty::onnx_io
