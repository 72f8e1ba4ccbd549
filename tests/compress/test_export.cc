// The runtime's fp32 executor against LibTorch on the same weights, for every model family.
#include <catch2/catch.hpp>

#include "compress/models/zoo.h"
#include "compress/passes/export.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/exec/tasks.h"
#include "runtime/format/input_spec.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

// Random BatchNorm statistics, so folding mistakes cannot hide behind mean 0 / variance 1.
void randomize_buffers(GraphModule& m) {
  torch::NoGradGuard no_grad;
  for (auto& item : m->named_buffers(true)) {
    if (item.key().find("running_mean") != std::string::npos) item.value().uniform_(-0.5, 0.5);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 2.0);
  }
  for (auto& item : m->named_parameters(true)) {
    if (item.key().find(".bn.") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
}

ModelSpec tiny_transformer(int64_t context, int64_t vocab, int64_t d_model, int64_t heads, int64_t ffn) {
  ModelSpec s;
  s.arch = "transformer";
  s.input_shape = {context};
  s.classes = s.vocab = vocab;
  s.d_model = d_model;
  s.heads = heads;
  s.layers = 2;
  s.ffn = ffn;
  return s;
}

// 4 inputs -> 3 hidden -> 2 classes.
ModelSpec tiny_mlp() {
  ModelSpec s;
  s.arch = "mlp";
  s.input_shape = {4};
  s.classes = 2;
  s.hidden = {3};
  return s;
}

Session session_for(GraphModule& m) {
  return Session(Artifact::from_bytes(export_fp32(m, {{"producer", "test"}}).serialize(), "test.mighty"));
}

float max_abs_diff(const torch::Tensor& a, const std::vector<float>& b) {
  auto flat = a.contiguous().view({-1});
  REQUIRE(flat.numel() == static_cast<int64_t>(b.size()));
  return (flat - torch::from_blob(const_cast<float*>(b.data()), {flat.numel()})).abs().max().item<float>();
}

// The spec's model (random weights and BatchNorm statistics) in LibTorch and in the runtime's fp32 executor
// on a random batch of 3.
void require_runtime_matches_libtorch(const ModelSpec& s) {
  GraphModule m(build_graph(s));
  randomize_buffers(m);
  m->eval();
  const Session session = session_for(m);
  std::vector<int64_t> shape = {3};
  shape.insert(shape.end(), s.input_shape.begin(), s.input_shape.end());
  auto x = torch::randn(shape);
  const auto got = session.run(x.data_ptr<float>(), 3);
  torch::NoGradGuard no_grad;
  REQUIRE(max_abs_diff(m->forward(x), got) < 1e-4f);
}

}  // namespace

TEST_CASE("runtime fp32 executor matches LibTorch: mlp and cnn") {
  torch::manual_seed(3);
  ModelSpec mlp;
  mlp.arch = "mlp";
  mlp.input_shape = {1, 12, 12};
  mlp.classes = 7;
  mlp.hidden = {20, 9};
  mlp.activation = "gelu";
  ModelSpec cnn = mlp;
  cnn.arch = "cnn";
  CnnBlockSpec a, b, c;
  a.channels = 6;
  a.pool = "max";
  b.channels = 5;
  b.stride = 2;
  b.batchnorm = false;
  b.pool = "avg";
  b.kernel = 3;
  b.padding = 0;
  c.channels = 4;
  c.kernel = 1;
  c.activation = "gelu";
  cnn.blocks = {a, b, c};
  cnn.hidden = {11};
  for (const ModelSpec& spec : {mlp, cnn}) {
    for (bool global_pool : {false, true}) {
      ModelSpec s = spec;
      s.global_pool = global_pool;
      INFO(s.arch << " global_pool " << global_pool);
      require_runtime_matches_libtorch(s);
    }
  }
}

TEST_CASE("runtime fp32 executor matches LibTorch: mobilenet_v2 and resnet") {
  torch::manual_seed(4);
  ModelSpec mobilenet;
  mobilenet.arch = "mobilenet_v2";
  mobilenet.input_shape = {2, 12, 12};
  mobilenet.classes = 5;
  mobilenet.stem_channels = 8;
  mobilenet.stages = {{1, 8, 1, 1}, {3, 12, 2, 2}};
  mobilenet.last_channels = 16;
  mobilenet.divisor = 4;
  mobilenet.hidden = {9};
  ModelSpec resnet = mobilenet;
  resnet.arch = "resnet";
  resnet.stages = {{1, 8, 1, 1}, {1, 12, 2, 2}};
  resnet.activation = "gelu";
  for (const std::string activation : {"relu6", "hardswish", "relu"}) {
    for (ModelSpec s : {mobilenet, resnet}) {
      if (s.arch == "mobilenet_v2") s.activation = activation;
      INFO(s.arch << " " << s.activation);
      require_runtime_matches_libtorch(s);
    }
  }
}

