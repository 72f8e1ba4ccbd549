#include "compress/models/zoo.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compress/data/data.h"
#include "compress/ops/torch_op.h"
#include "runtime/error.h"

namespace mighty::compress {
namespace {

using nlohmann::json;

OpKind activation_op(const std::string& name) { return name == "gelu" ? OpKind::kGELU : OpKind::kReLU; }

json with_dropout(json attrs, double p) {
  if (p > 0) attrs["train_dropout"] = p;
  return attrs;
}

// An activation node by its recipe name: relu, gelu, relu6 (Clip to [0, 6]) or hardswish.
int add_activation(Graph& g, const std::string& name, const std::string& activation, int x,
                   json attrs = json::object()) {
  if (activation == "relu6") {
    attrs["min"] = 0.0;
    attrs["max"] = 6.0;
    return g.add(name, OpKind::kClip, {x}, attrs);
  }
  if (activation == "hardswish") return g.add(name, OpKind::kHardSwish, {x}, attrs);
  return g.add(name, activation_op(activation), {x}, attrs);
}

int classifier_head(Graph& g, int x, int64_t width, const ModelSpec& s) {
  for (size_t i = 0; i < s.hidden.size(); ++i) {
    x = g.add(fmt::format("fc.{}", i), OpKind::kLinear, {x},
              {{"in_features", width}, {"out_features", s.hidden[i]}});
    x = add_activation(g, fmt::format("fc.{}.act", i), s.activation, x,
                       with_dropout(json::object(), s.dropout));
    width = s.hidden[i];
  }
  return g.add("out", OpKind::kLinear, {x}, {{"in_features", width}, {"out_features", s.classes}});
}

void build_mlp(Graph& g, const ModelSpec& s) {
  int x = g.add("input", OpKind::kInput, {}, {{"shape", s.input_shape}, {"dtype", "float32"}});
  int64_t width = 1;
  for (auto d : s.input_shape) width *= d;
  x = g.add("flatten", OpKind::kFlatten, {x});
  classifier_head(g, x, width, s);
}

void build_cnn(Graph& g, const ModelSpec& s) {
  if (s.input_shape.size() != 3) throw Error("cnn: input_shape must be [C, H, W]");
  int x = g.add("input", OpKind::kInput, {}, {{"shape", s.input_shape}, {"dtype", "float32"}});
  int64_t channels = s.input_shape[0];
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    const auto& b = s.blocks[i];
    const std::string p = fmt::format("features.{}", i);
    x = g.add(p + ".conv", OpKind::kConv2d, {x},
              {{"in_channels", channels},
               {"out_channels", b.channels},
               {"kernel", b.kernel},
               {"stride", b.stride},
               {"padding", b.padding},
               {"bias", !b.batchnorm}});
    if (b.batchnorm) x = g.add(p + ".bn", OpKind::kBatchNorm2d, {x}, {{"channels", b.channels}});
    x = g.add(p + ".act", activation_op(b.activation), {x});
    if (b.pool != "none") {
      x = g.add(p + ".pool", b.pool == "max" ? OpKind::kMaxPool2d : OpKind::kAvgPool2d, {x},
                {{"kernel", b.pool_size}, {"stride", b.pool_size}});
    }
    channels = b.channels;
  }
  g.infer_shapes();  // the head's input width depends on the feature map's size
  const Shape fmap = g.nodes()[x].shape;
  int64_t width = channels;
  if (s.global_pool) {
    x = g.add("pool", OpKind::kGlobalAvgPool, {x}, with_dropout(json::object(), s.dropout));
  } else {
    x = g.add("flatten", OpKind::kFlatten, {x}, with_dropout(json::object(), s.dropout));
    width = fmap[0] * fmap[1] * fmap[2];
  }
  classifier_head(g, x, width, s);
}

// A width-multiplied channel count: the nearest multiple of `divisor`, at least `divisor`, never more than
// 10% below the exact product (torchvision's _make_divisible).
int64_t scaled_channels(int64_t channels, const ModelSpec& s) {
  const double exact = static_cast<double>(channels) * s.width;
  const int64_t d = s.divisor;
  int64_t n = std::max<int64_t>(d, static_cast<int64_t>(exact + static_cast<double>(d) / 2.0) / d * d);
  if (static_cast<double>(n) < 0.9 * exact) n += d;
  return n;
}

// Conv2d (no bias) -> BatchNorm2d -> the activation (none when empty): prefix.conv, .bn, .act.
int conv_bn(Graph& g, const std::string& prefix, int x, int64_t in, int64_t out, int64_t kernel,
            int64_t stride, const std::string& activation, int64_t groups = 1) {
  x = g.add(prefix + ".conv", OpKind::kConv2d, {x},
            {{"in_channels", in},
             {"out_channels", out},
             {"kernel", kernel},
             {"stride", stride},
             {"padding", kernel / 2},
             {"groups", groups},
             {"bias", false}});
  x = g.add(prefix + ".bn", OpKind::kBatchNorm2d, {x}, {{"channels", out}});
  return activation.empty() ? x : add_activation(g, prefix + ".act", activation, x);
}

int image_input(Graph& g, const ModelSpec& s) {
  if (s.input_shape.size() != 3) throw Error(fmt::format("{}: input_shape must be [C, H, W]", s.arch));
  return g.add("input", OpKind::kInput, {}, {{"shape", s.input_shape}, {"dtype", "float32"}});
}

// One block of a stage: given its input value and width, returns its output value.
using BlockFn = int (*)(Graph& g, const std::string& prefix, int x, int64_t in, int64_t out, int64_t stride,
                        const NetStageSpec& stage, const ModelSpec& s);

// The stem 3x3 conv and every stage's blocks ("blocks.<i>", the first of a stage with its stride); returns
// the last value, its width in *width.
int staged_body(Graph& g, const ModelSpec& s, BlockFn block_fn, int64_t* width) {
  int x = image_input(g, s);
  int64_t in = scaled_channels(s.stem_channels, s);
  x = conv_bn(g, "stem", x, s.input_shape[0], in, 3, s.stem_stride, s.activation);
  int block = 0;
  for (const NetStageSpec& stage : s.stages) {
    const int64_t out = scaled_channels(stage.channels, s);
    for (int64_t i = 0; i < stage.blocks; ++i, ++block) {
      x = block_fn(g, fmt::format("blocks.{}", block), x, in, out, i == 0 ? stage.stride : 1, stage, s);
      in = out;
    }
  }
  *width = in;
  return x;
}

// Global average pooling (dropout after it), then the head.
void pool_and_head(Graph& g, int x, int64_t width, const ModelSpec& s) {
  x = g.add("pool", OpKind::kGlobalAvgPool, {x}, with_dropout(json::object(), s.dropout));
  classifier_head(g, x, width, s);
}

// MobileNetV2's inverted residual: 1x1 expansion, depthwise 3x3, linear 1x1 projection, a residual Add where
// stride 1 keeps the width.
int inverted_residual(Graph& g, const std::string& p, int x, int64_t in, int64_t out, int64_t stride,
                      const NetStageSpec& stage, const ModelSpec& s) {
  const int64_t hidden = in * stage.expansion;
  int y = x;
  if (stage.expansion != 1) y = conv_bn(g, p + ".expand", y, in, hidden, 1, 1, s.activation);
  y = conv_bn(g, p + ".dw", y, hidden, hidden, 3, stride, s.activation, hidden);
  y = conv_bn(g, p + ".project", y, hidden, out, 1, 1, "");
  return stride == 1 && in == out ? g.add(p + ".add", OpKind::kAdd, {x, y}) : y;
}

// ResNet's basic block: conv3x3-BN-act-conv3x3-BN plus the shortcut (a 1x1 conv + BN where the stride or
// width changes), Add, activation.
int basic_block(Graph& g, const std::string& p, int x, int64_t in, int64_t out, int64_t stride,
                const NetStageSpec&, const ModelSpec& s) {
  int y = conv_bn(g, p + ".conv1", x, in, out, 3, stride, s.activation);
  y = conv_bn(g, p + ".conv2", y, out, out, 3, 1, "");
  const int shortcut = stride != 1 || in != out ? conv_bn(g, p + ".shortcut", x, in, out, 1, stride, "") : x;
  return add_activation(g, p + ".act", s.activation, g.add(p + ".add", OpKind::kAdd, {shortcut, y}));
}

// MobileNetV2: stem, inverted residual blocks, a last 1x1 conv, global average pooling, the head.
void build_mobilenet_v2(Graph& g, const ModelSpec& s) {
  int64_t width = 0;
  int x = staged_body(g, s, inverted_residual, &width);
  if (s.last_channels > 0) {
    const int64_t last = scaled_channels(s.last_channels, s);
    x = conv_bn(g, "last", x, width, last, 1, 1, s.activation);
    width = last;
  }
  pool_and_head(g, x, width, s);
}

// ResNet with basic blocks: stem, blocks, global average pooling, the head.
void build_resnet(Graph& g, const ModelSpec& s) {
  int64_t width = 0;
  const int x = staged_body(g, s, basic_block, &width);
  pool_and_head(g, x, width, s);
}

// Documents: the mean of the tokens' embeddings (padding skipped), then the MLP head (fastText-style).
void build_bag(Graph& g, const ModelSpec& s) {
  int tokens = g.add("input", OpKind::kInput, {}, {{"shape", s.input_shape}, {"dtype", "int64"}});
  int x = g.add("embed", OpKind::kEmbeddingBag, {tokens},
                with_dropout({{"num_embeddings", s.vocab}, {"dim", s.d_model}}, s.dropout));
  classifier_head(g, x, s.d_model, s);
}

void build_transformer(Graph& g, const ModelSpec& s) {
  const int64_t ctx = s.input_shape.at(0), d = s.d_model;
  int tokens = g.add("input", OpKind::kInput, {}, {{"shape", s.input_shape}, {"dtype", "int64"}});
  int tok = g.add("embed.token", OpKind::kEmbedding, {tokens}, {{"num_embeddings", s.vocab}, {"dim", d}});
  int pos = g.add("embed.position", OpKind::kEmbedding, {tokens},
                  {{"num_embeddings", ctx}, {"dim", d}, {"positional", true}});
  int x = g.add("embed.sum", OpKind::kAdd, {tok, pos}, with_dropout(json::object(), s.dropout));
  const bool causal = s.task == "lm";
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("blocks.{}", l);
    int h = g.add(p + ".ln1", OpKind::kLayerNorm, {x}, {{"dim", d}});
    h = g.add(p + ".attn", OpKind::kMultiHeadAttention, {h},
              with_dropout({{"d_model", d}, {"heads", s.heads}, {"causal", causal}}, s.dropout));
    x = g.add(p + ".add1", OpKind::kAdd, {x, h});
    h = g.add(p + ".ln2", OpKind::kLayerNorm, {x}, {{"dim", d}});
    h = g.add(p + ".ffn.fc1", OpKind::kLinear, {h}, {{"in_features", d}, {"out_features", s.ffn}});
    h = g.add(p + ".ffn.act", OpKind::kGELU, {h});
    h = g.add(p + ".ffn.fc2", OpKind::kLinear, {h},
              with_dropout({{"in_features", s.ffn}, {"out_features", d}}, s.dropout));
    x = g.add(p + ".add2", OpKind::kAdd, {x, h});
  }
  x = g.add("ln_f", OpKind::kLayerNorm, {x}, {{"dim", d}});
  if (s.task == "classify") x = g.add("pool", OpKind::kGlobalAvgPool, {x});
  g.add("out", OpKind::kLinear, {x}, {{"in_features", d}, {"out_features", s.classes}});
}

