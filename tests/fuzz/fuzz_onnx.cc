// libFuzzer target for ONNX import (onnx_io/): see onnx_one.h. Any other exception, a crash or a violation is
// a finding. Built with -DMIGHTY_FUZZ=ON where the build has ONNX (clang), run by scripts/fuzz; seeded by
// make_onnx_seeds from ONNX's backend node tests. Mutations: half structure-aware (onnx_mutator.h), half
// libFuzzer's own byte mutations.
#include "onnx_mutator.h"
#include "onnx_one.h"
#include "target.h"

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  return mighty::fuzz::mutate_half_structured(data, size, max_size, seed, mighty::fuzz::mutate_onnx);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mighty::fuzz::report("fuzz_onnx", mighty::fuzz::onnx_one(data, size));
  return 0;
}
