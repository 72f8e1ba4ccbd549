// libFuzzer target for the text path of document classifiers (runtime/text/): see text_one.h. Built with
// -DMIGHTY_FUZZ=ON (clang), run by scripts/fuzz.
#include "target.h"
#include "text_one.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mighty::fuzz::report("fuzz_text", mighty::fuzz::text_one(data, size));
  return 0;
}
