// libFuzzer target for the text path of document classifiers (runtime/text/): see text_one.h. Built with
// -DMIGHTY_FUZZ=ON (clang), run by scripts/fuzz.
#include <cstdio>
#include <cstdlib>

#include "text_one.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string wrong = mighty::fuzz::text_one(data, size);
  if (!wrong.empty()) {
    std::fprintf(stderr, "fuzz_text: %s\n", wrong.c_str());
    std::abort();
  }
  return 0;
}
