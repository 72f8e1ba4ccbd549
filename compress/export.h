// Export of a trained LibTorch model to the .mighty artifact. This increment writes the fp32 form: the graph
// IR and every tensor the graph names, copied by name from the module (they were registered under those
// names).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "compress/zoo.h"
#include "runtime/artifact.h"

namespace mighty::compress {

// The writer for `model` with `metadata` (producer, input spec, labels, ...) merged in; "graph" is filled
// here.
ArtifactWriter export_fp32(GraphModule& model, const nlohmann::json& metadata);

}  // namespace mighty::compress
