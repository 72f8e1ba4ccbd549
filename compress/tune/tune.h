// mighty tune: the best model for a budget. The recipe's `tune` block (TuneSpec) names the constraints, the
// search space and the search; trials are the recipe with one choice from each list, run by the compress
// pipeline (distill, prune, quantize, export) at a fraction of the recipe's epochs. Successive halving keeps
// the best 1/eta of each rung for a longer schedule. Trials never see the test split: inside a trial the
// "test" of every stage report is the validation split, and each trial is judged on its exported int8
// artifact run by the runtime (validation accuracy, bytes on disk, batch-1 latency at the constraint's
// threads). Before any training, each shape of the space (student, pruning, activations) is exported once
// after one training step (DIR/precheck/): shapes over the bytes or latency limit are left out of the draw.
// The chosen trial's student is then exported and verified on the test split exactly as
// `mighty compress` does (DIR/final), once.
//
// DIR: tune.json (plan and identity), precheck/<id>/, trials/<id>/ (each a compress run with result.json),
// final/, model.mighty (the final model), report.json, report.md, report.html. Resumable after a kill at any
// point: finished trials are read back, an unfinished one continues from its checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/recipe/recipe.h"

namespace mighty::compress {

struct TuneOptions {
  std::string out_dir;
  bool resume = false;
  double budget_minutes = 0.0;  // 0 = no limit: the whole plan runs
  bool quiet = false;
};

// Runs the search and the final model; returns the report. Throws an Error (after writing the report) when
// no trial meets the constraints, or when the final model misses them on the test split.
nlohmann::json run_tune(const Recipe& recipe, const TuneOptions& options);

// The pieces, for tests.
// Every distinct configuration of the space (choices normalized: a labels-only trial has no alpha or
// temperature, an unpruned one no method).
std::vector<nlohmann::json> space_configurations(const Recipe& recipe);
// `all`, or `trials` of them drawn with the search seed, in trial order.
std::vector<nlohmann::json> draw_configurations(const Recipe& recipe, const std::vector<nlohmann::json>& all);
// draw_configurations of space_configurations (no pre-check).
std::vector<nlohmann::json> tune_configurations(const Recipe& recipe);
// The pre-check of a configuration's shape (its student, pruning and activations): the trial's recipe from
// labels, one training step per stage, no accuracy control. Its export's bytes and batch-1 latency are
// those of every trained trial of that shape, up to the int8 weights that training makes round to zero.
nlohmann::json precheck_recipe(const Recipe& recipe, const nlohmann::json& config);
// How many trials each rung trains, and each rung's epoch scale.
std::vector<std::pair<int64_t, double>> tune_rungs(const TuneSearch& search, int64_t configurations);
// The recipe of one trial (resolved JSON, no tune block, no verify stage): `config` applied, every training
// stage's epochs (or steps, and warmup) scaled by `epoch_scale` (at least 1).
nlohmann::json trial_recipe(const Recipe& recipe, const nlohmann::json& config, double epoch_scale);
// The chosen trial of `trials` (judged: "misses", "hard_ok", "rung", "order"): the best meeting every
// constraint; for accuracy, the one-standard-error rule on `examples` validation examples (within one
// standard error of the best, the one trained longest). Null when none meets them; `why` gets the facts.
const nlohmann::json* choose_trial(const std::vector<nlohmann::json>& trials, const std::string& objective,
                                   int64_t examples, nlohmann::json& why);
// Indices of the points no other point beats: higher `quality` and lower `cost` (ties: the first kept).
std::vector<size_t> pareto_front(const std::vector<std::pair<double, double>>& quality_cost);

std::string tune_markdown(const nlohmann::json& report);
std::string tune_html(const nlohmann::json& report, const std::string& markdown);

}  // namespace mighty::compress
