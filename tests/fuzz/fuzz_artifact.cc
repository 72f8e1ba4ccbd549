// libFuzzer target for the artifact reader and the session built on it: any byte string must either load (and
// then every tensor view must lie inside the input) or fail with mighty::Error. Each input is tried as it is
// and with its header checksum recomputed, so mutations also reach the metadata and tensor-table checks
// behind the checksum. Built with -DMIGHTY_FUZZ=ON (clang), run by scripts/fuzz.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/format/inspect.h"
#include "runtime/text/document_model.h"

namespace {

void try_load(const std::string& bytes) {
  try {
    const mighty::Artifact a = mighty::Artifact::from_bytes(bytes, "fuzz");
    uint64_t total = 0;
    for (const auto& t : a.tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.data);
      for (uint64_t i = 0; i < t.bytes; ++i) total += p[i];  // reads every byte: ASan checks the bounds
    }
    asm volatile("" : : "r"(total));
    mighty::describe_artifact(a);  // mighty-run inspect
    // A valid container goes on to the session, which checks the graph, the tensors against it and the input
    // spec, and for a document classifier to its tokenizer.
    if (a.metadata().contains("graph")) {
      const mighty::Session session(mighty::Artifact::from_bytes(bytes, "fuzz"));
      if (session.has_input_spec() && session.input_spec().kind == "documents")
        mighty::DocumentModel doc(session);
    }
  } catch (const mighty::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try_load(bytes);
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
      try_load(bytes);
    }
  }
  return 0;
}
