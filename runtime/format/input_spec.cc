#include "runtime/format/input_spec.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/text/text_corpus.h"

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

namespace {

void read_images(const MetaValue& j, InputSpec& s) {
  const MetaValue shape = j.at("shape");
  if (shape.size() == 0 || shape.size() > 8) shape.fail("expected 1 to 8 dimensions");
  for (const MetaValue& d : shape.elements()) s.shape.push_back(d.integer(1, 65536));
  s.mean = static_cast<float>(j.at("mean").number(-1e6, 1e6));
  s.std = static_cast<float>(j.at("std").number(1e-12, 1e6));
}

void read_text(const MetaValue& j, InputSpec& s) {
  s.context = j.at("context").integer(1, int64_t{1} << 31);
  const MetaValue vocab = j.at("vocab");
  if (vocab.size() == 0) vocab.fail("expected a non-empty array of code points");
  for (const MetaValue& c : vocab.elements())
    s.vocab.push_back(static_cast<char32_t>(c.integer(0, 0x10ffff)));
  if (!std::is_sorted(s.vocab.begin(), s.vocab.end())) vocab.fail("the code points must be sorted");
}

void read_documents(const MetaValue& j, InputSpec& s) {
  s.max_tokens = j.at("max_tokens").integer(1, int64_t{1} << 24);
  s.max_bytes = j.at("max_bytes").integer(1, int64_t{1} << 24);
  const MetaValue t = j.at("tokenizer");
  const MetaValue tensor = t.at("tensor");
  if (tensor.string() != "tokenizer.vocab_json") tensor.fail("expected \"tokenizer.vocab_json\"");
  s.vocab_json_bytes = t.at("bytes").unsigned_integer(uint64_t{1} << 28);
  const MetaValue reserved = t.at("reserved");
  if (reserved.integer(0, 1 << 20) != 6) reserved.fail("expected 6 reserved ids");
}

}  // namespace

InputSpec InputSpec::from_json(const MetaValue& j) {
  InputSpec s;
  j.expect_object();
  s.kind = j.at("kind").string();
  if (s.kind == "images") {
    read_images(j, s);
  } else if (s.kind == "text") {
    read_text(j, s);
  } else if (s.kind == "documents") {
    read_documents(j, s);
  } else {
    j.at("kind").fail(fmt::format("expected \"images\", \"text\" or \"documents\", found '{}'", s.kind));
  }
  return s;
}

int64_t InputSpec::example_size() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> InputSpec::images(const uint8_t* pixels, int64_t count) const {
  const std::array<float, 256> value = pixel_values();
  std::vector<float> out(static_cast<size_t>(count * example_size()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = value[pixels[i]];
  return out;
}

std::array<float, 256> InputSpec::pixel_values() const {
  std::array<float, 256> value{};
  for (int v = 0; v < 256; ++v) value[static_cast<size_t>(v)] = (static_cast<float>(v) / 255.0f - mean) / std;
  return value;
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
