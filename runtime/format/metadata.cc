#include "runtime/format/metadata.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/error.h"

namespace mighty {
namespace {

const char* type_name(const nlohmann::json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// JSON pointer escaping (RFC 6901): '~' -> "~0", '/' -> "~1".
std::string escape_key(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string describe_json(const nlohmann::json& value) {
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

MetaValue::MetaValue(const nlohmann::json& value, std::string file, std::string pointer)
    : value_(&value), file_(std::move(file)), pointer_(std::move(pointer)) {}

void MetaValue::fail(const std::string& what) const {
  throw Error(fmt::format("{}: metadata {}: {}", file_, pointer_.empty() ? "/" : pointer_, what));
}

void MetaValue::expect(bool ok, const char* expected) const {
  if (!ok)
    fail(fmt::format("expected {}, found {} ({})", expected, describe_json(*value_), type_name(*value_)));
}

void MetaValue::expect_object() const { expect(value_->is_object(), "an object"); }

bool MetaValue::has(const std::string& key) const {
  expect_object();
  return value_->contains(key);
}

MetaValue MetaValue::at(const std::string& key) const {
  if (!has(key)) fail(fmt::format("the member '{}' is missing", key));
  return MetaValue((*value_)[key], file_, pointer_ + "/" + escape_key(key));
}

size_t MetaValue::size() const {
  expect(value_->is_array(), "an array");
  return value_->size();
}

MetaValue MetaValue::at(size_t index) const {
  if (index >= size()) fail(fmt::format("index {} is past the {} elements", index, value_->size()));
  return MetaValue((*value_)[index], file_, fmt::format("{}/{}", pointer_, index));
}

std::vector<MetaValue> MetaValue::elements() const {
  std::vector<MetaValue> out;
  const size_t n = size();
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(at(i));
  return out;
}

std::string MetaValue::string() const {
  expect(value_->is_string(), "a string");
  return value_->get<std::string>();
}

bool MetaValue::boolean() const {
  expect(value_->is_boolean(), "true or false");
  return value_->get<bool>();
}

int64_t MetaValue::integer(int64_t lo, int64_t hi) const {
  const std::string expected = fmt::format("an integer in [{}, {}]", lo, hi);
  expect(value_->is_number_integer(), expected.c_str());
  // Unsigned values beyond int64 are out of range whatever the bounds.
  if (value_->is_number_unsigned() && value_->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    expect(false, expected.c_str());
  const int64_t v = value_->get<int64_t>();
  expect(v >= lo && v <= hi, expected.c_str());
  return v;
}

uint64_t MetaValue::unsigned_integer(uint64_t hi) const {
  const std::string expected = fmt::format("an integer in [0, {}]", hi);
  expect(value_->is_number_unsigned() && value_->get<uint64_t>() <= hi, expected.c_str());
  return value_->get<uint64_t>();
}

double MetaValue::number(double lo, double hi) const {
  const std::string expected = fmt::format("a finite number in [{}, {}]", lo, hi);
  expect(value_->is_number(), expected.c_str());
  const double v = value_->get<double>();
  expect(std::isfinite(v) && v >= lo && v <= hi, expected.c_str());
  return v;
}

std::string MetaValue::string_or(const std::string& key, const std::string& fallback) const {
  return has(key) ? at(key).string() : fallback;
}

bool MetaValue::boolean_or(const std::string& key, bool fallback) const {
  return has(key) ? at(key).boolean() : fallback;
}

int64_t MetaValue::integer_or(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const {
  return has(key) ? at(key).integer(lo, hi) : fallback;
}

}  // namespace mighty
