// Accuracy-aware quantization (as NNCF's quantize_with_accuracy_control): when the int8 model loses more
// validation quality than allowed against the float student, layers go back — to fp32, or to dynamic
// activations — one at a time in order of measured sensitivity (each layer's gain when it alone falls back),
// until the loss is within the limit. Every step is reported; when even the last step misses the limit, the
// stage fails with one line saying so (nothing is shipped silently).
#pragma once

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/passes/quantize.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

// quantize_model, then the fallback loop when spec.accuracy_control.max_drop >= 0; report gains
// "accuracy_control": {metric, max_drop, fp32, int8 (first try), sensitivity: [{layer, quality, gain}],
// steps:
// [{layer, quality, drop}], fallback, final: {quality, drop, layers_fallen_back}, met}.
QuantizedModel quantize_with_accuracy_control(GraphModule& student, const QuantizeSpec& spec,
                                              const Dataset& data, nlohmann::json& report);

}  // namespace mighty::compress
