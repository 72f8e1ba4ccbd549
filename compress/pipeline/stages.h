// The stages of `mighty compress` as units behind one interface: each kind has a run function and a report
// section, found through one table (find_stage), so the pipeline's loop knows no kind by name. Adding a
// stage: its spec struct in compress/recipe/recipe.h with its reader and writer in recipe_stages.cc, its
// entry in compress/pipeline/stages.cc, its table in docs/recipes.md (tested against the registry).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/teacher.h"
#include "compress/models/zoo.h"
#include "compress/passes/quantize.h"
#include "compress/pipeline/jobs.h"
#include "compress/recipe/json_reader.h"
#include "compress/recipe/recipe.h"
#include "runtime/format/artifact.h"

namespace mighty::compress {

// What the stages hand on to each other.
struct Pipeline {
  GraphModule student{nullptr};
  bool student_given = false;  // weights to fine-tune (a checkpoint, a TorchScript student, an earlier stage)
  std::unique_ptr<QuantizedModel> quantized;
  std::string artifact, fp32_artifact;  // written by export
  ArtifactWriter artifact_writer;       // kept to rewrite model.mighty with the verify results
  nlohmann::json onnx;                  // export's ONNX files ({"model", "fp32"}: path or error), or null
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
  // The stage's recipe keys: read strictly into spec.spec (defaults: the spec struct's member initializers,
  // compress/recipe/recipe.h) and written back resolved, every key (without "kind"). docs/recipes.md
  // documents them; a test checks the two against each other.
  void (*read)(JsonReader& st, const Recipe& recipe, StageSpec& spec);
  nlohmann::json (*to_json)(const StageSpec& spec);
  // Where the stage may stand: stages run in non-decreasing `order`; a stage that does not `repeat` comes at
  // most once per rank; `after` (when set) must come right before it.
  int order;
  bool repeats;
  const char* after;
  const char* after_why;  // for the error: "checks the exported artifact"
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

// The verify stage (compress/pipeline/verify.cc).
nlohmann::json run_verify_stage(const StageSpec& spec, StageContext& ctx);
std::string verify_markdown(const nlohmann::json& stage);

}  // namespace mighty::compress
