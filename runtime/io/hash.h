#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mighty {

// xxHash64 (seed 0) of a byte string; used for recipe, data and tensor checksums.
uint64_t hash64(std::string_view bytes);
// The same, as 16 lowercase hex digits.
std::string hash64_hex(std::string_view bytes);

}  // namespace mighty
