#include "compress/lower.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/script.h>

#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"

namespace mighty::compress {
namespace {

constexpr const char* kSupported =
    "aten::conv2d, aten::batch_norm, aten::linear, aten::relu, aten::gelu, aten::max_pool2d, "
    "aten::avg_pool2d, "
    "aten::adaptive_avg_pool2d (to 1x1), aten::flatten, aten::add, aten::softmax, aten::dropout";

std::string describe(const torch::jit::Node* n) {
  std::ostringstream s;
  s << *n;
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class Lowering {
 public:
  explicit Lowering(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const torch::jit::Node* n, const std::string& what) const {
    throw Error(fmt::format("{}: TorchScript node '{}': {}", path_, describe(n), what));
  }

  c10::IValue constant(const torch::jit::Node* n, size_t i) const {
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

  torch::Tensor tensor(const torch::jit::Node* n, size_t i) const {
    const auto iv = constant(n, i);
    if (!iv.isTensor()) fail(n, fmt::format("argument {} must be a tensor", i));
    return iv.toTensor().detach().to(torch::kFloat32).contiguous();
  }

  bool has_tensor(const torch::jit::Node* n, size_t i) const { return !constant(n, i).isNone(); }

  // A square size from an int list ([k] or [k, k]) or an int.
  int64_t square(const torch::jit::Node* n, size_t i, const char* what) const {
    const auto iv = constant(n, i);
    if (iv.isInt()) return iv.toInt();
    const auto list = iv.toIntVector();
    if (list.empty()) return -1;
    for (auto v : list) {
      if (v != list[0]) fail(n, fmt::format("{} [{}] is not square", what, fmt::join(list, ", ")));
    }
    return list[0];
  }

  int input_of(const torch::jit::Node* n, size_t i) const {
    auto it = values_.find(n->input(i));
    if (it == values_.end()) fail(n, fmt::format("argument {} is not the output of a lowered op", i));
    return it->second;
  }

  GraphModule lower(torch::jit::Module& module, const std::vector<int64_t>& input_shape) {
    auto graph = module.get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);
    const auto inputs = graph->inputs();
    if (inputs.size() != 2) {
      throw Error(
          fmt::format("{}: forward must take exactly one tensor (it takes {})", path_, inputs.size() - 1));
    }
    values_[inputs[1]] = g_.add("input", OpKind::kInput, {}, {{"shape", input_shape}, {"dtype", "float32"}});
    for (const torch::jit::Node* n : graph->nodes()) lower_node(n);
    const auto outputs = graph->outputs();
    if (outputs.size() != 1 || !values_.count(outputs[0])) {
      throw Error(fmt::format("{}: forward must return one tensor computed by lowered ops", path_));
    }
    g_.set_output(values_.at(outputs[0]));
    g_.infer_shapes();
    GraphModule m(g_);
    torch::NoGradGuard no_grad;
    auto params = m->named_parameters(true), buffers = m->named_buffers(true);
    for (const auto& [name, t] : weights_) {
      torch::Tensor* dst = params.find(name);
      if (!dst) dst = buffers.find(name);
      if (!dst || dst->sizes() != t.sizes()) {
        throw Error(fmt::format("{}: lowered tensor '{}' does not fit the graph", path_, name));
      }
      dst->copy_(t);
    }
    m->eval();
    return m;
  }

 private:
  std::string name(const char* op) { return fmt::format("{}_{}", op, count_++); }

  void lower_node(const torch::jit::Node* n) {
    const std::string kind = n->kind().toQualString();
    if (kind == "prim::Constant" || kind == "prim::ListConstruct") return;
    auto out = [&](int index) { values_[n->output(0)] = index; };
    if (kind == "aten::conv2d") {
      const auto w = tensor(n, 1);
      if (w.dim() != 4 || w.size(2) != w.size(3)) fail(n, "only square 2-D kernels are supported");
      if (square(n, 5, "dilation") != 1) fail(n, "dilation must be 1");
      if (constant(n, 6).toInt() != 1) fail(n, "groups must be 1");
      const std::string nm = name("conv");
      const bool bias = has_tensor(n, 2);
      out(g_.add(nm, OpKind::kConv2d, {input_of(n, 0)},
                 {{"in_channels", w.size(1)},
                  {"out_channels", w.size(0)},
                  {"kernel", w.size(2)},
                  {"stride", square(n, 3, "stride")},
                  {"padding", square(n, 4, "padding")},
                  {"bias", bias}}));
      weights_[nm + ".weight"] = w;
      if (bias) weights_[nm + ".bias"] = tensor(n, 2);
    } else if (kind == "aten::batch_norm") {
      if (constant(n, 5).toBool()) fail(n, "batch_norm must be in eval mode (training=False)");
      const double eps = constant(n, 7).toDouble();
      if (std::abs(eps - 1e-5) > 1e-12)
        fail(n, fmt::format("eps {} (the runtime's BatchNorm uses 1e-5)", eps));
      if (!has_tensor(n, 1) || !has_tensor(n, 2)) fail(n, "batch_norm needs an affine weight and bias");
      const std::string nm = name("bn");
      const auto mean = tensor(n, 3);
      out(g_.add(nm, OpKind::kBatchNorm2d, {input_of(n, 0)}, {{"channels", mean.size(0)}}));
      weights_[nm + ".weight"] = tensor(n, 1);
      weights_[nm + ".bias"] = tensor(n, 2);
      weights_[nm + ".running_mean"] = mean;
      weights_[nm + ".running_var"] = tensor(n, 4);
    } else if (kind == "aten::linear") {
      const auto w = tensor(n, 1);
      const std::string nm = name("linear");
      const bool bias = has_tensor(n, 2);
      out(g_.add(nm, OpKind::kLinear, {input_of(n, 0)},
                 {{"in_features", w.size(1)}, {"out_features", w.size(0)}, {"bias", bias}}));
      weights_[nm + ".weight"] = w;
      if (bias) weights_[nm + ".bias"] = tensor(n, 2);
    } else if (kind == "aten::relu" || kind == "aten::relu_") {
      out(g_.add(name("relu"), OpKind::kReLU, {input_of(n, 0)}));
    } else if (kind == "aten::gelu") {
      if (n->inputs().size() > 1 && constant(n, 1).toStringRef() != "none")
        fail(n, "only the exact (erf) GELU");
      out(g_.add(name("gelu"), OpKind::kGELU, {input_of(n, 0)}));
    } else if (kind == "aten::max_pool2d" || kind == "aten::avg_pool2d") {
      const bool is_max = kind == "aten::max_pool2d";
      const int64_t k = square(n, 1, "kernel");
      int64_t stride = square(n, 2, "stride");
      if (stride < 0) stride = k;  // an empty stride list means the kernel size
      if (square(n, 3, "padding") != 0) fail(n, "padding must be 0");
      if (is_max && square(n, 4, "dilation") != 1) fail(n, "dilation must be 1");
      if (constant(n, is_max ? 5 : 4).toBool()) fail(n, "ceil_mode must be False");
      out(g_.add(name(is_max ? "maxpool" : "avgpool"), is_max ? OpKind::kMaxPool2d : OpKind::kAvgPool2d,
                 {input_of(n, 0)}, {{"kernel", k}, {"stride", stride}}));
    } else if (kind == "aten::adaptive_avg_pool2d") {
      if (square(n, 1, "output size") != 1) fail(n, "only a 1x1 output (global average pooling)");
      out(g_.add(name("gap"), OpKind::kGlobalAvgPool, {input_of(n, 0)}));
    } else if (kind == "aten::flatten") {
      if (constant(n, 1).toInt() != 1 || constant(n, 2).toInt() != -1) fail(n, "only flatten(x, 1, -1)");
      out(g_.add(name("flatten"), OpKind::kFlatten, {input_of(n, 0)}));
    } else if (kind == "aten::add" || kind == "aten::add_") {
      if (constant(n, 2).toScalar().toDouble() != 1.0) fail(n, "alpha must be 1");
      out(g_.add(name("add"), OpKind::kAdd, {input_of(n, 0), input_of(n, 1)}));
    } else if (kind == "aten::softmax") {
      const int64_t dim = constant(n, 1).toInt();
      if (dim != -1 && dim != 1) fail(n, "softmax must be over the last dimension");
      out(g_.add(name("softmax"), OpKind::kSoftmax, {input_of(n, 0)}));
    } else if (kind == "aten::dropout" || kind == "aten::dropout_") {
      values_[n->output(0)] = input_of(n, 0);  // inference: the identity
    } else {
      throw Error(
          fmt::format("{}: TorchScript op '{}' (node '{}') has no equivalent in mighty's graph IR; "
                      "supported: {}",
                      path_, kind, describe(n), kSupported));
    }
  }

  std::string path_;
  Graph g_;
  std::map<const torch::jit::Value*, int> values_;
  std::map<std::string, torch::Tensor> weights_;
  int count_ = 0;
};

}  // namespace

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
  Lowering lowering(path);
  GraphModule lowered = lowering.lower(module, input_shape);
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
