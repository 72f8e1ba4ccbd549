// One fuzz input through ONNX import (onnx_io/import.h) as `mighty-onnx` and `mighty compress` take a model
// file: parse, ONNX's checker, the op table, the graph's shapes, the weights against them; then the artifact
// it becomes, the session over that artifact and one forward pass where the example is small. Each step
// either succeeds or refuses with mighty::Error; any other exception, a crash or a violation is a finding.
// Shared by the libFuzzer target (fuzz_onnx.cc) and the replay of its corpus in the ONNX tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include "onnx_io/export.h"
#include "onnx_io/import.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/op_def.h"

namespace mighty::fuzz {

// Examples larger than this are imported and loaded but not run (a fuzz input may declare a huge image).
inline constexpr int64_t kMaxRunElements = int64_t{1} << 16;
// A model whose declared input holds more than this per example, but no more than the IR's limit, is not
// imported: the importer then rightly needs memory in proportion (a per-channel affine's weights for 2^30
// channels), which is a big model, not a bad file. Larger declarations must be refused before anything is
// allocated, and are imported.
inline constexpr int64_t kMaxImportElements = int64_t{1} << 22;

// The declared input's elements per example (past the first dimension), saturating at 2^62; 0 when the file
// does not parse or declares none.
inline int64_t declared_input_elements(const std::string& bytes) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes) || m.graph().input_size() == 0) return 0;
  const auto& type = m.graph().input(0).type();
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return 0;
  int64_t elements = 1;
  const auto& dims = type.tensor_type().shape().dim();
  for (int d = 1; d < dims.size(); ++d) {
    const int64_t v = dims[d].dim_value();
    if (v <= 0) return 0;
    elements = elements > (int64_t{1} << 62) / v ? int64_t{1} << 62 : elements * v;
  }
  return elements;
}

// An imported model written back as ONNX (onnx_io/export.h) and imported again computes what it did: every
// op the importer produces has an ONNX form, so export must not refuse it.
inline std::string round_trip(const Session& session, const std::vector<float>& x,
                              const std::vector<float>& y) {
  std::string exported;
  try {
    exported = onnx_io::export_onnx(session.artifact()).bytes;
  } catch (const Error& e) {
    return fmt::format("an imported model does not export: {}", e.what());
  }
  const onnx_io::Imported again = onnx_io::import_bytes(exported, "exported.onnx");
  const Session back(Artifact::from_bytes(onnx_io::to_artifact(again, {}).serialize(), "exported.mighty"));
  const std::vector<float> z = back.run(x.data(), 1);
  if (z.size() != y.size())
    return fmt::format("exported and imported again: {} outputs, not {}", z.size(), y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    const bool same = (std::isnan(y[i]) && std::isnan(z[i])) || y[i] == z[i] ||
                      std::abs(y[i] - z[i]) <= 1e-5f + 1e-4f * std::abs(y[i]);
    if (!same) return fmt::format("exported and imported again: output {} is {}, was {}", i, z[i], y[i]);
  }
  return "";
}

// "" when the input was imported and run right or refused with mighty::Error; else what went wrong.
inline std::string onnx_one(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const int64_t declared = declared_input_elements(bytes);
  if (declared > kMaxImportElements && declared <= kMaxElements) return "";
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
    return round_trip(session, x, y);
  } catch (const Error&) {
  }
  return "";
}

}  // namespace mighty::fuzz
