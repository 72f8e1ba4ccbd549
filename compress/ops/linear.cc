// Linear in LibTorch: torch::nn::Linear; lowered from aten::linear, and from aten::addmm and aten::matmul
// by a constant matrix (x W + b, W = weight^T); a prunable weight layer (output features are units; it may
// read a flattened map); int8 weights.
#include <torch/csrc/jit/ir/ir.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  const auto& a = n.attrs;
  return torch::nn::Linear(
             torch::nn::LinearOptions(a.at("in_features").get<int64_t>(), a.at("out_features").get<int64_t>())
                 .bias(a.value("bias", true)))
      .ptr();
}

torch::Tensor forward(const TorchCall& c) { return c.module<torch::nn::LinearImpl>().forward(c.in()); }

void add_linear(ScriptLowering& l, const torch::jit::Node* n, int input, const torch::Tensor& w,
                const torch::Tensor& bias) {
  if (w.dim() != 2) l.fail(n, "the weight must be a matrix");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != w.size(0)))
    l.fail(n, "the bias must be a vector of one entry per output");
  const std::string name =
      l.add(n, "linear", OpKind::kLinear, {input},
            {{"in_features", w.size(1)}, {"out_features", w.size(0)}, {"bias", bias.defined()}});
  l.weight(name + ".weight", w);
  if (bias.defined()) l.weight(name + ".bias", bias);
}

// aten::linear(x, weight, bias?), aten::addmm(bias, x, mat, beta, alpha), aten::matmul(x, mat).
void lower(ScriptLowering& l, const torch::jit::Node* n) {
  const std::string kind = n->kind().toQualString();
  if (kind == "aten::linear") {
    return add_linear(l, n, l.input_of(n, 0), l.tensor(n, 1),
                      l.has_tensor(n, 2) ? l.tensor(n, 2) : torch::Tensor());
  }
  const bool addmm = kind == "aten::addmm";
  const size_t x = addmm ? 1 : 0;
  if (!l.is_constant(n, x + 1)) l.fail(n, "only a product with a constant matrix (a weight)");
  if (addmm &&
      (l.constant(n, 3).toScalar().toDouble() != 1.0 || l.constant(n, 4).toScalar().toDouble() != 1.0))
    l.fail(n, "beta and alpha must be 1");
  const auto mat = l.tensor(n, x + 1);
  if (mat.dim() != 2) l.fail(n, "the constant operand must be a matrix");
  add_linear(l, n, l.input_of(n, x), mat.t().contiguous(),
             addmm ? l.tensor(n, 0).reshape({-1}) : torch::Tensor());
}

}  // namespace

extern const TorchOpDef kLinearTorchOp = {OpKind::kLinear,
                                          module,
                                          forward,
                                          {"aten::linear", "aten::addmm", "aten::matmul"},
                                          lower,
                                          own_weight,
                                          ChannelRole::kLayer,
                                          "out_features",
                                          "in_features",
                                          /*flat_input=*/true,
                                          nullptr,
                                          /*int8_weights=*/true};

}  // namespace mighty::compress
