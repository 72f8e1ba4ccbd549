// What every libFuzzer target here shares: a check's verdict ("" passes; anything else is printed and aborts,
// which libFuzzer records as a finding), and a custom mutator that is half structure-aware (the target's own
// mutation, when it applies) and half libFuzzer's byte mutations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace mighty::fuzz {

inline void report(const char* target, const std::string& wrong) {
  if (wrong.empty()) return;
  std::fprintf(stderr, "%s: %s\n", target, wrong.c_str());
  std::abort();
}

// `structured` returns the new size, or 0 when it does not apply (the bytes do not parse, or the result would
// not fit): then the bytes are mutated instead.
inline size_t mutate_half_structured(uint8_t* data, size_t size, size_t max_size, unsigned int seed,
                                     size_t (*structured)(uint8_t*, size_t, size_t, unsigned int)) {
  if (seed % 2 == 0) {
    const size_t n = structured(data, size, max_size, seed / 2);
    if (n > 0) return n;
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

}  // namespace mighty::fuzz
