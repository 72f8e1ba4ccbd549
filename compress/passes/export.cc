#include "compress/passes/export.h"

#include <set>

#include <zlib.h>

#include <fmt/format.h>

#include "compress/data/data.h"
#include "compress/models/use_lite.h"
#include "compress/ops/torch_op.h"
#include "compress/recipe/recipe.h"
#include "runtime/error.h"
#include "runtime/format/input_spec.h"
#include "runtime/io/atomic_file.h"

namespace mighty::compress {

namespace {

ArtifactWriter write(GraphModule& model, const nlohmann::json& metadata, bool int8) {
  ArtifactWriter writer;
  nlohmann::json meta = metadata;
  nlohmann::json graph = model->graph().to_json();
  std::set<std::string> int8_weights;
  if (int8) {
    const auto& nodes = model->graph().nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (!int8_layer(nodes[i], /*static_activation=*/false)) continue;
      graph["nodes"][i]["attrs"]["quant"] = {{"weight", "int8"}, {"activation", "dynamic"}};
      int8_weights.insert(nodes[i].name + ".weight");
    }
  }
  meta["graph"] = graph;
  if (!meta.contains("producer")) meta["producer"] = "mighty";
  writer.set_metadata(meta);
  const auto params = model->named_parameters(true);
  const auto buffers = model->named_buffers(true);
  for (const auto& spec : model->graph().all_tensors()) {
    const torch::Tensor* t = spec.trainable ? params.find(spec.name) : buffers.find(spec.name);
    if (!t) throw Error(fmt::format("export: the model has no tensor '{}'", spec.name));
    if (int8_weights.count(spec.name)) {
      const auto [q, scales] = quantize_weight_per_channel(t->detach());
      writer.add_tensor(spec.name, TensorType::kInt8, spec.shape, q.data_ptr<int8_t>());
      const std::string scale_name = spec.name.substr(0, spec.name.size() - 7) + ".weight_scale";
      writer.add_tensor(scale_name, TensorType::kFloat32, {spec.shape[0]}, scales.data_ptr<float>());
      continue;
    }
    const torch::Tensor data = t->detach().to(torch::kFloat32).contiguous();
    writer.add_tensor(spec.name, TensorType::kFloat32, spec.shape, data.data_ptr<float>());
  }
  return writer;
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> quantize_weight_per_channel(const torch::Tensor& weight) {
  const auto w = weight.to(torch::kFloat32).reshape({weight.size(0), -1});
  auto scales = w.abs().amax(1) / 127.0;
  scales = torch::where(scales > 0, scales, torch::ones_like(scales));
  const auto q = torch::round(w / scales.unsqueeze(1)).clamp(-127, 127).to(torch::kInt8).contiguous();
  return {q, scales.to(torch::kFloat32).contiguous()};
}

void add_input_tensors(ArtifactWriter& writer, const Recipe& recipe, const Dataset& data) {
  if (data.kind != "documents") return;
  const std::string vocab = read_file(expand_data_path(recipe.data.documents.vocab));
  std::string packed(compressBound(static_cast<uLong>(vocab.size())), '\0');
  uLongf size = static_cast<uLongf>(packed.size());
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &size, reinterpret_cast<const Bytef*>(vocab.data()),
                static_cast<uLong>(vocab.size()), Z_BEST_COMPRESSION) != Z_OK) {
    throw Error("export: cannot compress the tokenizer's vocabulary");
  }
  packed.resize(size);
  writer.add_tensor("tokenizer.vocab_json", TensorType::kUint8, {static_cast<int64_t>(size)}, packed.data());
}

nlohmann::json artifact_metadata(const Recipe& recipe, const Dataset& data, const std::string& role) {
  InputSpec input;
  input.kind = data.kind;
  nlohmann::json labels = nlohmann::json::array();
  if (data.kind == "images") {
    input.shape = data.input_shape();
    input.mean = static_cast<float>(data.images.mean);
    input.std = static_cast<float>(data.images.std);
    labels = data.images.class_names;
  } else if (data.kind == "documents") {
    input.max_tokens = recipe.data.documents.max_tokens;
    input.max_bytes = recipe.data.documents.max_bytes;
    input.vocab_json_bytes = read_file(expand_data_path(recipe.data.documents.vocab)).size();
    labels = data.images.class_names;
  } else {
    input.vocab = data.text.vocab;
    input.context = data.text.context;
  }
  return {{"producer", "mighty"},     {"producer_version", "0.1.0"},
          {"recipe", recipe.name},    {"recipe_hash", recipe.hash()},
          {"data_hash", data.hash},   {"role", role},
          {"input", input.to_json()}, {"labels", labels}};
}

ArtifactWriter export_use_lite(UseLiteClassifier& model, const Recipe& recipe, const Dataset& data,
                               bool int8) {
  GraphModule graph = use_lite_graph(model, recipe.data.documents.max_tokens);
  const nlohmann::json metadata = artifact_metadata(recipe, data, int8 ? "teacher_int8" : "teacher_fp32");
  ArtifactWriter writer = int8 ? export_int8_dynamic(graph, metadata) : export_fp32(graph, metadata);
  add_input_tensors(writer, recipe, data);
  return writer;
}

ArtifactWriter export_fp32(GraphModule& model, const nlohmann::json& metadata) {
  return write(model, metadata, false);
}

ArtifactWriter export_int8_dynamic(GraphModule& model, const nlohmann::json& metadata) {
  return write(model, metadata, true);
}

}  // namespace mighty::compress
