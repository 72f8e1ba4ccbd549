// Shared between recipe.cc and recipe_stages.cc; not part of the recipe API.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "compress/json_reader.h"
#include "compress/recipe.h"

namespace mighty::compress::detail {

inline constexpr int64_t kMaxCount = int64_t{1} << 40;

TrainSpec read_train(JsonReader t);
nlohmann::json train_to_json(const TrainSpec& s);
StageSpec read_stage(JsonReader& st, const Recipe& r);
nlohmann::json stage_to_json(const StageSpec& s);

}  // namespace mighty::compress::detail
