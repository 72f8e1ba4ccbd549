#pragma once

#include <string>

#include "runtime/format/artifact.h"

namespace mighty {

// A readable description of an artifact: provenance, input and labels, the graph (op, output shape, and the
// dtype, shape and sparsity of each node's tensors), the tensor table and the sizes.
std::string describe_artifact(const Artifact& artifact);

}  // namespace mighty
