// Lowering a TorchScript model to mighty's graph IR: the module is frozen (weights become constants), its
// forward graph is walked node by node, and each op is mapped to an IR op with its weights copied by name, so
// the result is a GraphModule like any zoo model (trainable, quantizable, exportable). An op outside the IR
// is an error naming the op and the node.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/models/zoo.h"

namespace mighty::compress {

// `input_shape` is one example's shape ([C, H, W] or [D]); the lowered module is checked against the
// TorchScript module on a random batch before it is returned.
GraphModule lower_torchscript(const std::string& path, const std::vector<int64_t>& input_shape);

// An ONNX model imported to the graph IR (onnx_io/import.h) as a GraphModule with its weights. `input_shape`:
// one example's shape, checked against the model's declaration; empty: the model's own.
GraphModule import_onnx(const std::string& path, const std::vector<int64_t>& input_shape);

// `model` with a BatchNorm2d "<conv>_bn" after every Conv2d whose only user is not one already, initialized
// to the identity (weight 1, bias 0, mean 0, variance 1 - eps): the same function in eval mode, and a student
// whose exporter folded its BatchNorms into the convolutions trains normalized again. `inserted` counts them.
GraphModule with_batchnorm_after_convs(GraphModule& model, int* inserted);

// Copies each named tensor into the module's parameter or buffer of that name (which must exist with that
// shape; else an Error naming `path` and the tensor) and puts the module in eval mode.
void set_tensors(GraphModule& m, const std::map<std::string, torch::Tensor>& tensors,
                 const std::string& path);

// Copies every parameter and buffer that `dst` shares by name with `src`.
void copy_parameters(GraphModule& src, GraphModule& dst);

}  // namespace mighty::compress
