// The JSON of POST /v1/models/NAME:predict, apart from HTTP: reading a request (every field checked; a bad
// one is a RequestError with the HTTP status, a kind for the metrics and one line naming the instance and
// what was wrong) and writing predictions.
//
// Request: {"instances": [...], "top_k": 3, "logits": false}. An instance is raw input:
//   image models       an array of the model's pixel count of integers 0..255, or {"b64": "<base64 bytes>"}
//   document models    a string (an email: headers and body), or {"b64": ...} for bytes that are not UTF-8
//   language models    a string; the answer is the next character (the last `context` characters are read)
// Response: {"model": NAME, "version": V, "predictions": [{"label", "index", "probability", "top": [...]}]}.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/batcher.h"
#include "serve/registry.h"

namespace mighty::serve {

class RequestError : public std::runtime_error {
 public:
  RequestError(int status, std::string kind, const std::string& message)
      : std::runtime_error(message), status_(status), kind_(std::move(kind)) {}
  int status() const { return status_; }
  const std::string& kind() const { return kind_; }

 private:
  int status_;
  std::string kind_;
};

struct PredictRequest {
  std::vector<std::string> raw;  // per instance: the pixels' bytes, or the text's bytes
  int64_t top_k = 3;
  bool logits = false;
};

// Reads a request for a model whose input is `input`; at most `max_items` instances.
PredictRequest parse_predict(const std::string& body, const InputSpec& input, int64_t max_items);
// The binary form (Content-Type: application/octet-stream): image models take the pixels of N images back to
// back (N x the pixel count bytes), other models one raw text; top_k and logits come from the query string
// ("" when absent).
PredictRequest parse_predict_binary(const std::string& body, const InputSpec& input, int64_t max_items,
                                    const std::string& top_k, const std::string& logits);

// The instances `which` (indices into r.raw) in the model's input form.
Job make_job(const Model& m, const PredictRequest& r, const std::vector<size_t>& which);

// One example's answer from its scores (the model's outputs for it), appended to `out` as a JSON object:
// {"label", "index", "probability", "top": [{"label", "index", "probability"}...], "logits"?}, then `extra`
// (more members, each starting with a comma) before the closing brace. Written directly, not through a JSON
// tree: building one per example was a tenth of a busy server's CPU.
void append_prediction(std::string& out, const Model& m, const float* scores, int64_t top_k, bool logits,
                       const std::string& extra = "");

// A string as a JSON string (quoted, escaped; invalid UTF-8 replaced).
std::string json_string(const std::string& s);

// {"error": message, "kind": kind} on one line.
std::string error_body(const std::string& kind, const std::string& message);

// RFC 4648 base64 (padding required, no whitespace); false when `text` is not that.
bool decode_base64(std::string_view text, std::string& out);
std::string encode_base64(const uint8_t* bytes, size_t size);  // for clients (the load generator, tests)

}  // namespace mighty::serve
