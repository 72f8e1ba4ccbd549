// The training loop: optimizer, learning-rate schedule, batches drawn deterministically from (seed, step),
// atomic checkpoints and exact resume. Given a seed and a thread count the final weights are reproducible,
// and a run resumed from any checkpoint ends with the same weights as one that never stopped.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

struct TrainOptions {
  std::string checkpoint_path;   // where checkpoints go ("" = none)
  bool resume = false;           // continue from checkpoint_path when it exists
  int64_t stop_after_steps = 0;  // stop (as if killed) after this many total steps; 0 = run to the end
  std::string label = "train";   // progress label
  std::string identity;          // recipe hash: a checkpoint from another recipe is refused
  // The loss of a batch: returns {loss, logits} (the logits feed the running accuracy). Default:
  // cross-entropy with the spec's label smoothing. The model is in training mode when it is called.
  std::function<std::pair<torch::Tensor, torch::Tensor>(GraphModule& model, const torch::Tensor& x,
                                                        const torch::Tensor& y, int64_t step)>
      objective;
  // Called once before the first step (after a resume: with the step it resumes at), and after every
  // optimizer step with the number of steps done; e.g. pruning masks are computed and applied here.
  std::function<void(GraphModule&model, int64_t steps_done)> on_start, after_step;
  // Parameters trained with the model and saved in its checkpoints (e.g. feature projections); may be null.
  std::shared_ptr<torch::nn::Module> extra;
};

struct TrainResult {
  int64_t steps_done = 0;
  int64_t total_steps = 0;
  bool completed = false;
  double seconds = 0.0;
  nlohmann::json history =
      nlohmann::json::array();  // one entry per epoch: train loss, validation metrics, lr
};

// Learning rate at `step` (0-based) of `total` steps.
double learning_rate(const TrainSpec& spec, int64_t step, int64_t total);

int64_t steps_per_epoch(const TrainSpec& spec, const Dataset& data);
int64_t total_steps(const TrainSpec& spec, const Dataset& data);

// The batch of training step `step`: images augmented and normalized, or text windows. Deterministic in
// (seed, step), so a teacher's logits for a step can be cached.
std::pair<torch::Tensor, torch::Tensor> training_batch(const TrainSpec& spec, const Dataset& data,
                                                       uint64_t seed, int64_t step);
// Samples [begin, end) of that batch, each exactly as in the whole batch (its image, augmentation or text
// window): what one rank of a data-parallel run trains on.
std::pair<torch::Tensor, torch::Tensor> training_batch_part(const TrainSpec& spec, const Dataset& data,
                                                            uint64_t seed, int64_t step, int64_t begin,
                                                            int64_t end);

TrainResult train_model(GraphModule& model, const TrainSpec& spec, const Dataset& data, uint64_t seed,
                        const TrainOptions& options);

}  // namespace mighty::compress
