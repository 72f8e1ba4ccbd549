// JSON text parsed with the position of every value and key, and with duplicate keys rejected (nlohmann keeps
// the last one silently). Recipe errors use the positions to say "file:line:column: /json/path: problem".
#pragma once

#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace mighty::compress {

struct JsonSource {
  std::string file;  // for messages
  nlohmann::json value;
  std::map<std::string, std::pair<int, int>> positions;  // JSON pointer -> (line, column), 1-based

  // "file:line:col" for the pointer, or its nearest located ancestor.
  std::string where(const std::string& pointer) const;
};

// Parses `text`; a syntax error or duplicated key throws mighty::Error with file, line, column and path.
JsonSource parse_json_source(const std::string& text, const std::string& file);

}  // namespace mighty::compress
