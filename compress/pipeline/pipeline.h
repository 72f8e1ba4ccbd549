// mighty compress: the teacher, then the recipe's stages (distill, prune, quantize, export, verify) on the
// student, and the report that puts them side by side.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/pipeline/jobs.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

// Runs the recipe's teacher (trained once into the data cache, or loaded) and then its stages in order, in
// out_dir: stages/<i>-<kind>/ (resumable with `resume`), student.pt, student.graph.json, model.mighty
// (export), report.json and report.md. Returns the report ({"completed": false} when stopped early). When
// verify's criteria are not met, the report is written and then an Error names what failed.
nlohmann::json run_compress(const Recipe& recipe, const JobOptions& options);
struct Dataset;
// The same with the data loaded (the recipe has stages).
nlohmann::json run_compress(const Recipe& recipe, const Dataset& data, const JobOptions& options);
std::string report_markdown(const nlohmann::json& report);

// The teacher of a compress run: trained once per (seed, data, teacher) in the data cache and reused by every
// recipe that shares them; or loaded from a checkpoint, a TorchScript or an ONNX file. `info` says which.
class Teacher;
std::unique_ptr<Teacher> obtain_teacher(const Recipe& recipe, const Dataset& data, const JobOptions& options,
                                        nlohmann::json& info);

// The recipe's teacher trained into the data cache when it is not there yet (or loaded, to check it).
void prepare_teacher(const Recipe& recipe, const Dataset& data);

// `mighty report DIR`: report.md and report.html written again from DIR/report.json (a run made by an older
// mighty gets today's page). Returns report.html's path.
std::string rewrite_reports(const std::string& dir);

}  // namespace mighty::compress
