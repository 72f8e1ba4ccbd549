#include "runtime/exec/fp32_fusion.h"

#include <cmath>
#include <string>

#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty::exec {
namespace {

// The node's fp32 tensor `suffix`, now pointing at `data` (kept in the node's repacked list).
void replace_tensor(PreparedNode& p, const std::string& suffix, std::vector<float> data) {
  p.repacked.emplace_back("folded_" + suffix, std::move(data));
  const float* ptr = p.repacked.back().second.data();
  for (auto& [name, t] : p.tensors)
    if (name == suffix) {
      t = ptr;
      return;
    }
  p.tensors.emplace_back(suffix, ptr);
}

// Conv2d `conv` absorbs BatchNorm2d `bn`: per output channel o, scale = weight / sqrt(var + eps),
// W'[o] = W[o] * scale, b'[o] = (b[o] - mean) * scale + beta.
void fold_batchnorm(const Node& bn_node, const PreparedNode& bn, PreparedNode& conv) {
  const LayerAttrs& la = conv.attrs;
  const int64_t per_out = la.in / la.groups * la.kernel * la.kernel;
  const float *w = conv.find("weight"), *b = la.bias ? conv.find("bias") : nullptr;
  const float *gamma = bn.find("weight"), *beta = bn.find("bias"), *mean = bn.find("running_mean"),
              *var = bn.find("running_var");
  const double eps = bn_node.attrs.value("eps", static_cast<double>(ops::kNormEps));
  std::vector<float> weight(static_cast<size_t>(la.out * per_out)), bias(static_cast<size_t>(la.out));
  for (int64_t o = 0; o < la.out; ++o) {
    const double scale = gamma[o] / std::sqrt(static_cast<double>(var[o]) + eps);
    for (int64_t i = 0; i < per_out; ++i)
      weight[static_cast<size_t>(o * per_out + i)] = static_cast<float>(w[o * per_out + i] * scale);
    bias[static_cast<size_t>(o)] = static_cast<float>(((b ? b[o] : 0.0) - mean[o]) * scale + beta[o]);
  }
  replace_tensor(conv, "weight", std::move(weight));
  replace_tensor(conv, "bias", std::move(bias));
  conv.attrs.bias = true;
}

}  // namespace

void fuse_fp32_convolutions(const Graph& graph, std::vector<PreparedNode>& nodes) {
  const auto& g = graph.nodes();
  // The only user of node i, or -1 (none, several, or the graph's output).
  auto only_user = [&](int i) {
    const std::vector<int>& users = graph.users(i);
    return users.size() == 1 && i != graph.output() ? users[0] : -1;
  };
  for (size_t i = 0; i < g.size(); ++i) {
    if (g[i].op != OpKind::kConv2d || nodes[i].int8) continue;
    int next = only_user(static_cast<int>(i));
    if (next >= 0 && g[static_cast<size_t>(next)].op == OpKind::kBatchNorm2d) {
      fold_batchnorm(g[static_cast<size_t>(next)], nodes[static_cast<size_t>(next)], nodes[i]);
      nodes[static_cast<size_t>(next)].pass_through = true;
      next = only_user(next);
    }
    if (next >= 0 && g[static_cast<size_t>(next)].op == OpKind::kReLU) {
      nodes[i].attrs.relu = true;
      nodes[static_cast<size_t>(next)].pass_through = true;
    }
  }
}

}  // namespace mighty::exec
