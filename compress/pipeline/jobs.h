// The jobs behind the CLI verbs, so apps/ only parses arguments: each job reads a recipe, works in a run
// directory and leaves its results there (written atomically).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/recipe/recipe.h"

namespace mighty::compress {

struct JobOptions {
  std::string out_dir;           // run directory (created)
  bool resume = false;           // continue from out_dir/checkpoint.pt
  int64_t stop_after_steps = 0;  // stop early as if interrupted (tests, debugging); 0 = run to the end
  bool measure_speed = true;
  bool quiet = false;             // no table on stdout
  bool int8 = false;              // export: int8 weights, dynamic activations
  std::string teacher_cache_dir;  // distill's teacher logits cache (StageOptions::teacher_cache_dir)
};

// Trains the recipe's teacher: writes recipe.json (resolved, with hashes), checkpoint.pt (during training),
// teacher.pt and teacher.graph.json (the trained model and its graph IR) and metrics.json. Returns the
// metrics.
nlohmann::json run_train(const Recipe& recipe, const JobOptions& options);
struct Dataset;
nlohmann::json run_train(const Recipe& recipe, const Dataset& data,
                         const JobOptions& options);  // data loaded

// Evaluates out_dir/teacher.pt (or `weights` when given) on the test split; writes metrics.json.
nlohmann::json run_eval(const Recipe& recipe, const JobOptions& options, const std::string& weights = "");

// Exports the trained teacher (out_dir/teacher.pt) as an fp32 artifact with its input spec, labels and
// hashes: out_dir/teacher.fp32.mighty. Returns the path.
std::string run_export(const Recipe& recipe, const JobOptions& options);

// Small helpers shared with compress/pipeline/pipeline.cc.
// Data-parallel runs: only rank 0 writes (see compress/train/distributed.h); on the other ranks these do
// nothing.
void write_json(const std::string& path, const nlohmann::json& j);
void write_text(const std::string& path, const std::string& text);
void ensure_run_dir(const std::string& dir);
// Resume or reuse: the JSON record at `record` when it and every file of `outputs` exist and its `key_field`
// equals `key` (the identity of what produced them), else null. The teacher cache, a distill run and a prune
// stage are all found this way; data-parallel, rank 0's files decide.
nlohmann::json completed_record(const std::string& record, const std::vector<std::string>& outputs,
                                const char* key_field, const std::string& key);
std::string with_commas(int64_t v);

// The readable table printed after train and eval.
std::string metrics_table(const nlohmann::json& metrics);

}  // namespace mighty::compress
