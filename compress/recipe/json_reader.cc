#include "compress/recipe/json_reader.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/error.h"

namespace mighty::compress {
namespace {

const nlohmann::json& empty_object() {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  return kEmpty;
}

std::string format_range(const Range& r) {
  return fmt::format("{}{}, {}{}", r.lo_open ? "(" : "[", r.lo, r.hi, r.hi_open ? ")" : "]");
}

bool in_range(double v, const Range& r) {
  if (r.lo_open ? !(v > r.lo) : !(v >= r.lo)) return false;
  if (r.hi_open ? !(v < r.hi) : !(v <= r.hi)) return false;
  return true;
}

}  // namespace

std::string describe_json(const nlohmann::json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  switch (v.type()) {
    case nlohmann::json::value_t::string:
      return "string " + text;
    case nlohmann::json::value_t::boolean:
      return "boolean " + text;
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "object";
    case nlohmann::json::value_t::array:
      return "array";
    default:
      return "number " + text;
  }
}

JsonReader::JsonReader(const JsonSource& source, const nlohmann::json& value, std::string pointer)
    : source_(&source), value_(&value), pointer_(std::move(pointer)) {
  if (!value_->is_object()) fail("expected an object, found " + describe_json(*value_));
}

JsonReader JsonReader::root(const JsonSource& source) { return JsonReader(source, source.value, ""); }

void JsonReader::fail(const std::string& message) const {
  throw Error(
      fmt::format("{}: {}: {}", source_->where(pointer_), pointer_.empty() ? "/" : pointer_, message));
}

void JsonReader::fail_at(const std::string& key, const std::string& message) const {
  const std::string p = child_pointer(key);
  throw Error(fmt::format("{}: {}: {}", source_->where(p), p, message));
}

void JsonReader::fail_at_path(const std::string& relative, const std::string& message) const {
  const std::string p = pointer_ + "/" + relative;
  throw Error(fmt::format("{}: {}: {}", source_->where(p), p, message));
}

std::string JsonReader::child_pointer(const std::string& key) const {
  std::string escaped;
  for (char c : key) {
    if (c == '~')
      escaped += "~0";
    else if (c == '/')
      escaped += "~1";
    else
      escaped += c;
  }
  return pointer_ + "/" + escaped;
}

bool JsonReader::has(const std::string& key) const { return value_->contains(key); }

const nlohmann::json* JsonReader::lookup(const std::string& key) {
  read_.insert(key);
  auto it = value_->find(key);
  return it == value_->end() ? nullptr : &*it;
}

double JsonReader::number(const std::string& key, std::optional<double> fallback, Range range) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required number is missing");
    return *fallback;
  }
  if (!v->is_number()) fail_at(key, "expected a number, found " + describe_json(*v));
  const double d = v->get<double>();
  if (!std::isfinite(d) || !in_range(d, range)) {
    fail_at(key, fmt::format("{} is outside {}", v->dump(), format_range(range)));
  }
  return d;
}

std::optional<double> JsonReader::number_or_auto(const std::string& key, std::optional<double> fallback,
                                                 Range range) {
  const auto* v = lookup(key);
  if (!v) return fallback;
  if (v->is_string() && v->get<std::string>() == "auto") return std::nullopt;
  if (!v->is_number())
    fail_at(key, "expected a number in " + format_range(range) + " or \"auto\", found " + describe_json(*v));
  return number(key, std::nullopt, range);
}

int64_t JsonReader::integer(const std::string& key, std::optional<int64_t> fallback, int64_t lo, int64_t hi) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required integer is missing");
    return *fallback;
  }
  if (!v->is_number_integer()) fail_at(key, "expected an integer, found " + describe_json(*v));
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    fail_at(key, fmt::format("{} is outside [{}, {}]", v->dump(), lo, hi));
  }
  const auto i = v->get<int64_t>();
  if (i < lo || i > hi) fail_at(key, fmt::format("{} is outside [{}, {}]", i, lo, hi));
  return i;
}

bool JsonReader::boolean(const std::string& key, std::optional<bool> fallback) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required boolean is missing");
    return *fallback;
  }
  if (!v->is_boolean()) fail_at(key, "expected true or false, found " + describe_json(*v));
  return v->get<bool>();
}

