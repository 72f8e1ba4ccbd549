// Every value the runtime reads from an artifact's JSON metadata goes through MetaValue: a view of one JSON
// value that knows the file it came from and its JSON pointer (/graph/nodes/3/attrs/quant/input_scale). A
// value that is missing, of another type, not finite or out of range is one mighty::Error line naming both,
// e.g.
//   model.mighty: metadata /input/kind: expected a string, found 5
// so nothing downstream ever meets nlohmann's own type errors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mighty {

class MetaValue {
 public:
  // `file` names the artifact in messages; `pointer` is the value's JSON pointer ("" for the root).
  MetaValue(const nlohmann::json& value, std::string file, std::string pointer = "");

  const nlohmann::json& json() const { return *value_; }
  const std::string& file() const { return file_; }
  const std::string& pointer() const { return pointer_; }

  // Members of an object (the value must be one): a required member, or whether an optional one exists.
  bool has(const std::string& key) const;
  MetaValue at(const std::string& key) const;
  // Elements of an array (the value must be one).
  size_t size() const;
  MetaValue at(size_t index) const;
  std::vector<MetaValue> elements() const;

  void expect_object() const;
  std::string string() const;
  bool boolean() const;
  int64_t integer(int64_t lo, int64_t hi) const;  // an integer in [lo, hi]
  uint64_t unsigned_integer(uint64_t hi) const;   // an integer in [0, hi]
  double number(double lo, double hi) const;      // a finite number in [lo, hi]

  // Optional members: the fallback when absent, else the checked value (a present value is never ignored).
  std::string string_or(const std::string& key, const std::string& fallback) const;
  bool boolean_or(const std::string& key, bool fallback) const;
  int64_t integer_or(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const;

  // Throws "FILE: metadata POINTER: WHAT".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  void expect(bool ok, const char* expected) const;
  const nlohmann::json* value_;
  std::string file_, pointer_;
};

// The short form of a JSON value for messages (strings quoted, long values cut).
std::string describe_json(const nlohmann::json& value);

}  // namespace mighty
