// The stages of `mighty compress` as units behind one interface: each kind has a run function and a report
// section, found through one table (find_stage), so the pipeline's loop knows no kind by name. Adding a
// stage: its spec in compress/recipe.h and recipe_stages.cc, its entry in compress/stages.cc,
// docs/recipes.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data.h"
#include "compress/jobs.h"
#include "compress/quantize.h"
#include "compress/recipe.h"
#include "compress/teacher.h"
#include "compress/zoo.h"
#include "runtime/format/artifact.h"

namespace mighty::compress {

// What the stages hand on to each other.
struct Pipeline {
  GraphModule student{nullptr};
  bool student_given = false;  // weights to fine-tune (a checkpoint, a TorchScript student, an earlier stage)
  std::unique_ptr<QuantizedModel> quantized;
  std::string artifact, fp32_artifact;  // written by export
  ArtifactWriter artifact_writer;       // kept to rewrite model.mighty with the verify results
  nlohmann::json baseline;              // the scratch baseline's model entry (distill), or null
  nlohmann::json verify_models;         // the models side by side (verify), or null
};

// One stage's view of the run.
struct StageContext {
  const Recipe& recipe;
  const JobOptions& options;
  const Dataset& data;
  Teacher& teacher;
  const nlohmann::json& teacher_test;  // the teacher on the test split
  Pipeline& pipeline;
  size_t index;             // in recipe.stages
  std::string dir() const;  // <out>/stages/<index>-<kind>
};

struct StageDef {
  const char* kind;
  // Training stages run on every rank of a data-parallel run; the others on rank 0 alone.
  bool trains;
  // Returns the stage's report entry; {"completed": false} when stopped early (resume later).
  nlohmann::json (*run)(const StageSpec& spec, StageContext& ctx);
  // The stage's section of report.md (null: none); `summary` sections come right after the models table.
  std::string (*markdown)(const nlohmann::json& stage);
  bool summary;
};

const StageDef& stage_def(const std::string& kind);  // an Error naming the kinds for an unknown one
const std::vector<const StageDef*>& stage_defs();

// A model's row of the report (accuracy or bits/char, size, speed).
nlohmann::json model_entry(const std::string& name, const std::string& role, const std::string& engine,
                           int64_t params, int64_t bytes, const nlohmann::json& test,
                           const nlohmann::json& speed);

// The verify stage (compress/verify.cc).
nlohmann::json run_verify_stage(const StageSpec& spec, StageContext& ctx);
std::string verify_markdown(const nlohmann::json& stage);

}  // namespace mighty::compress
