// Input in LibTorch: the model's input batch.
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

torch::Tensor forward(const TorchCall& c) { return c.model_input(); }

}  // namespace

extern const TorchOpDef kInputTorchOp = {OpKind::kInput,      nullptr, forward, {},    nullptr, nullptr,
                                         ChannelRole::kMixes, nullptr, nullptr, false, nullptr, false};

}  // namespace mighty::compress