// Finds or creates the chain of container modules for "a.b.c" below `root`, returning the parent of "c".
torch::nn::Module& parent_module(torch::nn::Module& root, const std::string& path, std::string* leaf) {
  torch::nn::Module* current = &root;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    if (dot == std::string::npos) {
      *leaf = path.substr(start);
      return *current;
    }
    const std::string part = path.substr(start, dot - start);
    std::shared_ptr<torch::nn::Module> child;
    for (const auto& item : current->named_children()) {
      if (item.key() == part) child = item.value();
    }
    if (!child) child = current->register_module(part, std::make_shared<torch::nn::Module>());
    current = child.get();
    start = dot + 1;
  }
}

}  // namespace

Graph build_graph(const ModelSpec& spec) {
  if (spec.input_shape.empty() || spec.classes <= 0)
    throw Error("model spec: input_shape and classes must be filled");
  Graph g;
  if (spec.arch == "mlp")
    build_mlp(g, spec);
  else if (spec.arch == "cnn")
    build_cnn(g, spec);
  else if (spec.arch == "mobilenet_v2")
    build_mobilenet_v2(g, spec);
  else if (spec.arch == "resnet")
    build_resnet(g, spec);
  else if (spec.arch == "transformer")
    build_transformer(g, spec);
  else if (spec.arch == "bag")
    build_bag(g, spec);
  else
    throw Error(fmt::format("model spec: unknown arch '{}'", spec.arch));
  g.infer_shapes();
  return g;
}

