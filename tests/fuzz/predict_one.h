// One input of the request-reader fuzzer (fuzz_predict.cc), shared with the test that replays its corpus
// (tests/serve/test_serve.cc): any body must either give a request whose instances are exactly what the model
// reads, or be refused with a RequestError whose status is 4xx. The first byte picks the reader: JSON for an
// image model (16 pixels), JSON for a text model, the raw-bytes form (the bytes up to a newline are the
// query's "top_k logits"), or base64 alone (then what decodes must have the right length and come back the
// same after encoding). Returns what was wrong, or "" when the input was handled as it should be.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/format/input_spec.h"
#include "serve/protocol.h"

namespace mighty::fuzz {

inline std::string predict_one(const uint8_t* data, size_t size) {
  constexpr int64_t kMaxItems = 8;
  if (size == 0) return "";
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const int mode = data[0] % 4;
  if (mode == 3) {
    std::string bytes;
    if (!serve::decode_base64(body, bytes)) return "";
    const size_t last = body.find_last_not_of('=');
    const size_t pad = body.size() - (last == std::string::npos ? 0 : last + 1);
    if (bytes.size() != body.size() / 4 * 3 - pad) return "base64: decoded to the wrong length";
    const std::string again =
        serve::encode_base64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    std::string back;
    if (!serve::decode_base64(again, back) || back != bytes) return "base64: no round trip";
    return "";
  }
  InputSpec input;
  input.kind = mode == 1 ? "documents" : "images";
  if (mode != 1) input.shape = {1, 4, 4};
  try {
    serve::PredictRequest r;
    if (mode == 2) {
      const size_t line = body.find('\n');
      const std::string query = line == std::string::npos ? "" : body.substr(0, line);
      const size_t space = query.find(' ');
      const std::string top_k = query.substr(0, space);
      const std::string logits = space == std::string::npos ? "" : query.substr(space + 1);
      r = serve::parse_predict_binary(line == std::string::npos ? body : body.substr(line + 1), input,
                                      kMaxItems, top_k, logits);
    } else {
      r = serve::parse_predict(body, input, kMaxItems);
    }
    if (r.raw.empty() || static_cast<int64_t>(r.raw.size()) > kMaxItems) return "accepted a wrong item count";
    if (r.top_k < 1 || r.top_k > 1000) return "accepted top_k " + std::to_string(r.top_k);
    if (input.kind == "images")
      for (const auto& x : r.raw)
        if (static_cast<int64_t>(x.size()) != input.example_size())
          return "accepted an image of the wrong size";
  } catch (const serve::RequestError& e) {
    if (e.status() < 400 || e.status() > 499 || e.kind().empty())
      return "refused with status " + std::to_string(e.status()) + " kind '" + e.kind() + "'";
  }
  return "";
}

}  // namespace mighty::fuzz
