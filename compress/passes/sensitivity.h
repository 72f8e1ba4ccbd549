// Sensitivity analysis for pruning: each prunable layer pruned alone (one shot, the rest dense) at a range of
// sparsities, measured on the validation split, and a per-layer budget that reaches a global target where it
// costs the least accuracy.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/passes/prune.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

struct LayerSensitivity {
  std::string layer;
  int64_t params = 0;           // weights of the layer (channels: of the producer)
  std::vector<double> quality;  // validation quality at each sparsity (accuracy, or -bits/char)
};

// Greedy allocation: starting from dense, repeatedly raise the layer whose next sparsity level loses the
// least quality per pruned weight (losses made non-decreasing in sparsity) until `target` of all the weights
// are pruned or every layer is at the last level. Returns the sparsity per layer.
std::map<std::string, double> sensitivity_budget(const std::vector<LayerSensitivity>& layers,
                                                 const std::vector<double>& sparsities, double dense_quality,
                                                 double target);

// Runs the analysis on `model` (restored afterwards) for the layers `pruner` would prune, with the method of
// `spec` (magnitude or channels). Returns {"sparsities", "dense", "layers": [{layer, params, quality:
// [...]}], "budget": {layer: sparsity}, "budget_sparsity"}.
nlohmann::json run_sensitivity(GraphModule& model, const PruneSpec& spec, Pruner& pruner,
                               const Dataset& data);

}  // namespace mighty::compress