ModelSpec fill_from_data(ModelSpec spec, const Dataset& data, const std::string& json_path) {
  const auto shape = data.input_shape();
  const int64_t classes = data.classes();
  if (!spec.input_shape.empty() && spec.input_shape != shape) {
    throw Error(fmt::format("{}/input_shape: [{}] does not match the data's [{}]", json_path,
                            fmt::join(spec.input_shape, ", "), fmt::join(shape, ", ")));
  }
  if (spec.classes != 0 && spec.classes != classes) {
    throw Error(fmt::format("{}/classes: {} does not match the data's {}", json_path, spec.classes, classes));
  }
  spec.input_shape = shape;
  spec.classes = classes;
  if (spec.arch == "transformer") spec.vocab = data.kind == "text" ? classes : spec.vocab;
  if (data.kind == "documents") spec.vocab = data.images.token_vocab;
  return spec;
}

GraphModuleImpl::GraphModuleImpl(Graph graph) : graph_(std::move(graph)) {
  graph_.infer_shapes();
  const auto& nodes = graph_.nodes();
  node_modules_.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    const TorchOpDef& def = torch_op(n.op);
    if (!def.module) continue;
    node_modules_[i] = def.module(n);
    std::string leaf;
    parent_module(*this, n.name, &leaf).register_module(leaf, node_modules_[i]);
  }
  // The registered names must be exactly the IR's tensor names, or export would have to guess.
  auto params = named_parameters(true);
  auto buffers = named_buffers(true);
  for (const auto& spec : graph_.all_tensors()) {
    const auto* t = spec.trainable ? params.find(spec.name) : buffers.find(spec.name);
    if (!t)
      throw Error(
          fmt::format("GraphModule: tensor '{}' of the graph has no LibTorch counterpart", spec.name));
    if (t->sizes().vec() != spec.shape) {
      throw Error(fmt::format("GraphModule: tensor '{}' has shape [{}], graph says [{}]", spec.name,
                              fmt::join(t->sizes().vec(), ", "), fmt::join(spec.shape, ", ")));
    }
  }
}

