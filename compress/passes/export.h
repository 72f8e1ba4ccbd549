// Export of a trained LibTorch model to the .mighty artifact: the graph IR and every tensor the graph names,
// copied by name from the module (they were registered under those names), in fp32 or with int8 weights.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "compress/models/zoo.h"
#include "runtime/format/artifact.h"

namespace mighty::compress {

// The writer for `model` with `metadata` (producer, input spec, labels, ...) merged in; "graph" is filled
// here.
ArtifactWriter export_fp32(GraphModule& model, const nlohmann::json& metadata);

// The same with every Linear and Conv2d weight as int8 (symmetric per output channel: scale = max|w| / 127,
// q = round(w / scale) in [-127, 127], "<node>.weight_scale" beside it) and activations quantized dynamically
// per row by the runtime. Everything else stays fp32. No calibration is needed.
ArtifactWriter export_int8_dynamic(GraphModule& model, const nlohmann::json& metadata);

// The metadata of an artifact made from `recipe` on `data`: producer, hashes, `role`, input spec and labels.
struct Recipe;
struct Dataset;
nlohmann::json artifact_metadata(const Recipe& recipe, const Dataset& data, const std::string& role);

// What the runtime needs besides the model to read the recipe's raw input: for documents, the tokenizer's
// vocab.json (zlib-compressed, tensor "tokenizer.vocab_json"). Nothing for images and text.
void add_input_tensors(ArtifactWriter& writer, const Recipe& recipe, const Dataset& data);

// A USE-Lite teacher (compress/models/use_lite.h) as the runtime runs it: use_lite_graph over the recipe's
// max_tokens, the tokenizer inside (add_input_tensors); fp32, or with int8 Linear weights and dynamic
// activations.
class UseLiteClassifier;
ArtifactWriter export_use_lite(UseLiteClassifier& model, const Recipe& recipe, const Dataset& data,
                               bool int8 = false);

// Per-output-channel symmetric int8 quantization of a weight [out, ...]: {int8 [out, rest], float scales
// [out]}.
std::pair<torch::Tensor, torch::Tensor> quantize_weight_per_channel(const torch::Tensor& weight);

}  // namespace mighty::compress
