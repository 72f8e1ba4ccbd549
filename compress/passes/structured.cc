#include "compress/passes/structured.h"

#include <map>

#include <fmt/format.h>

#include "compress/ops/torch_op.h"
#include "runtime/error.h"

namespace mighty::compress {
namespace {

// A node's channel role: its op's, except that a grouped convolution (groups > 1) ties its units to its
// input channels group by group and is left alone (it ends a chain as a mixing op would).
ChannelRole role(const Node& n) {
  if (n.attrs.value("groups", int64_t{1}) != 1) return ChannelRole::kMixes;
  return torch_op(n.op).channels;
}

torch::Tensor named_tensor(GraphModule& model, const std::string& name) {
  for (const auto& kv : model->named_parameters(true))
    if (kv.key() == name) return kv.value();
  for (const auto& kv : model->named_buffers(true))
    if (kv.key() == name) return kv.value();
  throw Error(fmt::format("structured pruning: the model has no tensor '{}'", name));
}

bool has_tensor(GraphModule& model, const std::string& name) {
  for (const auto& kv : model->named_parameters(true))
    if (kv.key() == name) return true;
  return false;
}

}  // namespace

std::vector<UnitGroup> unit_groups(const Graph& graph) {
  const auto& nodes = graph.nodes();
  std::vector<UnitGroup> out;
  for (int p = 0; p < static_cast<int>(nodes.size()); ++p) {
    if (nodes[p].op == OpKind::kMultiHeadAttention && nodes[p].attrs.at("heads").get<int64_t>() > 1) {
      UnitGroup g;
      g.layer = nodes[p].name;
      g.producer = p;
      g.heads = true;
      g.units = nodes[p].attrs.at("heads").get<int64_t>();
      g.head_dim = attention_head_dim(nodes[p]);
      out.push_back(g);
      continue;
    }
    if (role(nodes[p]) != ChannelRole::kLayer) continue;
    UnitGroup g;
    g.layer = nodes[p].name;
    g.producer = p;
    g.units = nodes[p].attrs.at(torch_op(nodes[p].op).out_units).get<int64_t>();
    // A Linear on a sequence ([T, D]) is fine: its features are the last dimension all the way.
    int at = p;
    bool ok = true;
    while (true) {
      if (at == graph.output() || graph.users(at).size() != 1) {
        ok = false;
        break;
      }
      const int next = graph.users(at)[0];
      const TorchOpDef& def = torch_op(nodes[next].op);
      const ChannelRole next_role = role(nodes[next]);
      if (next_role == ChannelRole::kLayer) {
        g.consumer = next;
        break;
      }
      if (next_role == ChannelRole::kMixes) {
        ok = false;
        break;
      }
      if (def.channel_tensors) {
        if (g.batchnorm >= 0) {
          ok = false;
          break;
        }
        g.batchnorm = next;
      }
      if (next_role == ChannelRole::kFlattens) {
        const Shape& s = nodes[at].shape;  // [C, H, W]
        g.flatten = next;
        g.spatial = 1;
        for (size_t d = 1; d < s.size(); ++d) g.spatial *= s[d];
      }
      at = next;
    }
    if (!ok) continue;
    // A consumer that reads channels (a convolution) cannot read a flattened map.
    if (g.flatten >= 0 && !torch_op(nodes[g.consumer].op).flat_input) continue;
    out.push_back(g);
  }
  return out;
}

namespace {

// A head's weights as [3, heads, head_dim, d] (q, k, v rows) and [d, heads, head_dim] (output columns).
torch::Tensor head_rows(GraphModule& model, const UnitGroup& g) {
  return named_tensor(model, g.layer + ".in_proj.weight").view({3, g.units, g.head_dim, -1});
}
torch::Tensor head_columns(GraphModule& model, const UnitGroup& g) {
  return named_tensor(model, g.layer + ".out_proj.weight").view({-1, g.units, g.head_dim});
}

}  // namespace

int64_t unit_group_weights(GraphModule& model, const UnitGroup& group) {
  if (group.heads) {
    return named_tensor(model, group.layer + ".in_proj.weight").numel() +
           named_tensor(model, group.layer + ".out_proj.weight").numel();
  }
  return named_tensor(model, group.layer + ".weight").numel();
}

torch::Tensor unit_scores(GraphModule& model, const UnitGroup& group, const std::string& criterion) {
  torch::NoGradGuard no_grad;
  const auto& nodes = model->graph().nodes();
  if (group.heads) {
    const auto rows = head_rows(model, group).detach(), cols = head_columns(model, group).detach();
    const std::vector<int64_t> row_dims = {0, 2, 3}, col_dims = {0, 2};
    if (criterion == "l1") return rows.abs().sum(row_dims) + cols.abs().sum(col_dims);
    return (rows.pow(2).sum(row_dims) + cols.pow(2).sum(col_dims)).sqrt();
  }
  if (criterion == "bn_scale" && group.batchnorm >= 0) {
    return named_tensor(model, nodes[group.batchnorm].name + ".weight").detach().abs().clone();
  }
  const auto w = named_tensor(model, group.layer + ".weight").detach().reshape({group.units, -1});
  return criterion == "l1" ? w.abs().sum(1) : w.pow(2).sum(1).sqrt();
}

void zero_units(GraphModule& model, const UnitGroup& group, const torch::Tensor& keep) {
  torch::NoGradGuard no_grad;
  const auto drop = keep.eq(0);
  if (group.heads) {
    const auto h = drop.reshape({-1});
    head_rows(model, group).masked_fill_(h.view({1, -1, 1, 1}).expand({3, -1, group.head_dim, 1}), 0.0);
    named_tensor(model, group.layer + ".in_proj.bias")
        .view({3, group.units, group.head_dim})
        .masked_fill_(h.view({1, -1, 1}), 0.0);
    head_columns(model, group).masked_fill_(h.view({1, -1, 1}), 0.0);
    return;
  }
  auto zero_rows = [&](const std::string& name) {
    auto t = named_tensor(model, name);
    auto rows = drop.reshape({-1});
    for (int64_t d = 1; d < t.dim(); ++d) rows = rows.unsqueeze(-1);
    t.masked_fill_(rows.expand_as(t), 0.0);
  };
  zero_rows(group.layer + ".weight");
  if (has_tensor(model, group.layer + ".bias")) zero_rows(group.layer + ".bias");
  if (group.batchnorm >= 0) {
    const std::string bn = model->graph().nodes()[group.batchnorm].name;
    zero_rows(bn + ".weight");
    zero_rows(bn + ".bias");
  }
}

GraphModule shrink_units(GraphModule& model, const std::vector<UnitGroup>& groups,
                         const std::vector<torch::Tensor>& keep) {
  torch::NoGradGuard no_grad;
  const Graph& graph = model->graph();
  nlohmann::json gj = graph.to_json();
  // Per tensor name: the dimension to slice and the indices to keep.
  std::map<std::string, std::pair<int64_t, torch::Tensor>> slices;
  for (size_t i = 0; i < groups.size(); ++i) {
    const UnitGroup& g = groups[i];
    const auto kept = keep[i].nonzero().reshape({-1}).to(torch::kInt64);
    const int64_t n = kept.numel();
    if (n == 0) throw Error(fmt::format("structured pruning: every unit of '{}' would be removed", g.layer));
    const auto& nodes = graph.nodes();
    auto& pattrs = gj["nodes"][g.producer]["attrs"];
    if (g.heads) {
      // Rows (part, head, i) of the packed q, k, v projection and columns (head, i) of the output one.
      const auto within = torch::arange(g.head_dim, torch::kInt64);
      const auto columns = (kept.unsqueeze(1) * g.head_dim + within.unsqueeze(0)).reshape({-1});
      const auto rows =
          (torch::arange(3, torch::kInt64).unsqueeze(1) * (g.units * g.head_dim) + columns.unsqueeze(0))
              .reshape({-1});
      pattrs["heads"] = n;
      pattrs["head_dim"] = g.head_dim;
      slices[g.layer + ".in_proj.weight"] = {0, rows};
      slices[g.layer + ".in_proj.bias"] = {0, rows};
      slices[g.layer + ".out_proj.weight"] = {1, columns};
      continue;
    }
    pattrs[torch_op(nodes[g.producer].op).out_units] = n;
    slices[g.layer + ".weight"] = {0, kept};
    slices[g.layer + ".bias"] = {0, kept};
    if (g.batchnorm >= 0) {
      gj["nodes"][g.batchnorm]["attrs"][torch_op(nodes[g.batchnorm].op).channel_tensors] = n;
      for (const TensorSpec& t : graph.tensors(g.batchnorm)) slices[t.name] = {0, kept};
    }
    const std::string consumer = nodes[g.consumer].name;
    auto& cattrs = gj["nodes"][g.consumer]["attrs"];
    torch::Tensor columns = kept;
    if (g.flatten >= 0) {
      columns = (kept.unsqueeze(1) * g.spatial + torch::arange(g.spatial, torch::kInt64).unsqueeze(0))
                    .reshape({-1});
    }
    cattrs[torch_op(nodes[g.consumer].op).in_units] = columns.numel();
    // The consumer may also be a producer whose rows are sliced: compose (rows first, then columns).
    slices[consumer + ".weight#in"] = {1, columns};
  }
  Graph shrunk = Graph::from_json(gj);
  shrunk.infer_shapes();
  GraphModule out(shrunk);
  auto copy_into = [&](const std::string& name, torch::Tensor dst) {
    auto t = named_tensor(model, name).detach();
    if (auto it = slices.find(name); it != slices.end())
      t = t.index_select(it->second.first, it->second.second);
    if (auto it = slices.find(name + "#in"); it != slices.end())
      t = t.index_select(it->second.first, it->second.second);
    if (t.sizes() != dst.sizes()) {
      throw Error(fmt::format("structured pruning: '{}' is [{}] after slicing, the smaller model needs [{}]",
                              name, fmt::join(t.sizes(), ", "), fmt::join(dst.sizes(), ", ")));
    }
    dst.copy_(t);
  };
  for (auto& kv : out->named_parameters(true)) copy_into(kv.key(), kv.value());
  for (auto& kv : out->named_buffers(true)) copy_into(kv.key(), kv.value());
  return out;
}

}  // namespace mighty::compress
