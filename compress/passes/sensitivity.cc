#include "compress/passes/sensitivity.h"

#include <algorithm>

#include <fmt/format.h>

#include "compress/train/evaluate.h"
#include "runtime/io/progress.h"

namespace mighty::compress {

std::map<std::string, double> sensitivity_budget(const std::vector<LayerSensitivity>& layers,
                                                 const std::vector<double>& sparsities, double dense_quality,
                                                 double target) {
  // levels[i]: 0 = dense, k = sparsities[k - 1]; loss[i][k] non-decreasing in k.
  const size_t n = layers.size(), levels = sparsities.size() + 1;
  std::vector<std::vector<double>> loss(n, std::vector<double>(levels, 0.0));
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    total += layers[i].params;
    for (size_t k = 1; k < levels; ++k) {
      loss[i][k] = std::max(loss[i][k - 1], dense_quality - layers[i].quality[k - 1]);
    }
  }
  auto level_sparsity = [&](size_t k) { return k == 0 ? 0.0 : sparsities[k - 1]; };
  std::vector<size_t> at(n, 0);
  double pruned = 0.0;
  while (pruned < target * static_cast<double>(total)) {
    size_t best = n;
    double best_cost = 0.0;
    for (size_t i = 0; i < n; ++i) {
      if (at[i] + 1 >= levels) continue;
      const double weights =
          (level_sparsity(at[i] + 1) - level_sparsity(at[i])) * static_cast<double>(layers[i].params);
      if (weights <= 0) continue;
      const double cost = (loss[i][at[i] + 1] - loss[i][at[i]]) / weights;
      if (best == n || cost < best_cost || (cost == best_cost && layers[i].params > layers[best].params)) {
        best = i;
        best_cost = cost;
      }
    }
    if (best == n) break;  // every layer at the last level
    pruned +=
        (level_sparsity(at[best] + 1) - level_sparsity(at[best])) * static_cast<double>(layers[best].params);
    ++at[best];
  }
  std::map<std::string, double> out;
  for (size_t i = 0; i < n; ++i) out[layers[i].layer] = level_sparsity(at[i]);
  return out;
}

nlohmann::json run_sensitivity(GraphModule& model, const PruneSpec& spec, Pruner& pruner,
                               const Dataset& data) {
  torch::NoGradGuard no_grad;
  model->eval();
  auto quality = [&] {
    const auto m = evaluate_split(model, data, Split::kValidation);
    return m.contains("accuracy") ? m["accuracy"].get<double>() : -m.at("bits_per_char").get<double>();
  };
  // Everything a trial may touch, to put back after it.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved;
  for (auto& p : model->parameters()) saved.emplace_back(p, p.detach().clone());
  const double dense = quality();
  const auto& sparsities = spec.sensitivity_sparsities;
  std::vector<LayerSensitivity> layers;
  const auto targets = pruner.layers();
  Progress progress("sensitivity", static_cast<int64_t>(targets.size() * sparsities.size()), "trial");
  int64_t done = 0;
  for (const auto& [layer, params] : targets) {
    LayerSensitivity ls{layer, params, {}};
    for (double s : sparsities) {
      pruner.prune_one(layer, s);
      ls.quality.push_back(quality());
      for (auto& [p, copy] : saved) p.detach().copy_(copy);
      progress.update(++done, fmt::format("{} at {:.0f}%", layer, 100.0 * s));
    }
    layers.push_back(ls);
  }
  progress.finish(done);
  const auto budget = sensitivity_budget(layers, sparsities, dense, spec.sparsity);
  nlohmann::json table = nlohmann::json::array();
  double pruned = 0.0, total = 0.0;
  for (const auto& l : layers) {
    table.push_back(
        {{"layer", l.layer}, {"params", l.params}, {"quality", l.quality}, {"budget", budget.at(l.layer)}});
    pruned += budget.at(l.layer) * static_cast<double>(l.params);
    total += static_cast<double>(l.params);
  }
  return {{"sparsities", sparsities},
          {"dense", dense},
          {"metric", data.kind == "text" ? "-bits_per_char" : "accuracy"},
          {"split", "validation"},
          {"layers", table},
          {"budget_sparsity", total > 0 ? pruned / total : 0.0}};
}

}  // namespace mighty::compress