TEST_CASE("runtime fp32 executor matches LibTorch: transformer language model and classifier") {
  torch::manual_seed(4);
  ModelSpec s = tiny_transformer(/*context=*/12, /*vocab=*/23, /*d_model=*/16, /*heads=*/4, /*ffn=*/40);
  for (const std::string task : {"lm", "classify"}) {
    s.task = task;
    s.classes = task == "lm" ? 23 : 3;
    GraphModule m(build_graph(s));
    m->eval();
    const Session session = session_for(m);
    for (int64_t length : {12, 5, 1}) {
      auto tokens = torch::randint(0, 23, {2, length}, torch::kInt64);
      const auto got = session.run_tokens(tokens.data_ptr<int64_t>(), 2, length);
      torch::NoGradGuard no_grad;
      INFO(task << " length " << length);
      REQUIRE(max_abs_diff(m->forward(tokens), got) < 1e-4f);
    }
    std::vector<int64_t> bad = {1, 2, 99};
    REQUIRE_THROWS_WITH(session.run_tokens(bad.data(), 1, 3), Catch::Contains("outside the vocabulary"));
    REQUIRE_THROWS_WITH(session.run_tokens(bad.data(), 1, 13), Catch::Contains("does not fit the context"));
  }
}

TEST_CASE("a session refuses an artifact that lacks a tensor of its graph") {
  GraphModule m(build_graph(tiny_mlp()));
  ArtifactWriter w;
  w.set_metadata({{"graph", m->graph().to_json()}});
  REQUIRE_THROWS_WITH(Session(Artifact::from_bytes(w.serialize(), "partial.mighty")),
                      Catch::Contains("partial.mighty: the graph needs tensor 'fc.0.weight'"));
}

TEST_CASE("incremental decoding with the key/value cache equals running the whole prefix") {
  torch::manual_seed(6);
  const ModelSpec s = tiny_transformer(/*context=*/10, /*vocab=*/17, /*d_model=*/16, /*heads=*/2, /*ffn=*/32);
  GraphModule m(build_graph(s));
  m->eval();
  const Session session = session_for(m);
  std::vector<int64_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  const auto full = session.run_tokens(tokens.data(), 1, 10);
  Session::DecodeState state;
  std::vector<float> pieces;
  for (auto [from, n] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 1}, {4, 1}, {5, 2}, {7, 3}}) {
    const auto part = session.decode(tokens.data() + from, n, state);
    pieces.insert(pieces.end(), part.begin(), part.end());
  }
  REQUIRE(pieces.size() == full.size());
  for (size_t i = 0; i < full.size(); ++i) REQUIRE(pieces[i] == Approx(full[i]).margin(1e-5));
  REQUIRE_THROWS_WITH(session.decode(tokens.data(), 1, state), Catch::Contains("exceeds the context of 10"));

  // Greedy generation follows the argmax chain of full runs.
  InputSpec spec;
  spec.kind = "text";
  spec.context = 10;
  for (char32_t c = U'a'; c < U'a' + 17; ++c) spec.vocab.push_back(c);
  const std::string text = generate(session, spec, "abc", 12, 0.0, 0, 1);
  std::vector<int64_t> chain = {0, 1, 2};
  std::string expected;
  for (int i = 0; i < 12; ++i) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(chain.size()), 10);
    std::vector<int64_t> window(chain.end() - n, chain.end());
    if (chain.size() > 10) {
      // generate() restarts from the last half of the context when it fills; mirror that window.
      break;
    }
    const auto logits = session.run_tokens(window.data(), 1, n);
    const float* last = logits.data() + (n - 1) * 17;
    const int64_t next = std::max_element(last, last + 17) - last;
    expected += static_cast<char>('a' + next);
    chain.push_back(next);
  }
  REQUIRE(text.substr(0, expected.size()) == expected);
  REQUIRE(expected.size() >= 7);
  // Sampling is reproducible for a seed.
  REQUIRE(generate(session, spec, "ab", 20, 0.8, 5, 42) == generate(session, spec, "ab", 20, 0.8, 5, 42));
}

