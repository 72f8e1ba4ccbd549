#include "runtime/format/inspect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"
#include "runtime/graph/graph.h"

namespace mighty {
namespace {

double zero_fraction(const TensorView& t) {
  const int64_t n = t.numel();
  if (n == 0) return 0.0;
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    switch (t.type) {
      case TensorType::kFloat32:
        zeros += t.as<float>()[i] == 0.0f;
        break;
      case TensorType::kInt8:
        zeros += t.as<int8_t>()[i] == 0;
        break;
      case TensorType::kUint8:
        zeros += t.as<uint8_t>()[i] == 0;
        break;
      case TensorType::kInt32:
        zeros += t.as<int32_t>()[i] == 0;
        break;
    }
  }
  return static_cast<double>(zeros) / static_cast<double>(n);
}

std::string human_bytes(uint64_t b) {
  if (b < 10 * 1024) return fmt::format("{} B", b);
  if (b < 10 * 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.1f} MiB", b / (1024.0 * 1024.0));
}

}  // namespace

std::string describe_artifact(const Artifact& a) {
  const auto& m = a.metadata();
  std::string out = fmt::format("{}: {} ({} bytes), {} tensors\n", a.name(), human_bytes(a.file_size()),
                                a.file_size(), a.tensors().size());
  for (const char* key : {"producer", "producer_version", "recipe_hash", "data_hash"}) {
    if (m.contains(key) && m[key].is_string())
      out += fmt::format("  {:<18}{}\n", key, m[key].get<std::string>());
  }
  if (m.contains("input")) out += fmt::format("  {:<18}{}\n", "input", m["input"].dump());
  if (m.contains("labels") && m["labels"].is_array()) {
    out += fmt::format("  {:<18}{} labels\n", "labels", m["labels"].size());
  }
  if (m.contains("verify") && m["verify"].is_object() && m["verify"].contains("pass") &&
      m["verify"]["pass"].is_boolean()) {
    out += fmt::format("  {:<18}{}\n", "verify", m["verify"]["pass"].get<bool>() ? "pass" : "FAIL");
  }
  if (m.contains("cascade") && m["cascade"].is_object() && m["cascade"].contains("threshold") &&
      m["cascade"]["threshold"].is_number()) {  // chosen by verify; mighty-run serve's cascades take it
    const auto& c = m["cascade"];
    const double blend = c.contains("blend") && c["blend"].is_number() ? c["blend"].get<double>() : 0.0;
    out += fmt::format(
        "  {:<18}the teacher ({}){} when the top-1 probability < {:.4f}\n", "cascade",
        c.contains("teacher") && c["teacher"].is_string() ? c["teacher"].get<std::string>() : "?",
        blend > 0
            ? fmt::format(", mixed {:.2f} : {:.2f} with this model's probabilities,", 1.0 - blend, blend)
            : std::string(),
        c["threshold"].get<double>());
  }
  if (m.contains("onnx") && m["onnx"].is_object()) {  // the ONNX files export wrote beside this file
    const auto& o = m["onnx"];
    std::vector<std::string> files;
    if (o.contains("files") && o["files"].is_array())
      for (const auto& f : o["files"])
        if (f.is_string()) files.push_back(f.get<std::string>());
    const std::string by = o.contains("checked_by") && o["checked_by"].is_string()
                               ? o["checked_by"].get<std::string>()
                               : std::string("?");
    out += fmt::format("  {:<18}{} (checked by {})\n", "onnx",
                       files.empty() ? "-" : fmt::format("{}", fmt::join(files, ", ")), by);
  }
  uint64_t tensor_bytes = 0;
  for (const auto& t : a.tensors()) tensor_bytes += t.stored_bytes;
  out += fmt::format("  {:<18}{} in tensors, {} of header and metadata\n", "sizes", human_bytes(tensor_bytes),
                     human_bytes(a.file_size() - tensor_bytes));
  if (m.contains("graph")) {
    Graph g;
    try {
      g = Graph::from_json(m["graph"]);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", a.name(), e.what()));
    }
    out += "graph:\n";
    for (int i = 0; i < static_cast<int>(g.nodes().size()); ++i) {
      const Node& n = g.nodes()[i];
      out += fmt::format("  {:>3} {:<28} {:<18} [{}]\n", i, n.name, op_name(n.op), fmt::join(n.shape, ", "));
      for (const auto& spec : g.tensors(i)) {
        if (!a.has_tensor(spec.name)) continue;
        const auto& t = a.tensor(spec.name);
        out += fmt::format("        {:<36} {:<8} [{}] sparsity {:.1f}%\n", spec.name,
                           tensor_type_name(t.type), fmt::join(t.shape, ", "), 100.0 * zero_fraction(t));
      }
    }
  }
  out += "tensors:\n";
  for (const auto& t : a.tensors()) {
    const std::string stored =
        t.encoding.empty()
            ? human_bytes(t.bytes)
            : fmt::format("{} ({}, {} dense)", human_bytes(t.stored_bytes), t.encoding, human_bytes(t.bytes));
    out += fmt::format("  {:<40} {:<8} [{}] {}\n", t.name, tensor_type_name(t.type), fmt::join(t.shape, ", "),
                       stored);
  }
  return out;
}

}  // namespace mighty
