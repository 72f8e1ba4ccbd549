// Strict reading of one JSON object of a recipe: every key is read with its type, default and range, and
// finish() rejects the keys nobody read. Every error is one line "file:line:col: /json/path: problem".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/recipe/json_source.h"

namespace mighty::compress {

// Bounds of a numeric key; open ends are exclusive.
struct Range {
  double lo;
  double hi;
  bool lo_open = false;
  bool hi_open = false;
};

class JsonReader {
 public:
  JsonReader(const JsonSource& source, const nlohmann::json& value, std::string pointer);
  // The reader for a whole document (its root must be an object).
  static JsonReader root(const JsonSource& source);

  [[noreturn]] void fail(const std::string& message) const;
  [[noreturn]] void fail_at(const std::string& key, const std::string& message) const;
  // `relative` is a JSON pointer below this object ("model/arch", "hidden/1").
  [[noreturn]] void fail_at_path(const std::string& relative, const std::string& message) const;

  const std::string& pointer() const { return pointer_; }
  bool has(const std::string& key) const;

  // Optional defaults: std::nullopt makes the key required.
  double number(const std::string& key, std::optional<double> fallback, Range range);
  int64_t integer(const std::string& key, std::optional<int64_t> fallback, int64_t lo, int64_t hi);
  // A number in `range` or the string "auto" (std::nullopt); absent: `fallback`.
  std::optional<double> number_or_auto(const std::string& key, std::optional<double> fallback, Range range);
  bool boolean(const std::string& key, std::optional<bool> fallback);
  std::string string(const std::string& key, std::optional<std::string> fallback);
  std::string choice(const std::string& key, std::optional<std::string> fallback,
                     std::initializer_list<const char*> options);
  std::string choice(const std::string& key, std::optional<std::string> fallback,
                     const std::vector<std::string>& options);
  std::vector<int64_t> integer_list(const std::string& key, std::optional<std::vector<int64_t>> fallback,
                                    int64_t lo, int64_t hi);
  std::vector<double> number_list(const std::string& key, std::optional<std::vector<double>> fallback,
                                  Range range);
  std::vector<std::string> string_list(const std::string& key,
                                       std::optional<std::vector<std::string>> fallback);

  // Nested object (required unless `optional`; an absent optional object reads as an empty one).
  JsonReader object(const std::string& key, bool optional = false);
  // Nested array of objects.
  std::vector<JsonReader> object_list(const std::string& key);

  // Every key of this object must have been read.
  void finish() const;

 private:
  const nlohmann::json* lookup(const std::string& key);
  std::string child_pointer(const std::string& key) const;

  const JsonSource* source_;
  const nlohmann::json* value_;
  std::string pointer_;
  std::set<std::string> read_;
};

std::string describe_json(const nlohmann::json& v);  // "string \"abc\"", "number 1.5", ...

}  // namespace mighty::compress