std::string JsonReader::string(const std::string& key, std::optional<std::string> fallback) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required string is missing");
    return *fallback;
  }
  if (!v->is_string()) fail_at(key, "expected a string, found " + describe_json(*v));
  return v->get<std::string>();
}

std::string JsonReader::choice(const std::string& key, std::optional<std::string> fallback,
                               std::initializer_list<const char*> options) {
  return choice(key, std::move(fallback), std::vector<std::string>(options.begin(), options.end()));
}

std::string JsonReader::choice(const std::string& key, std::optional<std::string> fallback,
                               const std::vector<std::string>& options) {
  const std::string s = string(key, std::move(fallback));
  for (const auto& o : options)
    if (s == o) return s;
  std::string list;
  for (const auto& o : options) list += (list.empty() ? "" : ", ") + o;
  fail_at(key, fmt::format("'{}' is not one of: {}", s, list));
}

std::vector<int64_t> JsonReader::integer_list(const std::string& key,
                                              std::optional<std::vector<int64_t>> fallback, int64_t lo,
                                              int64_t hi) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required list of integers is missing");
    return *fallback;
  }
  if (!v->is_array()) fail_at(key, "expected a list of integers, found " + describe_json(*v));
  std::vector<int64_t> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    const std::string at = key + "/" + std::to_string(i);
    if (!e.is_number_integer()) fail_at_path(at, "expected an integer, found " + describe_json(e));
    const auto x = e.get<int64_t>();
    if (x < lo || x > hi) fail_at_path(at, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    out.push_back(x);
  }
  return out;
}

std::vector<double> JsonReader::number_list(const std::string& key,
                                            std::optional<std::vector<double>> fallback, Range range) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required list of numbers is missing");
    return *fallback;
  }
  if (!v->is_array() || v->empty())
    fail_at(key, "expected a non-empty list of numbers, found " + describe_json(*v));
  std::vector<double> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    const std::string at = key + "/" + std::to_string(i);
    if (!e.is_number()) fail_at_path(at, "expected a number, found " + describe_json(e));
    const auto x = e.get<double>();
    const bool below = range.lo_open ? x <= range.lo : x < range.lo;
    const bool above = range.hi_open ? x >= range.hi : x > range.hi;
    if (below || above) {
      fail_at_path(at, fmt::format("{} is outside {}{}, {}{}", x, range.lo_open ? "(" : "[", range.lo,
                                   range.hi, range.hi_open ? ")" : "]"));
    }
    out.push_back(x);
  }
  return out;
}

std::vector<std::string> JsonReader::string_list(const std::string& key,
                                                 std::optional<std::vector<std::string>> fallback) {
  const auto* v = lookup(key);
  if (!v) {
    if (!fallback) fail_at(key, "required list of strings is missing");
    return *fallback;
  }
  if (!v->is_array()) fail_at(key, "expected a list of strings, found " + describe_json(*v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string())
      fail_at(key + "/" + std::to_string(i), "expected a string, found " + describe_json((*v)[i]));
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

JsonReader JsonReader::object(const std::string& key, bool optional) {
  const auto* v = lookup(key);
  if (!v) {
    if (!optional) fail_at(key, "required object is missing");
    return JsonReader(*source_, empty_object(), child_pointer(key));
  }
  if (!v->is_object()) fail_at(key, "expected an object, found " + describe_json(*v));
  return JsonReader(*source_, *v, child_pointer(key));
}

std::vector<JsonReader> JsonReader::object_list(const std::string& key) {
  const auto* v = lookup(key);
  if (!v) fail_at(key, "required list of objects is missing");
  if (!v->is_array()) fail_at(key, "expected a list of objects, found " + describe_json(*v));
  std::vector<JsonReader> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string p = child_pointer(key) + "/" + std::to_string(i);
    if (!(*v)[i].is_object()) {
      throw Error(
          fmt::format("{}: {}: expected an object, found {}", source_->where(p), p, describe_json((*v)[i])));
    }
    out.emplace_back(*source_, (*v)[i], p);
  }
  return out;
}

void JsonReader::finish() const {
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    if (read_.count(it.key()) == 0) {
      std::string known;
      for (const auto& k : read_) known += (known.empty() ? "" : ", ") + k;
      fail_at(it.key(), fmt::format("unknown key '{}' (expected one of: {})", it.key(), known));
    }
  }
}

}  // namespace mighty::compress
