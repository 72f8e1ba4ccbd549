#include "serve/protocol.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <numeric>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/exec/tasks.h"
#include "runtime/format/metadata.h"

namespace mighty::serve {
namespace {

RequestError bad(const std::string& kind, const std::string& message) { return {400, kind, message}; }

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Each byte's 6-bit value in the base64 alphabet (RFC 4648), or -1 (anything else, '=' included).
constexpr std::array<int8_t, 256> base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kBase64 = base64_table();

std::string read_image(const nlohmann::json& v, size_t index, int64_t pixels) {
  std::string bytes;
  if (v.is_object()) {
    if (v.size() != 1 || !v.contains("b64") || !v["b64"].is_string())
      throw bad("wrong_type", fmt::format("instance {}: an object instance is {{\"b64\": \"...\"}}", index));
    if (!decode_base64(v["b64"].get_ref<const std::string&>(), bytes))
      throw bad("bad_base64", fmt::format("instance {}: \"b64\" is not base64", index));
  } else if (v.is_array()) {
    bytes.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      const auto& p = v[i];
      if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() > 255)
        throw bad("wrong_type", fmt::format("instance {}: pixel {} is {}, expected an integer 0..255", index,
                                            i, describe_json(p)));
      bytes[i] = static_cast<char>(p.get<int64_t>());
    }
  } else {
    throw bad("wrong_type",
              fmt::format("instance {}: expected an array of pixels or {{\"b64\": ...}}, found {}", index,
                          describe_json(v)));
  }
  if (static_cast<int64_t>(bytes.size()) != pixels)
    throw bad("wrong_size",
              fmt::format("instance {}: expected {} pixels, found {}", index, pixels, bytes.size()));
  return bytes;
}

std::string read_text(const nlohmann::json& v, size_t index) {
  if (v.is_string()) return v.get<std::string>();
  std::string bytes;
  if (v.is_object() && v.size() == 1 && v.contains("b64") && v["b64"].is_string()) {
    if (!decode_base64(v["b64"].get_ref<const std::string&>(), bytes))
      throw bad("bad_base64", fmt::format("instance {}: \"b64\" is not base64", index));
    return bytes;
  }
  throw bad("wrong_type", fmt::format("instance {}: expected a string or {{\"b64\": ...}}, found {}", index,
                                      describe_json(v)));
}

}  // namespace

std::string encode_base64(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t w = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0) |
                       (i + 2 < n ? uint32_t{p[i + 2]} : 0);
    out += kBase64Alphabet[(w >> 18) & 63];
    out += kBase64Alphabet[(w >> 12) & 63];
    out += i + 1 < n ? kBase64Alphabet[(w >> 6) & 63] : '=';
    out += i + 2 < n ? kBase64Alphabet[w & 63] : '=';
  }
  return out;
}

bool decode_base64(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) return false;
  if (text.empty()) return true;
  // '=' only as the last one or two characters (then the quad before them carries 2 or 1 bytes).
  const size_t pad = text.back() != '=' ? 0 : text[text.size() - 2] == '=' ? 2 : 1;
  out.resize(text.size() / 4 * 3);
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  auto* dst = reinterpret_cast<uint8_t*>(out.data());
  const size_t quads = text.size() / 4;
  int32_t invalid = 0;  // negative once any character is outside the alphabet
  for (size_t q = 0; q < quads; ++q, in += 4, dst += 3) {
    const size_t padded = q + 1 == quads ? pad : 0;  // the last quad's '=' carry no bits
    const int32_t a = kBase64[in[0]], b = kBase64[in[1]];
    const int32_t c = padded == 2 ? 0 : kBase64[in[2]], d = padded ? 0 : kBase64[in[3]];
    invalid |= a | b | c | d;
    const uint32_t w = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    dst[0] = static_cast<uint8_t>(w >> 16);
    dst[1] = static_cast<uint8_t>(w >> 8);
    dst[2] = static_cast<uint8_t>(w);
  }
  out.resize(out.size() - pad);
  if (invalid < 0) {
    out.clear();
    return false;
  }
  return true;
}

std::string error_body(const std::string& kind, const std::string& message) {
  std::string line = message;
  std::replace(line.begin(), line.end(), '\n', ' ');
  return nlohmann::json({{"error", line}, {"kind", kind}})
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

PredictRequest parse_predict(const std::string& body, const InputSpec& input, int64_t max_items) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw bad("malformed_json", fmt::format("the body is not JSON: {}", e.what()));
  }
  if (!j.is_object())
    throw bad("not_an_object", "the body is a JSON " + std::string(j.type_name()) + ", expected an object");
  for (const auto& [key, value] : j.items()) {
    if (key != "instances" && key != "top_k" && key != "logits")
      throw bad("unknown_key", fmt::format("unknown key \"{}\" (expected instances, top_k, logits)", key));
  }
  if (!j.contains("instances")) throw bad("missing_instances", "the body has no \"instances\"");
  const auto& instances = j["instances"];
  if (!instances.is_array())
    throw bad("wrong_type", "\"instances\" is " + describe_json(instances) + ", expected an array");
  if (instances.empty()) throw bad("no_instances", "\"instances\" is empty");
  if (static_cast<int64_t>(instances.size()) > max_items)
    throw RequestError(
        413, "too_many_items",
        fmt::format("{} instances; this server takes at most {} per request", instances.size(), max_items));
  PredictRequest r;
  if (j.contains("top_k")) {
    const auto& k = j["top_k"];
    if (!k.is_number_integer() || k.get<int64_t>() < 1 || k.get<int64_t>() > 1000)
      throw bad("wrong_type", "\"top_k\" is " + describe_json(k) + ", expected an integer 1..1000");
    r.top_k = k.get<int64_t>();
  }
  if (j.contains("logits")) {
    if (!j["logits"].is_boolean())
      throw bad("wrong_type", "\"logits\" is " + describe_json(j["logits"]) + ", expected true or false");
    r.logits = j["logits"].get<bool>();
  }
  for (size_t i = 0; i < instances.size(); ++i) {
    r.raw.push_back(input.kind == "images" ? read_image(instances[i], i, input.example_size())
                                           : read_text(instances[i], i));
  }
  return r;
}

