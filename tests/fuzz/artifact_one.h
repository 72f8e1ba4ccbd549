// One fuzz input through everything a reader does with a .mighty file: open it (every tensor view inside the
// bytes), describe it (`mighty-run inspect`), build the session (graph, tensors against it, quantization
// parameters, input spec, a document classifier's tokenizer) and run it: a float model on two examples when
// they are small, a token model on a short sequence. Each step succeeds or refuses with mighty::Error; any
// other exception, a crash or a wrong output size is a finding. Shared by the libFuzzer target
// (fuzz_artifact.cc) and the replay of its corpus in the runtime tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/format/inspect.h"
#include "runtime/text/document_model.h"

namespace mighty::fuzz {

// Float examples larger than this are not run (a mutated shape may be huge; the graph allows 2^31 elements).
inline constexpr int64_t kMaxArtifactRunElements = int64_t{1} << 16;

inline std::string run_session(const Session& session) {
  const Graph& g = session.graph();
  if (g.input_dtype() == DType::kInt64) {
    const int64_t length = std::min<int64_t>(g.input_shape()[0], 5);
    std::vector<int64_t> tokens(static_cast<size_t>(2 * length));
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>(i % 3);
    const std::vector<float> y = session.run_tokens(tokens.data(), 2, length);
    if (static_cast<int64_t>(y.size()) != 2 * session.output_size(length))
      return fmt::format("{} token outputs, the session says 2 x {}", y.size(), session.output_size(length));
    return "";
  }
  int64_t elements = 1;
  for (int64_t d : g.input_shape()) elements *= d;
  if (elements > kMaxArtifactRunElements) return "";
  std::vector<float> x(static_cast<size_t>(2 * elements));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 11) - 5) * 0.3f;
  const std::vector<float> y = session.run(x.data(), 2);
  if (static_cast<int64_t>(y.size()) != 2 * session.output_size())
    return fmt::format("{} outputs, the session says 2 x {}", y.size(), session.output_size());
  return "";
}

// "" when the bytes were read (and run) right or refused with mighty::Error; else what went wrong.
inline std::string artifact_one(const std::string& bytes) {
  try {
    const Artifact a = Artifact::from_bytes(bytes, "fuzz");
    uint64_t total = 0;
    for (const auto& t : a.tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.data);
      for (uint64_t i = 0; i < t.bytes; ++i) total += p[i];  // reads every byte: ASan checks the bounds
    }
    volatile uint64_t sink = total;  // keeps the reads
    (void)sink;
    describe_artifact(a);
    if (!a.metadata().contains("graph")) return "";
    const Session session(Artifact::from_bytes(bytes, "fuzz"));
    if (session.has_input_spec() && session.input_spec().kind == "documents") DocumentModel doc(session);
    return run_session(session);
  } catch (const Error&) {
  }
  return "";
}

}  // namespace mighty::fuzz
