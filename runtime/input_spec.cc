#include "runtime/input_spec.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/text_corpus.h"

namespace mighty {

nlohmann::json InputSpec::to_json() const {
  if (kind == "images") return {{"kind", kind}, {"shape", shape}, {"mean", mean}, {"std", std}};
  if (kind == "documents") {
    return {
        {"kind", kind},
        {"max_tokens", max_tokens},
        {"max_bytes", max_bytes},
        {"tokenizer", {{"tensor", "tokenizer.vocab_json"}, {"bytes", vocab_json_bytes}, {"reserved", 6}}}};
  }
  std::vector<uint32_t> cps(vocab.begin(), vocab.end());
  return {{"kind", kind}, {"context", context}, {"vocab", cps}};
}

InputSpec InputSpec::from_json(const nlohmann::json& j, const std::string& where) {
  auto fail = [&](const std::string& what) {
    throw Error(fmt::format("{}: metadata.input: {}", where, what));
  };
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string()) fail("'kind' must be a string");
  InputSpec s;
  s.kind = j["kind"].get<std::string>();
  if (s.kind == "images") {
    if (!j.contains("shape") || !j["shape"].is_array()) fail("'shape' must be an array");
    for (const auto& d : j["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() == 0 || d.get<uint64_t>() > 65536) fail("bad 'shape'");
      s.shape.push_back(d.get<int64_t>());
    }
    if (!j.contains("mean") || !j["mean"].is_number() || !j.contains("std") || !j["std"].is_number()) {
      fail("'mean' and 'std' must be numbers");
    }
    s.mean = j["mean"].get<float>();
    s.std = j["std"].get<float>();
    if (!(s.std > 0.0f)) fail("'std' must be positive");
  } else if (s.kind == "text") {
    if (!j.contains("context") || !j["context"].is_number_unsigned())
      fail("'context' must be a positive integer");
    s.context = j["context"].get<int64_t>();
    if (!j.contains("vocab") || !j["vocab"].is_array() || j["vocab"].empty())
      fail("'vocab' must be a non-empty array");
    for (const auto& c : j["vocab"]) {
      if (!c.is_number_unsigned() || c.get<uint64_t>() > 0x10ffff)
        fail("'vocab' entries must be code points");
      s.vocab.push_back(static_cast<char32_t>(c.get<uint32_t>()));
    }
    if (!std::is_sorted(s.vocab.begin(), s.vocab.end())) fail("'vocab' must be sorted");
  } else if (s.kind == "documents") {
    for (const char* key : {"max_tokens", "max_bytes"}) {
      if (!j.contains(key) || !j[key].is_number_unsigned() || j[key].get<uint64_t>() == 0 ||
          j[key].get<uint64_t>() > (1u << 24)) {
        fail(fmt::format("'{}' must be a positive integer", key));
      }
    }
    s.max_tokens = j["max_tokens"].get<int64_t>();
    s.max_bytes = j["max_bytes"].get<int64_t>();
    const auto& t = j.contains("tokenizer") ? j["tokenizer"] : nlohmann::json();
    if (!t.is_object() || t.value("tensor", "") != "tokenizer.vocab_json" || !t.contains("bytes") ||
        !t["bytes"].is_number_unsigned() || t["bytes"].get<uint64_t>() > (1u << 28) ||
        t.value("reserved", -1) != 6) {
      fail("'tokenizer' must name the tensor tokenizer.vocab_json, its size and 6 reserved ids");
    }
    s.vocab_json_bytes = t["bytes"].get<uint64_t>();
  } else {
    fail(fmt::format("unknown kind '{}'", s.kind));
  }
  return s;
}

int64_t InputSpec::example_size() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> InputSpec::images(const uint8_t* pixels, int64_t count) const {
  std::vector<float> out(static_cast<size_t>(count * example_size()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = (static_cast<float>(pixels[i]) / 255.0f - mean) / std;
  return out;
}

std::vector<int64_t> InputSpec::encode(const std::string& utf8) const {
  const TextCorpus corpus = parse_text_corpus(utf8, "text");
  std::vector<int64_t> ids;
  ids.reserve(corpus.ids.size());
  size_t byte = 0;
  for (int32_t local : corpus.ids) {
    const char32_t cp = corpus.vocab[static_cast<size_t>(local)];
    const auto it = std::lower_bound(vocab.begin(), vocab.end(), cp);
    if (it == vocab.end() || *it != cp) {
      throw Error(fmt::format("character U+{:04X} at byte {} is not in the model's vocabulary",
                              static_cast<uint32_t>(cp), byte));
    }
    ids.push_back(it - vocab.begin());
    byte += encode_utf8(cp).size();
  }
  return ids;
}

std::string InputSpec::decode(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(vocab.size()))
    throw Error(fmt::format("id {} is outside the vocabulary", id));
  return encode_utf8(vocab[static_cast<size_t>(id)]);
}

}  // namespace mighty