PredictRequest parse_predict_binary(const std::string& body, const InputSpec& input, int64_t max_items,
                                    const std::string& top_k, const std::string& logits) {
  PredictRequest r;
  if (!top_k.empty()) {
    char* end = nullptr;
    const long k = std::strtol(top_k.c_str(), &end, 10);
    if (*end != '\0' || k < 1 || k > 1000)
      throw bad("wrong_type", "top_k=" + top_k + ": expected an integer 1..1000");
    r.top_k = k;
  }
  if (!logits.empty()) {
    if (logits != "true" && logits != "false")
      throw bad("wrong_type", "logits=" + logits + ": expected true or false");
    r.logits = logits == "true";
  }
  if (body.empty()) throw bad("no_instances", "the body is empty");
  if (input.kind != "images") {
    r.raw.push_back(body);
    return r;
  }
  const auto pixels = static_cast<size_t>(input.example_size());
  if (body.size() % pixels != 0)
    throw bad("wrong_size",
              fmt::format("{} bytes is not a whole number of {}-pixel images", body.size(), pixels));
  const size_t n = body.size() / pixels;
  if (static_cast<int64_t>(n) > max_items)
    throw RequestError(413, "too_many_items",
                       fmt::format("{} images; this server takes at most {} per request", n, max_items));
  for (size_t i = 0; i < n; ++i) r.raw.push_back(body.substr(i * pixels, pixels));
  return r;
}

Job make_job(const Model& m, const PredictRequest& r, const std::vector<size_t>& which) {
  Job job;
  job.count = static_cast<int64_t>(which.size());
  const InputSpec& input = m.input();
  std::array<float, 256> pixel{};
  if (input.kind == "images") {
    pixel = input.pixel_values();
    job.floats.reserve(which.size() * static_cast<size_t>(input.example_size()));
  }
  for (size_t i : which) {
    const std::string& raw = r.raw[i];
    if (input.kind == "images") {
      if (static_cast<int64_t>(raw.size()) != input.example_size())
        throw RequestError(
            500, "input_mismatch",
            fmt::format("{} reads {} pixels, the request has {}", m.name, input.example_size(), raw.size()));
      const auto at = static_cast<std::ptrdiff_t>(job.floats.size());
      job.floats.resize(job.floats.size() + raw.size());
      std::transform(raw.begin(), raw.end(), job.floats.begin() + at,
                     [&](char c) { return pixel[static_cast<uint8_t>(c)]; });
    } else if (input.kind == "documents") {
      try {
        job.sequences.push_back(m.documents->ids(raw));
      } catch (const Error& e) {
        throw bad("unreadable_text", fmt::format("instance {}: {}", i, e.what()));
      }
    } else {
      std::vector<int64_t> ids;
      try {
        ids = input.encode(raw);
      } catch (const Error& e) {
        throw bad("unknown_character", fmt::format("instance {}: {}", i, e.what()));
      }
      if (ids.empty()) throw bad("empty_input", fmt::format("instance {}: the text is empty", i));
      if (static_cast<int64_t>(ids.size()) > input.context) ids.erase(ids.begin(), ids.end() - input.context);
      job.sequences.push_back(std::move(ids));
    }
  }
  return job;
}

std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// A number as JSON: shortest round-trip form; null when not finite (as nlohmann::json writes it).
void append_number(std::string& out, double v) {
  if (std::isfinite(v))
    fmt::format_to(std::back_inserter(out), "{}", v);
  else
    out += "null";
}

}  // namespace

void append_prediction(std::string& out, const Model& m, const float* scores, int64_t top_k, bool logits,
                       const std::string& extra) {
  const int64_t n = m.outputs_per_example();
  const std::vector<double> p = softmax_probabilities(scores, n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const auto k = static_cast<size_t>(std::min(top_k, n));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  auto label = [&](int64_t i) {
    if (m.input().kind == "text")
      out += json_string(m.input().decode(i));
    else if (i < static_cast<int64_t>(m.json_labels.size()))
      out += m.json_labels[static_cast<size_t>(i)];
    else
      fmt::format_to(std::back_inserter(out), "\"{}\"", i);
  };
  auto answer = [&](int64_t i) {
    out += "\"label\":";
    label(i);
    fmt::format_to(std::back_inserter(out), ",\"index\":{},\"probability\":", i);
    append_number(out, p[static_cast<size_t>(i)]);
  };
  out += '{';
  answer(order[0]);
  out += ",\"top\":[";
  for (size_t i = 0; i < k; ++i) {
    out += i ? ",{" : "{";
    answer(order[i]);
    out += '}';
  }
  out += ']';
  if (logits) {
    out += ",\"logits\":[";
    for (int64_t i = 0; i < n; ++i) {
      if (i) out += ',';
      append_number(out, static_cast<double>(scores[i]));  // the float's exact value, as before
    }
    out += ']';
  }
  out += extra;
  out += '}';
}

}  // namespace mighty::serve
