// How an artifact's inputs are made from raw data, as stored in its metadata ("input"): images are scaled to
// [0, 1] and normalized with the training mean and std; text is mapped to ids through the stored character
// vocabulary. The deployed model therefore preprocesses exactly as training did.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/format/metadata.h"

namespace mighty {

struct InputSpec {
  std::string kind;  // images | text | documents
  std::vector<int64_t> shape;
  float mean = 0.0f, std = 1.0f;
  std::vector<char32_t> vocab;
  int64_t context = 0;
  // documents: raw text (an email) -> email_text (at most max_bytes) -> the artifact's tokenizer (the tensor
  // "tokenizer.vocab_json", zlib-compressed vocab.json) -> at most max_tokens ids.
  int64_t max_tokens = 0, max_bytes = 0;
  uint64_t vocab_json_bytes = 0;  // uncompressed size of the tokenizer tensor

  nlohmann::json to_json() const;
  // Every field checked (type, range, finiteness); errors name the file and the JSON path (/input/...).
  static InputSpec from_json(const MetaValue& j);
  static InputSpec from_json(const nlohmann::json& j, const std::string& file) {
    return from_json(MetaValue(j, file, "/input"));
  }

  int64_t example_size() const;  // floats per image
  // uint8 pixels [count][example_size] -> normalized floats.
  std::vector<float> images(const uint8_t* pixels, int64_t count) const;
  // The normalized float of each byte value: `images` maps pixel p to pixel_values()[p], so a caller that
  // converts many images one at a time builds this once and looks each pixel up.
  std::array<float, 256> pixel_values() const;
  // UTF-8 text -> ids; a character outside the vocabulary is an error naming it and its byte offset.
  std::vector<int64_t> encode(const std::string& utf8) const;
  std::string decode(int64_t id) const;
};

}  // namespace mighty
