// libFuzzer target for mighty-run serve's request readers (serve/protocol.h): see predict_one.h. Any other
// exception, a crash or a violation is a finding. Built with -DMIGHTY_FUZZ=ON where the native build has the
// server (clang), run by scripts/fuzz.
#include <cstdio>
#include <cstdlib>

#include "predict_one.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string wrong = mighty::fuzz::predict_one(data, size);
  if (!wrong.empty()) {
    std::fprintf(stderr, "fuzz_predict: %s\n", wrong.c_str());
    std::abort();
  }
  return 0;
}
