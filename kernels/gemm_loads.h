// A row's 4-byte group of activations, read as one word: shared by the paths whose inner loops broadcast or
// splat a group (AVX-512 VNNI, aarch64, WebAssembly). Internal linkage: each unit compiles its own copy with
// its own flags.
#pragma once

#include <cstdint>
#include <cstring>

namespace mighty::kernels {
namespace {

inline uint32_t load_group(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The last, partial group of a plain A: only the bytes that exist (their weights beyond K are zero).
inline uint32_t load_tail(const uint8_t* p, int64_t n) {
  uint32_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(n));
  return v;
}

}  // namespace
}  // namespace mighty::kernels