TEST_CASE("per-channel symmetric weight quantization") {
  auto w = torch::tensor({{0.5f, -1.0f, 0.25f}, {0.0f, 0.0f, 0.0f}, {2.54f, 0.01f, -2.54f}});
  const auto [q, scales] = quantize_weight_per_channel(w);
  REQUIRE(scales[0].item<float>() == Approx(1.0f / 127));
  REQUIRE(scales[1].item<float>() == 1.0f);  // an all-zero channel keeps a valid scale
  REQUIRE(scales[2].item<float>() == Approx(2.54f / 127));
  REQUIRE(q[0][1].item<int8_t>() == -127);
  REQUIRE(q[0][0].item<int8_t>() == 64);  // 63.5 rounds half to even: 64
  REQUIRE(q[2][0].item<int8_t>() == 127);
  REQUIRE(q[2][1].item<int8_t>() == 0);
  REQUIRE(q[1].abs().sum().item<int64_t>() == 0);
}

TEST_CASE("int8 artifacts (int8 weights, dynamic activations) track the fp32 model") {
  torch::manual_seed(8);
  ModelSpec cnn;
  cnn.arch = "cnn";
  cnn.input_shape = {1, 12, 12};
  cnn.classes = 6;
  CnnBlockSpec a, b;
  a.channels = 8;
  a.pool = "max";
  b.channels = 12;
  b.stride = 2;
  cnn.blocks = {a, b};
  cnn.hidden = {24};
  const ModelSpec lm =
      tiny_transformer(/*context=*/12, /*vocab=*/20, /*d_model=*/32, /*heads=*/4, /*ffn=*/64);
  for (const ModelSpec& spec : {cnn, lm}) {
    GraphModule m(build_graph(spec));
    randomize_buffers(m);
    m->eval();
    const std::string bytes = export_int8_dynamic(m, {{"producer", "test"}}).serialize();
    const Session fp32 = session_for(m);
    for (int threads : {1, 2}) {
      const Session int8(Artifact::from_bytes(bytes, "int8.mighty"), threads);
      std::vector<float> want, got;
      if (spec.arch == "cnn") {
        auto x = torch::randn({16, 1, 12, 12});
        want = fp32.run(x.data_ptr<float>(), 16);
        got = int8.run(x.data_ptr<float>(), 16);
      } else {
        auto t = torch::randint(0, 20, {4, 12}, torch::kInt64);
        want = fp32.run_tokens(t.data_ptr<int64_t>(), 4, 12);
        got = int8.run_tokens(t.data_ptr<int64_t>(), 4, 12);
      }
      double err = 0, ref = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        err += (got[i] - want[i]) * (got[i] - want[i]);
        ref += want[i] * want[i];
      }
      INFO(spec.arch << " threads " << threads << ": relative error " << std::sqrt(err / ref));
      REQUIRE(std::sqrt(err / ref) < 0.05);  // ~8-bit precision, not a copy of the fp32 numbers
      REQUIRE(std::sqrt(err / ref) > 0.0);
    }
    // Thread count does not change the int8 results.
    const Session one(Artifact::from_bytes(bytes, "a"), 1), two(Artifact::from_bytes(bytes, "b"), 2);
    if (spec.arch == "cnn") {
      auto x = torch::randn({5, 1, 12, 12});
      REQUIRE(one.run(x.data_ptr<float>(), 5) == two.run(x.data_ptr<float>(), 5));
    }
  }
}

TEST_CASE("a session checks int8 quantization parameters") {
  GraphModule m(build_graph(tiny_mlp()));
  std::string bytes = export_int8_dynamic(m, {}).serialize();
  // Rebuild the artifact with a zero scale: the session must refuse it.
  const Artifact good = Artifact::from_bytes(bytes, "good");
  ArtifactWriter w;
  w.set_metadata({{"graph", good.metadata()["graph"]}});
  for (const auto& t : good.tensors()) {
    std::vector<uint8_t> data(static_cast<const uint8_t*>(t.data),
                              static_cast<const uint8_t*>(t.data) + t.bytes);
    if (t.name == "fc.0.weight_scale") std::fill(data.begin(), data.end(), 0);
    w.add_tensor(t.name, t.type, t.shape, data.data());
  }
  REQUIRE_THROWS_WITH(
      Session(Artifact::from_bytes(w.serialize(), "bad.mighty")),
      Catch::Contains("bad.mighty: tensor 'fc.0.weight_scale' entry 0: expected a finite positive scale"));
}
