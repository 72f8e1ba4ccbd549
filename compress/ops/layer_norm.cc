// LayerNorm in LibTorch: torch::nn::LayerNorm over the last dimension (eps from the node, 1e-5 by default).
// Mixes features.
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  return torch::nn::LayerNorm(
             torch::nn::LayerNormOptions({n.attrs.at("dim").get<int64_t>()}).eps(n.attrs.value("eps", 1e-5)))
      .ptr();
}

torch::Tensor forward(const TorchCall& c) { return c.module<torch::nn::LayerNormImpl>().forward(c.in()); }

}  // namespace

extern const TorchOpDef kLayerNormTorchOp = {OpKind::kLayerNorm,  module,  forward, {},    nullptr, nullptr,
                                             ChannelRole::kMixes, nullptr, nullptr, false, nullptr, false};

}  // namespace mighty::compress
