// ONNX Runtime's rows in verify (verify_onnxruntime.cc): the exported ONNX files run by onnxruntime-node
// beside mighty's own sessions.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "compress/train/evaluate.h"
#include "runtime/exec/session.h"

namespace mighty::compress {

struct OrtRowInputs {
  const nlohmann::json& exported;  // export's {"model", "fp32"} ONNX files (path, or error), or null
  const std::string& node_modules;
  const std::string& stage_dir;  // where ORT's optimized graphs are saved
  int threads;
  const Dataset& data;
  const EvalSpec& eval;
  int64_t latency_runs;
  int64_t params;
  const Forward &teacher_on_test, &int8, &fp32;  // mighty's, to compare with
  const Session &int8_session, &fp32_session;    // mighty's, timed alternately with ONNX Runtime
};

// {"rows": [fp32 row, int8 row] (model entries with "path", "version", "identical_to_mighty", "paired",
// "optimized_op_types"; or {"engine", "path", "unavailable"}), "version"} or {"rows": [], "unavailable":
// why}.
nlohmann::json onnxruntime_rows(const OrtRowInputs& in);

// The verify section's ONNX Runtime paragraph.
std::string onnxruntime_markdown(const nlohmann::json& ort);

}  // namespace mighty::compress
