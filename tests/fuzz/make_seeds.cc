// Writes seed artifacts for the fuzzer corpus: small valid files of every dtype (argument: output directory).
#include <string>

#include "runtime/artifact.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  mighty::ArtifactWriter w;
  w.set_metadata({{"producer", "seed"}, {"labels", {"a", "b"}}});
  const float f[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  const int8_t i8[3] = {-127, 0, 127};
  w.add_tensor("w", mighty::TensorType::kFloat32, {2, 2}, f);
  w.add_tensor("q", mighty::TensorType::kInt8, {3}, i8);
  w.write(dir + "/two_tensors.mighty");
  mighty::ArtifactWriter empty;
  empty.write(dir + "/empty.mighty");
  return 0;
}
