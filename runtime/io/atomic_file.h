#pragma once

#include <string>
#include <string_view>

namespace mighty {

// Writes `bytes` to a temporary file beside `path`, flushes it to disk, then renames it over `path`, so a
// crash leaves either the old file or the new one under that name, never a half-written one. Throws
// mighty::Error.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; a missing or unreadable file is a mighty::Error naming it.
std::string read_file(const std::string& path);

}  // namespace mighty
