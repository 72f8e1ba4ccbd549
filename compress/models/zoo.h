// The model zoo. A spec becomes a graph IR first; the LibTorch module is then built from that IR
// (GraphModule), so the trained module, the exported graph and the runtime can never disagree about structure
// or names.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "compress/recipe/recipe.h"
#include "runtime/graph/graph.h"

namespace mighty::compress {

// The spec's input_shape, classes and vocab must be filled (see fill_from_data). Dropout is carried as the
// training-only node attribute "train_dropout" (applied to the node's output in training mode; ignored by the
// runtime).
Graph build_graph(const ModelSpec& spec);

struct Dataset;
// Fills input_shape / classes / vocab from the data, or checks the values the recipe gave against it.
ModelSpec fill_from_data(ModelSpec spec, const Dataset& data, const std::string& json_path);

// Replaces a node's computation: given the node index and its first input, returns the node's output, or an
// undefined tensor to let the module compute it.
using NodeOverride = std::function<torch::Tensor(int node, const torch::Tensor& input)>;

// A LibTorch module that executes a graph IR. Parameters are registered under the IR's dotted names.
class GraphModuleImpl : public torch::nn::Module {
 public:
  explicit GraphModuleImpl(Graph graph);
  torch::Tensor forward(const torch::Tensor& input);
  // The output and the outputs of the nodes `nodes` (indices into the graph), in that order. With
  // `captures_only`, the graph runs only up to the last captured node and the output is left undefined.
  std::pair<torch::Tensor, std::vector<torch::Tensor>> forward_capture(
      const torch::Tensor& input, const std::vector<int>& nodes, const NodeOverride* override_fn = nullptr,
      bool captures_only = false);
  const Graph& graph() const { return graph_; }

  int64_t parameter_count() const;
  int64_t fp32_bytes() const;  // parameters and buffers at 4 bytes each

 private:
  Graph graph_;
  // Per node, the LibTorch module that holds its tensors (torch_op(op).module; null for ops that own none).
  std::vector<std::shared_ptr<torch::nn::Module>> node_modules_;
};
TORCH_MODULE(GraphModule);

}  // namespace mighty::compress
