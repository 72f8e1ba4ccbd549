#include "runtime/io/hash.h"

#include <xxhash.h>

#include <fmt/format.h>

namespace mighty {

uint64_t hash64(std::string_view bytes) { return XXH64(bytes.data(), bytes.size(), 0); }

std::string hash64_hex(std::string_view bytes) { return fmt::format("{:016x}", hash64(bytes)); }

}  // namespace mighty
