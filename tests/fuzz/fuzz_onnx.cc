// libFuzzer target for ONNX import (onnx_io/): see onnx_one.h. Any other exception, a crash or a violation is
// a finding. Built with -DMIGHTY_FUZZ=ON where the build has ONNX (clang), run by scripts/fuzz; seeded by
// make_onnx_seeds from ONNX's backend node tests. Mutations: half structure-aware (onnx_mutator.h), half
// libFuzzer's own byte mutations.
#include <cstdio>
#include <cstdlib>

#include "onnx_mutator.h"
#include "onnx_one.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  if (seed % 2 == 0) {
    const size_t n = mighty::fuzz::mutate_onnx(data, size, max_size, seed / 2);
    if (n > 0) return n;
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string wrong = mighty::fuzz::onnx_one(data, size);
  if (!wrong.empty()) {
    std::fprintf(stderr, "fuzz_onnx: %s\n", wrong.c_str());
    std::abort();
  }
  return 0;
}
