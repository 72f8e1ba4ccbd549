// Shared between recipe.cc and recipe_stages.cc; not part of the recipe API.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/recipe/json_reader.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress::detail {

inline constexpr int64_t kMaxCount = int64_t{1} << 40;

TrainSpec read_train(JsonReader t);
nlohmann::json train_to_json(const TrainSpec& s);
// A stage through the registry (compress/pipeline/stages.cc): its kind, then its definition's reader /
// writer.
StageSpec read_stage(JsonReader& st, const Recipe& r);
nlohmann::json stage_to_json(const StageSpec& s);
// The stages' order and neighbours (StageDef::order, repeats, after); errors point at stages/<i>/kind.
void check_stage_order(JsonReader& root, const std::vector<StageSpec>& stages);

// Each stage kind's keys (compress/recipe/recipe_stages.cc), as StageDef::read and StageDef::to_json.
void read_distill(JsonReader& st, const Recipe& r, StageSpec& spec);
nlohmann::json distill_to_json(const StageSpec& spec);
void read_prune(JsonReader& st, const Recipe& r, StageSpec& spec);
nlohmann::json prune_to_json(const StageSpec& spec);
void read_quantize(JsonReader& st, const Recipe& r, StageSpec& spec);
nlohmann::json quantize_to_json(const StageSpec& spec);
void read_export(JsonReader& st, const Recipe& r, StageSpec& spec);
nlohmann::json export_to_json(const StageSpec& spec);
void read_verify(JsonReader& st, const Recipe& r, StageSpec& spec);
nlohmann::json verify_to_json(const StageSpec& spec);

// The model spec at `key`/`index` of `parent` (a list of model objects), checked against the data kind.
ModelSpec read_model_spec(JsonReader& parent, const std::string& key, size_t index, const std::string& kind);

// The `tune` block (compress/recipe/recipe_tune.cc); read after the stages, which it varies.
void read_tune(JsonReader& root, Recipe& r);
nlohmann::json tune_to_json(const TuneSpec& t);

}  // namespace mighty::compress::detail
