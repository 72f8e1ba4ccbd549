#include "compress/export.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace mighty::compress {

ArtifactWriter export_fp32(GraphModule& model, const nlohmann::json& metadata) {
  ArtifactWriter writer;
  nlohmann::json meta = metadata;
  meta["graph"] = model->graph().to_json();
  if (!meta.contains("producer")) meta["producer"] = "mighty";
  writer.set_metadata(meta);
  const auto params = model->named_parameters(true);
  const auto buffers = model->named_buffers(true);
  for (const auto& spec : model->graph().all_tensors()) {
    const torch::Tensor* t = spec.trainable ? params.find(spec.name) : buffers.find(spec.name);
    if (!t) throw Error(fmt::format("export: the model has no tensor '{}'", spec.name));
    const torch::Tensor data = t->detach().to(torch::kFloat32).contiguous();
    writer.add_tensor(spec.name, TensorType::kFloat32, spec.shape, data.data_ptr<float>());
  }
  return writer;
}

}  // namespace mighty::compress
