// One fuzz input through ONNX import (onnx_io/import.h) as `mighty-onnx` and `mighty compress` take a model
// file: parse, ONNX's checker, the op table, the graph's shapes, the weights against them; then the artifact
// it becomes, the session over that artifact and one forward pass where the example is small. Each step
// either succeeds or refuses with mighty::Error; any other exception, a crash or a violation is a finding.
// Shared by the libFuzzer target (fuzz_onnx.cc) and the replay of its corpus in the ONNX tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_io/import.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"

namespace mighty::fuzz {

// Examples larger than this are imported and loaded but not run (a fuzz input may declare a huge image).
inline constexpr int64_t kMaxRunElements = int64_t{1} << 16;

// "" when the input was imported and run right or refused with mighty::Error; else what went wrong.
inline std::string onnx_one(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const onnx_io::Imported model = onnx_io::import_bytes(bytes, "fuzz.onnx");
    for (const auto& spec : model.graph.all_tensors()) {
      const auto it = model.tensors.find(spec.name);
      if (it == model.tensors.end()) return fmt::format("tensor '{}' has no weights", spec.name);
      int64_t count = 1;
      for (int64_t d : spec.shape) count *= d;
      if (static_cast<int64_t>(it->second.data.size()) != count)
        return fmt::format("tensor '{}' holds {} values for {}", spec.name, it->second.data.size(), count);
    }
    const Session session(Artifact::from_bytes(onnx_io::to_artifact(model, {}).serialize(), "fuzz.mighty"));
    int64_t elements = 1;
    for (int64_t d : session.graph().nodes()[0].shape) elements *= d;
    if (elements > kMaxRunElements) return "";
    std::vector<float> x(static_cast<size_t>(elements));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.25f;
    const std::vector<float> y = session.run(x.data(), 1);
    if (static_cast<int64_t>(y.size()) != session.output_size())
      return fmt::format("{} outputs, the session says {}", y.size(), session.output_size());
  } catch (const Error&) {
  }
  return "";
}

}  // namespace mighty::fuzz
