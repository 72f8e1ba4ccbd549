// libFuzzer target for ONNX import (onnx_io/): see onnx_one.h. Any other exception, a crash or a violation is
// a finding. Built with -DMIGHTY_FUZZ=ON where the build has ONNX (clang), run by scripts/fuzz; seeded by
// make_onnx_seeds from ONNX's backend node tests.
#include <cstdio>
#include <cstdlib>

#include "onnx_one.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string wrong = mighty::fuzz::onnx_one(data, size);
  if (!wrong.empty()) {
    std::fprintf(stderr, "fuzz_onnx: %s\n", wrong.c_str());
    std::abort();
  }
  return 0;
}
