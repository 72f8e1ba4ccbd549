#include <catch2/catch.hpp>

#include <set>

#include "compress/models/zoo.h"
#include "compress/ops/torch_op.h"
#include "runtime/error.h"
#include "runtime/graph/op_def.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

ModelSpec image_spec(const std::string& arch) {
  ModelSpec s;
  s.arch = arch;
  s.input_shape = {1, 28, 28};
  s.classes = 10;
  return s;
}

// The module's parameters must be exactly the graph's tensors: same names, same shapes, same count.
void require_module_matches_graph(GraphModule& m) {
  const auto params = m->named_parameters(true);
  int64_t trainable = 0;
  for (const auto& t : m->graph().all_tensors()) {
    if (t.trainable) {
      ++trainable;
      REQUIRE(params.contains(t.name));
    }
  }
  REQUIRE(static_cast<int64_t>(params.size()) == trainable);
  REQUIRE(m->parameter_count() == m->graph().parameter_count());
}

// The index of the node called `name`, or -1.
int node_named(const Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.nodes().size(); ++i)
    if (g.nodes()[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

TEST_CASE("mlp: shapes and parameter count") {
  auto s = image_spec("mlp");
  s.hidden = {64, 32};
  GraphModule m(build_graph(s));
  REQUIRE(m->forward(torch::randn({5, 1, 28, 28})).sizes() == torch::IntArrayRef{5, 10});
  REQUIRE(m->parameter_count() == 784 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10);
  require_module_matches_graph(m);
}

TEST_CASE("cnn: shapes and parameter count and BatchNorm buffers") {
  auto s = image_spec("cnn");
  CnnBlockSpec b1;
  b1.channels = 8;
  b1.pool = "max";
  CnnBlockSpec b2;
  b2.channels = 16;
  b2.stride = 2;
  b2.batchnorm = false;
  b2.pool = "avg";
  s.blocks = {b1, b2};
  s.hidden = {20};
  GraphModule m(build_graph(s));
  // 28 -> conv 28 -> pool 14 -> conv stride 2 -> 7 -> avg pool 3
  REQUIRE(m->graph().nodes()[m->graph().output() - 3].shape == Shape{16 * 3 * 3});
  REQUIRE(m->forward(torch::randn({2, 1, 28, 28})).sizes() == torch::IntArrayRef{2, 10});
  const int64_t expected = 8 * 9 + 16 + (16 * 8 * 9 + 16) + (144 * 20 + 20) + (20 * 10 + 10);
  REQUIRE(m->parameter_count() == expected);
  require_module_matches_graph(m);
  REQUIRE(m->named_buffers(true).contains("features.0.bn.running_mean"));
  // fp32 bytes: parameters plus the BatchNorm running statistics.
  REQUIRE(m->fp32_bytes() == 4 * (expected + 16));

  s.global_pool = true;
  GraphModule g(build_graph(s));
  REQUIRE(g->forward(torch::randn({3, 1, 28, 28})).sizes() == torch::IntArrayRef{3, 10});
  require_module_matches_graph(g);
}

TEST_CASE("transformer: language model and classifier") {
  ModelSpec s;
  s.arch = "transformer";
  s.input_shape = {16};
  s.classes = 40;
  s.vocab = 40;
  s.d_model = 32;
  s.heads = 4;
  s.layers = 2;
  s.ffn = 64;
  GraphModule lm(build_graph(s));
  auto tokens = torch::randint(0, 40, {3, 16});
  REQUIRE(lm->forward(tokens).sizes() == torch::IntArrayRef{3, 16, 40});
  REQUIRE(lm->forward(tokens.slice(1, 0, 7)).sizes() == torch::IntArrayRef{3, 7, 40});  // shorter prompt
  const int64_t block = 2 * 32 * 2 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32);
  REQUIRE(lm->parameter_count() == 40 * 32 + 16 * 32 + 2 * block + 64 + 32 * 40 + 40);
  require_module_matches_graph(lm);

  s.task = "classify";
  s.classes = 2;
  GraphModule cls(build_graph(s));
  REQUIRE(cls->forward(tokens).sizes() == torch::IntArrayRef{3, 2});
  require_module_matches_graph(cls);
}

TEST_CASE("causal attention does not look ahead") {
  ModelSpec s;
  s.arch = "transformer";
  s.input_shape = {8};
  s.classes = s.vocab = 11;
  s.d_model = 16;
  s.heads = 2;
  s.layers = 1;
  s.ffn = 32;
  GraphModule lm(build_graph(s));
  lm->eval();
  auto a = torch::randint(0, 11, {1, 8});
  auto b = a.clone();
  b[0][7] = (a[0][7].item<int64_t>() + 1) % 11;  // change only the last token
  auto ya = lm->forward(a), yb = lm->forward(b);
  REQUIRE(torch::allclose(ya.slice(1, 0, 7), yb.slice(1, 0, 7)));
  REQUIRE_FALSE(torch::allclose(ya.slice(1, 7), yb.slice(1, 7)));
}

TEST_CASE("dropout acts only in training mode") {
  auto s = image_spec("mlp");
  s.hidden = {64};
  s.dropout = 0.5;
  GraphModule m(build_graph(s));
  auto x = torch::randn({4, 1, 28, 28});
  m->eval();
  REQUIRE(torch::equal(m->forward(x), m->forward(x)));
  m->train();
  REQUIRE_FALSE(torch::equal(m->forward(x), m->forward(x)));
}

TEST_CASE("a spec without data-derived sizes is refused") {
  ModelSpec s;
  s.arch = "mlp";
  REQUIRE_THROWS_AS(build_graph(s), Error);
}

TEST_CASE("the LibTorch op table defines every op of the IR consistently with the runtime's") {
  std::set<std::string> script_ops;
  const OpKind every_op[] = {
#define MIGHTY_OP(name) OpKind::k##name,
#include "runtime/graph/op_list.h"
#undef MIGHTY_OP
  };
  for (const OpKind kind : every_op) {
    const OpDef* rt = &op_def(kind);
    INFO(rt->name);
    const TorchOpDef& def = torch_op(kind);
    REQUIRE(def.kind == kind);
    REQUIRE(def.forward != nullptr);
    // An op owns tensors in the runtime exactly when it has a LibTorch module to hold them.
    REQUIRE((rt->tensors != nullptr) == (def.module != nullptr));
    if (def.channels == ChannelRole::kLayer) {
      REQUIRE(def.out_units != nullptr);
      REQUIRE(def.in_units != nullptr);
      REQUIRE(def.prunable != nullptr);
    }
    if (def.int8_weights) REQUIRE(def.channels == ChannelRole::kLayer);
    bool any_script_op = false;
    for (const char* name : def.script_ops) {
      if (!name) continue;
      any_script_op = true;
      REQUIRE(script_ops.insert(name).second);  // one op per TorchScript kind
      REQUIRE(find_script_op(name) == &def);
    }
    REQUIRE(any_script_op == (def.lower != nullptr));
  }
  REQUIRE(script_ops.count("aten::conv2d") == 1);
  REQUIRE(find_script_op("aten::sin") == nullptr);
  REQUIRE(find_script_op("aten::tanh") == &torch_op(OpKind::kTanh));
  REQUIRE(script_ops_supported().find("aten::linear") != std::string::npos);
}

TEST_CASE("mobilenet_v2: inverted residuals, depthwise convolutions, width multiplier") {
  auto s = image_spec("mobilenet_v2");
  s.stem_channels = 8;
  s.stages = {{1, 8, 1, 1}, {4, 12, 2, 2}, {4, 16, 1, 1}};
  s.last_channels = 32;
  s.divisor = 4;
  s.activation = "relu6";
  const Graph g = build_graph(s);
  int depthwise = 0, adds = 0, clips = 0;
  for (const Node& n : g.nodes()) {
    if (n.op == OpKind::kConv2d && n.attrs.value("groups", int64_t{1}) > 1) {
      ++depthwise;
      REQUIRE(n.attrs.at("groups") == n.attrs.at("in_channels"));
    }
    adds += n.op == OpKind::kAdd;
    clips += n.op == OpKind::kClip;
  }
  REQUIRE(depthwise == 4);  // one per block
  REQUIRE(adds == 2);       // the blocks whose stride is 1 and width unchanged: 0 (8 -> 8) and 2 (12 -> 12)
  REQUIRE(clips == 1 + 1 + 3 * 2 + 1);  // stem, block 0 (no expansion), blocks 1-3 (expand + dw), last
  GraphModule m(build_graph(s));
  REQUIRE(m->forward(torch::randn({2, 1, 28, 28})).sizes() == torch::IntArrayRef{2, 10});
  require_module_matches_graph(m);
  // Width 1.5 with divisor 4: 8 -> 12, 12 -> 20 (18 rounds up), the 10% rule never binds here.
  auto wide = s;
  wide.width = 1.5;
  const Graph gw = build_graph(wide);
  REQUIRE(gw.nodes()[node_named(gw, "stem.conv")].attrs.at("out_channels") == 12);
  REQUIRE(gw.nodes()[node_named(gw, "blocks.1.project.conv")].attrs.at("out_channels") == 20);
}

TEST_CASE("resnet: basic blocks with projection shortcuts where the shape changes") {
  auto s = image_spec("resnet");
  s.stem_channels = 8;
  s.stages = {{1, 8, 2, 1}, {1, 16, 1, 2}};
  s.divisor = 4;
  const Graph g = build_graph(s);
  REQUIRE(node_named(g, "blocks.0.shortcut.conv") < 0);   // same shape: identity shortcut
  REQUIRE(node_named(g, "blocks.2.shortcut.conv") >= 0);  // stride 2, 8 -> 16
  GraphModule m(build_graph(s));
  REQUIRE(m->forward(torch::randn({2, 1, 28, 28})).sizes() == torch::IntArrayRef{2, 10});
  require_module_matches_graph(m);
  // conv weights + BatchNorm affine pairs + head
  const int64_t convs = 9 * 8 + 4 * 9 * 64 + 9 * 8 * 16 + 9 * 16 * 16 + 8 * 16;
  const int64_t bns = 2 * (8 + 4 * 8 + 16 + 16 + 16);
  REQUIRE(m->parameter_count() == convs + bns + 16 * 10 + 10);
}
