#include "compress/models/lower.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/script.h>

#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compress/ops/script_lowering.h"
#include "compress/ops/torch_op.h"
#include "onnx_io/import.h"
#include "runtime/error.h"

namespace mighty::compress {
namespace {

std::string describe(const torch::jit::Node* n) {
  std::ostringstream s;
  s << *n;
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// A shape assertion a scripted module carries (F.adaptive_avg_pool2d's "input must have more than 2
// dimensions"): an If without outputs whose branches do nothing but raise.
bool is_assertion(const torch::jit::Node* n) {
  if (n->kind() != c10::prim::If || n->outputs().size() != 0) return false;
  for (const torch::jit::Block* b : n->blocks())
    for (const torch::jit::Node* inner : b->nodes())
      if (inner->kind() != c10::prim::RaiseException && inner->kind() != c10::prim::Constant) return false;
  return true;
}

// Only non-tensor values (sizes, lists, flags): read by the ops that use them as constants or shape lists,
// where each lowering checks what it needs.
bool only_scalars(const torch::jit::Node* n) {
  if (n->outputs().empty()) return false;
  for (const torch::jit::Value* v : n->outputs())
    if (v->type()->kind() == c10::TypeKind::TensorType) return false;
  return true;
}

// Walks the inlined forward graph: constants and sizes are read by the ops that use them, shape assertions
// and the traced size-to-tensor casts are skipped, ops that vanish at inference pass their input on, every
// other node goes to its op's lowering (compress/ops/).
void lower_node(ScriptLowering& l, const torch::jit::Node* n) {
  const std::string kind = n->kind().toQualString();
  if (kind == "prim::Constant" || kind == "prim::NumToTensor" || only_scalars(n) || is_assertion(n)) return;
  if (kind == "aten::dropout" || kind == "aten::dropout_" || kind == "aten::contiguous")
    return l.alias(n, l.input_of(n, 0));
  const TorchOpDef* def = find_script_op(kind);
  if (!def) {
    throw Error(
        fmt::format("{}: TorchScript op '{}' (node '{}') has no equivalent in mighty's graph IR; "
                    "supported: {}, aten::dropout, aten::contiguous",
                    l.path(), kind, describe(n), script_ops_supported()));
  }
  def->lower(l, n);
}

GraphModule lower_module(ScriptLowering& l, torch::jit::Module& module,
                         const std::vector<int64_t>& input_shape) {
  auto graph = module.get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  const auto inputs = graph->inputs();
  if (inputs.size() != 2) {
    throw Error(
        fmt::format("{}: forward must take exactly one tensor (it takes {})", l.path(), inputs.size() - 1));
  }
  Graph& g = l.graph();
  l.bind_input(inputs[1], g.add("input", OpKind::kInput, {}, {{"shape", input_shape}, {"dtype", "float32"}}));
  for (const torch::jit::Node* n : graph->nodes()) lower_node(l, n);
  const auto outputs = graph->outputs();
  if (outputs.size() != 1 || !l.has_value(outputs[0]))
    throw Error(fmt::format("{}: forward must return one tensor computed by lowered ops", l.path()));
  g.set_output(l.value_of(outputs[0]));
  g.infer_shapes();
  GraphModule m(g);
  set_tensors(m, l.weights(), l.path());
  return m;
}

}  // namespace

void set_tensors(GraphModule& m, const std::map<std::string, torch::Tensor>& tensors,
                 const std::string& path) {
  torch::NoGradGuard no_grad;
  auto params = m->named_parameters(true), buffers = m->named_buffers(true);
  for (const auto& [name, t] : tensors) {
    torch::Tensor* dst = params.find(name);
    if (!dst) dst = buffers.find(name);
    if (!dst || dst->sizes() != t.sizes())
      throw Error(fmt::format("{}: tensor '{}' does not fit the graph", path, name));
    dst->copy_(t);
  }
  m->eval();
}

void ScriptLowering::fail(const torch::jit::Node* n, const std::string& what) const {
  throw Error(fmt::format("{}: TorchScript node '{}': {}", path_, describe(n), what));
}

c10::IValue ScriptLowering::constant(const torch::jit::Node* n, size_t i) const {
  const torch::jit::Value* v = n->input(i);
  if (auto iv = torch::jit::toIValue(v)) return *iv;
  if (v->node()->kind() == c10::prim::ListConstruct) {
    c10::List<int64_t> list;
    for (const auto* item : v->node()->inputs()) {
      auto iv = torch::jit::toIValue(item);
      if (!iv || !iv->isInt()) fail(n, fmt::format("argument {} must be a constant list of integers", i));
      list.push_back(iv->toInt());
    }
    return list;
  }
  fail(n, fmt::format("argument {} must be a constant (weights and settings are fixed after freezing)", i));
}

torch::Tensor ScriptLowering::tensor(const torch::jit::Node* n, size_t i) const {
  const auto iv = constant(n, i);
  if (!iv.isTensor()) fail(n, fmt::format("argument {} must be a tensor", i));
  return iv.toTensor().detach().to(torch::kFloat32).contiguous();
}

bool ScriptLowering::has_tensor(const torch::jit::Node* n, size_t i) const {
  return !constant(n, i).isNone();
}

int64_t ScriptLowering::square(const torch::jit::Node* n, size_t i, const char* what) const {
  const auto iv = constant(n, i);
  if (iv.isInt()) return iv.toInt();
  const auto list = iv.toIntVector();
  if (list.empty()) return -1;
  for (auto v : list) {
    if (v != list[0]) fail(n, fmt::format("{} [{}] is not square", what, fmt::join(list, ", ")));
  }
  return list[0];
}

int ScriptLowering::input_of(const torch::jit::Node* n, size_t i) const {
  auto it = values_.find(n->input(i));
  if (it == values_.end()) fail(n, fmt::format("argument {} is not the output of a lowered op", i));
  return it->second;
}

std::vector<int> ScriptLowering::inputs_of_list(const torch::jit::Node* n, size_t i) const {
  const torch::jit::Node* list = n->input(i)->node();
  if (list->kind() != c10::prim::ListConstruct)
    fail(n, fmt::format("argument {} must be a list of tensors", i));
  std::vector<int> out;
  for (const torch::jit::Value* v : list->inputs()) {
    auto it = values_.find(v);
    if (it == values_.end()) fail(n, "a listed tensor is not the output of a lowered op");
    out.push_back(it->second);
  }
  return out;
}

std::vector<std::optional<int64_t>> ScriptLowering::int_list(const torch::jit::Node* n, size_t i) const {
  std::vector<std::optional<int64_t>> out;
  const torch::jit::Value* v = n->input(i);
  if (auto iv = torch::jit::toIValue(v)) {
    if (!iv->isIntList()) fail(n, fmt::format("argument {} must be a list of integers", i));
    for (int64_t x : iv->toIntVector()) out.emplace_back(x);
    return out;
  }
  if (v->node()->kind() != c10::prim::ListConstruct)
    fail(n, fmt::format("argument {} must be a list of integers", i));
  for (const torch::jit::Value* item : v->node()->inputs()) {
    auto iv = torch::jit::toIValue(item);
    if (iv && !iv->isInt()) fail(n, fmt::format("argument {} must be a list of integers", i));
    out.push_back(iv ? std::optional<int64_t>(iv->toInt()) : std::nullopt);
  }
  return out;
}

bool ScriptLowering::is_constant(const torch::jit::Node* n, size_t i) const {
  return torch::jit::toIValue(n->input(i)).has_value();
}

std::string ScriptLowering::add(const torch::jit::Node* n, const char* prefix, OpKind op,
                                std::vector<int> inputs, nlohmann::json attrs) {
  std::string name = fmt::format("{}_{}", prefix, count_++);
  values_[n->output(0)] = g_.add(name, op, std::move(inputs), std::move(attrs));
  return name;
}

void ScriptLowering::alias(const torch::jit::Node* n, int value) { values_[n->output(0)] = value; }

void copy_parameters(GraphModule& src, GraphModule& dst) {
  torch::NoGradGuard no_grad;
  auto sp = src->named_parameters(true), sb = src->named_buffers(true);
  for (auto& kv : dst->named_parameters(true)) {
    if (auto* t = sp.find(kv.key())) kv.value().copy_(*t);
  }
  for (auto& kv : dst->named_buffers(true)) {
    if (auto* t = sb.find(kv.key())) kv.value().copy_(*t);
  }
}

GraphModule with_batchnorm_after_convs(GraphModule& model, int* inserted) {
  const Graph& g = model->graph();
  const auto& nodes = g.nodes();
  constexpr double kEps = 1e-5;
  std::vector<int> remap(nodes.size(), -1);
  std::vector<std::string> added;
  Graph out;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    std::vector<int> inputs;
    for (int in : n.inputs) inputs.push_back(remap[in]);
    remap[i] = out.add(n.name, n.op, inputs, n.attrs);
    if (n.op != OpKind::kConv2d) continue;
    const auto& users = g.users(static_cast<int>(i));
    if (users.size() == 1 && nodes[users[0]].op == OpKind::kBatchNorm2d) continue;
    const int64_t channels = n.attrs.at("out_channels").get<int64_t>();
    remap[i] =
        out.add(n.name + "_bn", OpKind::kBatchNorm2d, {remap[i]}, {{"channels", channels}, {"eps", kEps}});
    added.push_back(n.name + "_bn");
  }
  out.set_output(remap[g.output()]);
  GraphModule result(out);
  copy_parameters(model, result);
  torch::NoGradGuard no_grad;
  auto buffers = result->named_buffers(true);
  for (const std::string& bn : added) buffers[bn + ".running_var"].fill_(1.0 - kEps);
  result->train(model->is_training());
  *inserted = static_cast<int>(added.size());
  return result;
}

GraphModule lower_torchscript(const std::string& path, const std::vector<int64_t>& input_shape) {
  if (!std::filesystem::exists(path))
    throw Error(fmt::format("{}: TorchScript student file not found", path));
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU);
    module.eval();
    module = torch::jit::freeze(module, c10::nullopt, /*optimize_numerics=*/false);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: not a loadable TorchScript module: {}", path, e.what_without_backtrace()));
  }
  ScriptLowering lowering(path);
  GraphModule lowered = lower_module(lowering, module, input_shape);
  // The lowered model must compute what the TorchScript module computes.
  torch::NoGradGuard no_grad;
  std::vector<int64_t> shape = {3};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  torch::manual_seed(0);
  const auto x = torch::randn(shape);
  const auto expected = module.forward({x}).toTensor();
  const auto got = lowered->forward(x);
  if (expected.sizes() != got.sizes() || !torch::allclose(expected, got, 1e-4, 1e-4)) {
    throw Error(
        fmt::format("{}: the lowered graph does not reproduce the module (max difference {})", path,
                    expected.sizes() == got.sizes() ? (expected - got).abs().max().item<double>() : -1.0));
  }
  return lowered;
}

}  // namespace mighty::compress

namespace mighty::compress {

GraphModule import_onnx(const std::string& path, const std::vector<int64_t>& input_shape) {
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: ONNX file not found", path));
  onnx_io::ImportOptions options;
  options.input_shape = input_shape;
  const onnx_io::Imported imported = onnx_io::import_file(path, options);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : imported.tensors)
    tensors[name] = torch::from_blob(const_cast<float*>(t.data.data()), t.shape, torch::kFloat32);
  GraphModule m(imported.graph);
  set_tensors(m, tensors, path);
  return m;
}

}  // namespace mighty::compress
