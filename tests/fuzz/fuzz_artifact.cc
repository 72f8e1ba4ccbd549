// libFuzzer target for the artifact reader, the session built on it and a run of that session: see
// artifact_one.h. Mutations: half structure-aware (artifact_mutator.h: the metadata JSON or a tensor element
// changed, the checksums written again), half libFuzzer's own byte mutations, each also tried with the header
// checksum recomputed so that byte mutations reach the metadata and tensor-table checks behind it. Built with
// -DMIGHTY_FUZZ=ON (clang), run by scripts/fuzz.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "artifact_mutator.h"
#include "artifact_one.h"
#include "target.h"

namespace {

void check(const std::string& bytes) {
  mighty::fuzz::report("fuzz_artifact", mighty::fuzz::artifact_one(bytes));
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  return mighty::fuzz::mutate_half_structured(data, size, max_size, seed, mighty::fuzz::mutate_artifact);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  check(bytes);
  if (size >= 64) {
    uint64_t meta_size = 0;
    for (int i = 7; i >= 0; --i) meta_size = (meta_size << 8) | data[24 + i];
    if (meta_size <= size - 64) {
      XXH64_state_t* st = XXH64_createState();
      XXH64_reset(st, 0);
      XXH64_update(st, data, 48);
      XXH64_update(st, data + 64, meta_size);
      const uint64_t h = XXH64_digest(st);
      XXH64_freeState(st);
      for (int i = 0; i < 8; ++i) bytes[48 + i] = static_cast<char>((h >> (8 * i)) & 0xff);
      check(bytes);
    }
  }
  return 0;
}
