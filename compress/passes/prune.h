// Pruning: magnitude masks (per layer or global), N:M masks, Zhu & Gupta's gradual schedule, and the
// `prune` stage that fine-tunes (plainly or distilled) while the masks keep pruned weights at zero.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/teacher.h"
#include "compress/models/zoo.h"
#include "compress/ops/torch_op.h"
#include "compress/passes/distill.h"
#include "compress/passes/structured.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

// The weights pruning can act on, in graph order: each op's TorchOpDef::prunable (Linear and Conv2d weights,
// attention input/output projections, the bag model's embedding table).
std::vector<PrunableWeight> prunable_weights(GraphModule& model);

// Fraction of the way from the initial to the final sparsity after `step` of `total` fine-tuning steps: 0
// before `begin`, 1 from `end` on, 1 - (1 - p)^3 in between (p the progress, counted in whole updates of
// `frequency` steps), 1 when there is no fine-tuning.
double schedule_progress(const PruneSpec& spec, int64_t step, int64_t total);

// Block pruning's unit: 16 output channels x 4 consecutive inputs in the runtime's GEMM order, one packed
// block of the int8 kernels, which skip all-zero blocks (kernels/gemm.h).
inline constexpr int64_t kBlockRows = 16, kBlockDepth = 4;

// The magnitudes of a weight's pruning units, flattened: |w| per element, or (block) the L2 norm of each
// [16 x 4] block of the weight as the GEMM sees it ([O, K], Conv2d's K ordered kernel row, column, channel;
// zero-padded to whole blocks).
torch::Tensor unit_magnitudes(const torch::Tensor& weight, bool block);
// A mask over units back to the weight's shape.
torch::Tensor units_to_mask(const torch::Tensor& unit_mask, const torch::Tensor& weight, bool block);

// 1 where a weight is kept: the round(sparsity * units) smallest units are pruned (ties: lower index first).
torch::Tensor magnitude_mask(const torch::Tensor& weight, double sparsity, bool block = false);
// One ranking over all the tensors: round(sparsity * total units) pruned where they are smallest.
std::vector<torch::Tensor> global_magnitude_masks(const std::vector<torch::Tensor>& weights, double sparsity,
                                                  bool block = false);
// In every group of m consecutive input channels (dimension 1, at each output channel and kernel position),
// the n largest magnitudes are kept. Requires weight.size(1) % m == 0.
torch::Tensor nm_mask(const torch::Tensor& weight, int64_t n, int64_t m);

// The masks of a model under a prune spec: which weights (or, for method channels, which units), their
// targets, and the current masks.
class Pruner {
 public:
  // Errors (unknown globs, nothing left to prune) name `json_path`.
  Pruner(const PruneSpec& spec, GraphModule& model, const std::string& json_path);
  // Recomputes the masks for schedule progress `progress` (when it changed) and applies them.
  void update(double progress);
  void apply();  // pruned weights set to +0; pruned units output 0
  // The layers it prunes (not skipped) with their weight counts (channels: the producer's weights).
  std::vector<std::pair<std::string, int64_t>> layers() const;
  // Replaces the final targets (e.g. with a sensitivity budget); layers not named keep theirs. Per-layer
  // targets leave the global ranking.
  void set_targets(const std::map<std::string, double>& targets);
  // One shot, this layer only, no mask kept: for sensitivity analysis (the caller restores the weights).
  void prune_one(const std::string& layer, double sparsity);
  // Method channels: the model without its pruned units (call after update(1.0)).
  GraphModule shrink();
  // Per layer: shape, parameters, nonzero, sparsity, target; totals over the pruned weights and the model.
  nlohmann::json report() const;

 private:
  struct Layer {
    PrunableWeight w;
    torch::Tensor weight;  // the parameter (shares storage)
    torch::Tensor mask;    // undefined until the first update
    double target = 0.0;   // final sparsity
    bool global = false;   // ranked with the other global layers
    std::string skipped;   // why it stays dense
  };
  struct Units {
    UnitGroup group;
    double target = 0.0;
    torch::Tensor keep;  // [units] of 0/1, undefined until the first update
  };
  void update_units(double progress);
  // The sparsity of a layer with final `target` at schedule progress `progress`.
  double level(double target, double progress) const;
  // 1 for the units of `group` kept at `sparsity`.
  torch::Tensor unit_keep(const UnitGroup& group, double sparsity);
  PruneSpec spec_;
  GraphModule model_;
  bool block_ = false;  // method block: [16 x 4] units
  std::vector<Layer> layers_;
  std::vector<Units> units_;
  // Channel pruning: the weight layers it leaves alone, and why.
  std::vector<std::pair<std::string, std::string>> left_alone_;
  double progress_ = -1.0;
};

// Runs a prune stage on `student` (fine-tuned in place). Returns the stage report ("completed": false when
// stopped early).
// The prune stage's per-layer table: shapes before and after, parameters, nonzero, sparsity, ranking.
std::string prune_markdown(const nlohmann::json& stage);

nlohmann::json run_prune_stage(const Recipe& recipe, size_t stage_index, Teacher& teacher,
                               const Dataset& data, GraphModule& student, const StageOptions& options);

}  // namespace mighty::compress
