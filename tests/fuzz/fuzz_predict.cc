// libFuzzer target for mighty-run serve's request readers (serve/protocol.h): see predict_one.h. Any other
// exception, a crash or a violation is a finding. Built with -DMIGHTY_FUZZ=ON where the native build has the
// server (clang), run by scripts/fuzz.
#include "predict_one.h"
#include "target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mighty::fuzz::report("fuzz_predict", mighty::fuzz::predict_one(data, size));
  return 0;
}