torch::Tensor GraphModuleImpl::forward(const torch::Tensor& input) {
  return forward_capture(input, {}).first;
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> GraphModuleImpl::forward_capture(
    const torch::Tensor& input, const std::vector<int>& capture, const NodeOverride* override_fn,
    bool captures_only) {
  const auto& nodes = graph_.nodes();
  std::vector<torch::Tensor> values(nodes.size());
  size_t end = nodes.size();
  if (captures_only)
    end = capture.empty() ? 0 : static_cast<size_t>(*std::max_element(capture.begin(), capture.end())) + 1;
  for (size_t i = 0; i < end; ++i) {
    const Node& n = nodes[i];
    torch::Tensor y;
    if (override_fn && !n.inputs.empty()) y = (*override_fn)(static_cast<int>(i), values[n.inputs[0]]);
    if (!y.defined()) y = torch_op(n.op).forward(TorchCall(n, node_modules_[i].get(), values, input));
    const double p = n.attrs.value("train_dropout", 0.0);
    if (p > 0 && is_training()) y = torch::dropout(y, p, /*train=*/true);
    values[i] = std::move(y);
  }
  std::vector<torch::Tensor> captured;
  for (int c : capture) captured.push_back(values.at(static_cast<size_t>(c)));
  return {captures_only ? torch::Tensor() : values[graph_.output()], std::move(captured)};
}

int64_t GraphModuleImpl::parameter_count() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

int64_t GraphModuleImpl::fp32_bytes() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel() * 4;
  for (const auto& b : buffers()) {
    if (b.is_floating_point()) total += b.numel() * 4;
  }
  return total;
}

}  // namespace mighty::compress
