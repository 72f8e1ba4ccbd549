// The runtime's fp32 executor without LibTorch: small graphs built by hand with random weights, run by
// Session and compared with plain loops written here from each op's definition (only summation order differs,
// so the tolerance is relative 1e-4). Runs under the sanitizers too (scripts/test-sanitize).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

using namespace mighty;

namespace {

using Tensors = std::map<std::string, std::vector<float>>;
using Vec = std::vector<float>;

// An artifact of `g` with every tensor random (variances positive), kept in `t` for the reference.
Session make_session(Graph g, Tensors& t, uint32_t seed, int threads = 1) {
  g.infer_shapes();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f), pos(0.5f, 1.5f);
  ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()}});
  for (const auto& spec : g.all_tensors()) {
    Vec v(static_cast<size_t>(spec.numel()));
    const bool variance = spec.name.size() > 11 && spec.name.substr(spec.name.size() - 11) == "running_var";
    for (float& x : v) x = variance ? pos(rng) : u(rng);
    w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, v.data());
    t[spec.name] = std::move(v);
  }
  return Session(Artifact::from_bytes(w.serialize(), "fp32.mighty"), threads);
}

Vec random_input(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  Vec v(n);
  for (float& x : v) x = u(rng);
  return v;
}

void require_close(const Vec& got, const Vec& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(want[i]).epsilon(1e-4).margin(1e-5));
  }
}

// y[rows][out] = x W^T + b.
Vec linear(const Vec& x, int64_t rows, int64_t in, const Vec& w, const Vec* b, int64_t out) {
  Vec y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += static_cast<double>(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = static_cast<float>(s);
    }
  return y;
}

// NCHW convolution of one image.
Vec conv(const Vec& x, int64_t cin, int64_t h, int64_t wd, const Vec& w, const Vec* b, int64_t cout,
         int64_t k, int64_t stride, int64_t pad) {
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (wd + 2 * pad - k) / stride + 1;
  Vec y(static_cast<size_t>(cout * oh * ow));
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        double s = b ? (*b)[o] : 0.0;
        for (int64_t c = 0; c < cin; ++c)
          for (int64_t ky = 0; ky < k; ++ky)
            for (int64_t kx = 0; kx < k; ++kx) {
              const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              s += static_cast<double>(x[(c * h + iy) * wd + ix]) * w[((o * cin + c) * k + ky) * k + kx];
            }
        y[(o * oh + oy) * ow + ox] = static_cast<float>(s);
      }
  return y;
}

// Padded positions take no part in the max; the average divides by k * k or (include_pad false) by the
// positions inside the image.
Vec pool(const Vec& x, int64_t c, int64_t h, int64_t w, int64_t k, int64_t stride, bool is_max,
         int64_t pad = 0, bool include_pad = true) {
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  Vec y(static_cast<size_t>(c * oh * ow));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        float m = -INFINITY;
        double s = 0.0;
        int64_t n = 0;
        for (int64_t ky = 0; ky < k; ++ky)
          for (int64_t kx = 0; kx < k; ++kx) {
            const int64_t iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const float v = x[(ch * h + iy) * w + ix];
            m = std::max(m, v);
            s += v;
            ++n;
          }
        y[(ch * oh + oy) * ow + ox] = is_max ? m : static_cast<float>(s / (include_pad ? k * k : n));
      }
  return y;
}

Vec layer_norm(const Vec& x, int64_t dim, const Vec& g, const Vec& b) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / static_cast<size_t>(dim); ++r) {
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
    mean /= dim;
    for (int64_t i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
    var /= dim;
    for (int64_t i = 0; i < dim; ++i)
      y[r * dim + i] = static_cast<float>((x[r * dim + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i]);
  }
  return y;
}

void softmax_row(float* x, int64_t n) {
  const float top = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - top);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - top) / sum);
}

// Multi-head attention over x [t][d] with the node's packed projections.
Vec attention(const Vec& x, int64_t t, int64_t d, int64_t heads, bool causal, const Tensors& w,
              const std::string& p) {
  const int64_t dh = d / heads;
  const Vec qkv = linear(x, t, d, w.at(p + ".in_proj.weight"), &w.at(p + ".in_proj.bias"), 3 * d);
  Vec ctx(static_cast<size_t>(t * d), 0.0f);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t r = 0; r < t; ++r) {
      Vec s(static_cast<size_t>(t));
      for (int64_t c = 0; c < t; ++c) {
        double dot = 0.0;
        for (int64_t i = 0; i < dh; ++i) dot += qkv[r * 3 * d + h * dh + i] * qkv[c * 3 * d + d + h * dh + i];
        s[c] = (causal && c > r) ? -INFINITY : static_cast<float>(dot / std::sqrt(static_cast<double>(dh)));
      }
      softmax_row(s.data(), t);
      for (int64_t c = 0; c < t; ++c)
        for (int64_t i = 0; i < dh; ++i)
          ctx[r * d + h * dh + i] += s[c] * qkv[c * 3 * d + 2 * d + h * dh + i];
    }
  return linear(ctx, t, d, w.at(p + ".out_proj.weight"), &w.at(p + ".out_proj.bias"), d);
}

}  // namespace

TEST_CASE("fp32 executor: a CNN (conv strides and padding, BatchNorm, ReLU, pooling, Add, Flatten, Linear)") {
  Graph g;
  int x = g.add("in", OpKind::kInput, {}, {{"shape", {3, 9, 11}}});
  const int c1 =
      g.add("c1", OpKind::kConv2d, {x},
            {{"in_channels", 3}, {"out_channels", 5}, {"kernel", 3}, {"stride", 2}, {"padding", 1}});
  x = g.add("bn", OpKind::kBatchNorm2d, {c1}, {{"channels", 5}});
  x = g.add("relu", OpKind::kReLU, {x});
  const int c2 = g.add("c2", OpKind::kConv2d, {x},
                       {{"in_channels", 5}, {"out_channels", 5}, {"kernel", 1}, {"bias", false}});
  x = g.add("sum", OpKind::kAdd, {c2, c1});
  const int mp = g.add("mp", OpKind::kMaxPool2d, {x}, {{"kernel", 2}});
  const int ap = g.add("ap", OpKind::kAvgPool2d, {x}, {{"kernel", 3}, {"stride", 1}});
  const int gp = g.add("gp", OpKind::kGlobalAvgPool, {ap});
  x = g.add("flat", OpKind::kFlatten, {mp});
  x = g.add("fc", OpKind::kLinear, {x}, {{"in_features", 5 * 2 * 3}, {"out_features", 5}});
  x = g.add("join", OpKind::kAdd, {x, gp});
  g.add("probs", OpKind::kSoftmax, {x});
  Tensors t;
  const Session s = make_session(g, t, 7);
  const int64_t batch = 3, image = 3 * 9 * 11;
  const Vec input = random_input(static_cast<size_t>(batch * image), 11);
  const Vec got = s.run(input.data(), batch);
  Vec want;
  for (int64_t b = 0; b < batch; ++b) {
    const Vec xb(input.begin() + b * image, input.begin() + (b + 1) * image);
    const Vec y1 = conv(xb, 3, 9, 11, t["c1.weight"], &t["c1.bias"], 5, 3, 2, 1);  // [5][5][6]
    Vec y = y1;
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t p = 0; p < 30; ++p) {
        const float inv = 1.0f / std::sqrt(t["bn.running_var"][c] + 1e-5f);
        const float v = (y[c * 30 + p] - t["bn.running_mean"][c]) * inv * t["bn.weight"][c] + t["bn.bias"][c];
        y[c * 30 + p] = std::max(v, 0.0f);
      }
    Vec sum = conv(y, 5, 5, 6, t["c2.weight"], nullptr, 5, 1, 1, 0);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += y1[i];
    const Vec m = pool(sum, 5, 5, 6, 2, 2, true),
              a = pool(sum, 5, 5, 6, 3, 1, false);  // [5][2][3], [5][3][4]
    Vec out = linear(m, 1, 30, t["fc.weight"], &t["fc.bias"], 5);
    for (int64_t c = 0; c < 5; ++c) {
      double mean = 0.0;
      for (int64_t p = 0; p < 12; ++p) mean += a[c * 12 + p];
      out[c] += static_cast<float>(mean / 12);
    }
    softmax_row(out.data(), 5);
    want.insert(want.end(), out.begin(), out.end());
  }
  require_close(got, want);
  REQUIRE(s.output_size() == 5);
  // The same session answers a batch of one with the first example's result.
  require_close(s.run(input.data(), 1), Vec(want.begin(), want.begin() + 5));
}

TEST_CASE("fp32 executor: padded max and average pooling (with and without the padding in the count)") {
  for (const bool include_pad : {true, false}) {
    Graph g;
    const int x = g.add("in", OpKind::kInput, {}, {{"shape", {2, 7, 6}}});
    const int mp = g.add("mp", OpKind::kMaxPool2d, {x}, {{"kernel", 3}, {"stride", 2}, {"padding", 1}});
    const int ap = g.add("ap", OpKind::kAvgPool2d, {mp},
                         {{"kernel", 3}, {"stride", 1}, {"padding", 1}, {"count_include_pad", include_pad}});
    g.add("flat", OpKind::kFlatten, {ap});
    Tensors t;
    const Session s = make_session(g, t, 5);
    const Vec input = random_input(2 * 7 * 6, 13);
    const Vec m = pool(input, 2, 7, 6, 3, 2, true, 1);               // [2][4][3]
    const Vec want = pool(m, 2, 4, 3, 3, 1, false, 1, include_pad);  // [2][4][3]
    INFO("count_include_pad " << include_pad);
    require_close(s.run(input.data(), 1), want);
  }
  Graph bad;
  const int x = bad.add("in", OpKind::kInput, {}, {{"shape", {2, 7, 6}}});
  bad.add("mp", OpKind::kMaxPool2d, {x}, {{"kernel", 3}, {"padding", 2}});
  REQUIRE_THROWS_WITH(bad.infer_shapes(), Catch::Contains("padding"));
}

// The attention as one MultiHeadAttention node, or split as the quantizer splits it: Linear (in_proj) ->
// ScaledDotProductAttention -> Linear (out_proj), the same tensors under the same names.
TEST_CASE("fp32 executor: a transformer (embeddings, LayerNorm, attention, GELU) and incremental decoding") {
  for (const int variant : {0, 1, 2, 3}) {
    const bool causal = variant % 2 == 0, split = variant >= 2;
    INFO("causal " << causal << " split " << split);
    const int64_t ctx = 6, d = 8, heads = 2, vocab = 11;
    Graph g;
    const int in = g.add("in", OpKind::kInput, {}, {{"shape", {ctx}}, {"dtype", "int64"}});
    const int tok = g.add("tok", OpKind::kEmbedding, {in}, {{"num_embeddings", vocab}, {"dim", d}});
    const int pos =
        g.add("pos", OpKind::kEmbedding, {in}, {{"num_embeddings", ctx}, {"dim", d}, {"positional", true}});
    int x = g.add("embed", OpKind::kAdd, {tok, pos});
    const int ln = g.add("ln", OpKind::kLayerNorm, {x}, {{"dim", d}});
    int att = -1;
    if (split) {
      att = g.add("att.in_proj", OpKind::kLinear, {ln}, {{"in_features", d}, {"out_features", 3 * d}});
      att = g.add("att", OpKind::kScaledDotProductAttention, {att},
                  {{"heads", heads}, {"head_dim", d / heads}, {"causal", causal}});
      att = g.add("att.out_proj", OpKind::kLinear, {att}, {{"in_features", d}, {"out_features", d}});
    } else {
      att = g.add("att", OpKind::kMultiHeadAttention, {ln},
                  {{"d_model", d}, {"heads", heads}, {"causal", causal}});
    }
    x = g.add("res", OpKind::kAdd, {x, att});
    x = g.add("ff", OpKind::kLinear, {x}, {{"in_features", d}, {"out_features", d}});
    x = g.add("gelu", OpKind::kGELU, {x});
    if (!causal) x = g.add("mean", OpKind::kGlobalAvgPool, {x});
    g.add("head", OpKind::kLinear, {x}, {{"in_features", d}, {"out_features", vocab}});
    Tensors t;
    const Session s = make_session(g, t, causal ? 3 : 4);
    const std::vector<int64_t> ids = {3, 10, 0, 7, 7};
    const int64_t len = static_cast<int64_t>(ids.size());
    Vec e(static_cast<size_t>(len * d));
    for (int64_t r = 0; r < len; ++r)
      for (int64_t i = 0; i < d; ++i)
        e[r * d + i] = t["tok.weight"][ids[r] * d + i] + t["pos.weight"][r * d + i];
    const Vec a = attention(layer_norm(e, d, t["ln.weight"], t["ln.bias"]), len, d, heads, causal, t, "att");
    for (size_t i = 0; i < e.size(); ++i) e[i] += a[i];
    Vec h = linear(e, len, d, t["ff.weight"], &t["ff.bias"], d);
    for (float& v : h) v = static_cast<float>(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
    int64_t rows = len;
    if (!causal) {
      Vec m(static_cast<size_t>(d), 0.0f);
      for (int64_t r = 0; r < len; ++r)
        for (int64_t i = 0; i < d; ++i) m[i] += h[r * d + i] / static_cast<float>(len);
      h = m;
      rows = 1;
    }
    const Vec want = linear(h, rows, d, t["head.weight"], &t["head.bias"], vocab);
    require_close(s.run_tokens(ids.data(), 1, len), want);
    if (!causal) {
      REQUIRE_THROWS_WITH(s.decode(ids.data(), 1, *std::make_unique<Session::DecodeState>()),
                          Catch::Contains("causal"));
      continue;
    }
    // Decoding 2 + 1 + 2 tokens gives the full run's rows.
    Session::DecodeState state;
    Vec stepped = s.decode(ids.data(), 2, state);
    for (const auto& [at, n] : {std::pair<int64_t, int64_t>{2, 1}, {3, 2}}) {
      const Vec more = s.decode(ids.data() + at, n, state);
      stepped.insert(stepped.end(), more.begin(), more.end());
    }
    require_close(stepped, want);
    REQUIRE_THROWS_WITH(s.decode(ids.data(), 2, state), Catch::Contains("exceeds the context of 6"));
    const std::vector<int64_t> bad = {3, 11};
    REQUIRE_THROWS_WITH(s.run_tokens(bad.data(), 1, 2), Catch::Contains("token 11 at position 1 is outside"));
    // A batch in slices of one sequence on two threads: each sequence's rows as run alone, and an id outside
    // the vocabulary in the last slice is the run's error (rethrown after the other slices).
    setenv("MIGHTY_BATCH_SLICE", "1", 1);
    Tensors same;
    const Session sliced = make_session(g, same, causal ? 3 : 4, 2);
    unsetenv("MIGHTY_BATCH_SLICE");
    std::vector<int64_t> three(ids);
    three.insert(three.end(), ids.rbegin(), ids.rend());
    three.insert(three.end(), ids.begin(), ids.end());
    Vec want3 = s.run_tokens(three.data(), 1, len);
    for (int64_t b = 1; b < 3; ++b) {
      const Vec one = s.run_tokens(three.data() + b * len, 1, len);
      want3.insert(want3.end(), one.begin(), one.end());
    }
    REQUIRE(sliced.run_tokens(three.data(), 3, len) == want3);
    three.back() = vocab;
    REQUIRE_THROWS_WITH(sliced.run_tokens(three.data(), 3, len),
                        Catch::Contains("token 11 at position 4 is outside"));
  }
}

TEST_CASE("fp32 executor: EmbeddingBag averages the real tokens and skips padding") {
  Graph g;
  const int in = g.add("in", OpKind::kInput, {}, {{"shape", {5}}, {"dtype", "int64"}});
  const int bag = g.add("bag", OpKind::kEmbeddingBag, {in}, {{"num_embeddings", 9}, {"dim", 4}});
  g.add("out", OpKind::kLinear, {bag}, {{"in_features", 4}, {"out_features", 3}});
  Tensors t;
  const Session s = make_session(g, t, 5);
  const std::vector<int64_t> ids = {2, -1, 8, 2, -1, /* second row: padding only */ -1, -1, -1, -1, -1};
  const Vec got = s.run_tokens(ids.data(), 2, 5);
  Vec mean(4, 0.0f);
  for (int64_t id : {2, 8, 2})
    for (int64_t i = 0; i < 4; ++i) mean[i] += t["bag.weight"][id * 4 + i] / 3.0f;
  Vec want = linear(mean, 1, 4, t["out.weight"], &t["out.bias"], 3);
  const Vec empty = linear(Vec(4, 0.0f), 1, 4, t["out.weight"], &t["out.bias"], 3);
  want.insert(want.end(), empty.begin(), empty.end());
  require_close(got, want);
}

TEST_CASE("fp32 executor: wrong inputs are errors, not crashes") {
  Graph g;
  const int in = g.add("in", OpKind::kInput, {}, {{"shape", {4}}});
  g.add("fc", OpKind::kLinear, {in}, {{"in_features", 4}, {"out_features", 2}});
  Tensors t;
  const Session s = make_session(g, t, 9);
  const std::vector<int64_t> ids = {1};
  REQUIRE_THROWS_WITH(s.run_tokens(ids.data(), 1, 1), Catch::Contains("takes float input"));
}

TEST_CASE("fp32: grouped and depthwise convolution, the MobileNet activations, a gate, Concat") {
  // [4, 6, 6] -> grouped conv (2 groups, 4 -> 6) -> HardSwish = h; gate = Sigmoid(GAP(h, keepdim)) [6, 1, 1];
  // Concat(Clip(h, -1, 0.5), h * gate) [12, 6, 6] -> depthwise conv (12 groups) -> SiLU -> HardSigmoid.
  Graph g;
  int x = g.add("in", OpKind::kInput, {}, {{"shape", {4, 6, 6}}});
  const int c1 =
      g.add("g", OpKind::kConv2d, {x},
            {{"in_channels", 4}, {"out_channels", 6}, {"kernel", 3}, {"padding", 1}, {"groups", 2}});
  const int h = g.add("hs", OpKind::kHardSwish, {c1});
  const int clip = g.add("clip", OpKind::kClip, {h}, {{"min", -1.0}, {"max", 0.5}});
  const int pool = g.add("pool", OpKind::kGlobalAvgPool, {h}, {{"keepdim", true}});
  const int gate = g.add("gate", OpKind::kSigmoid, {pool});
  const int mul = g.add("mul", OpKind::kMul, {h, gate});
  const int cat = g.add("cat", OpKind::kConcat, {clip, mul});
  const int dw = g.add("dw", OpKind::kConv2d, {cat},
                       {{"in_channels", 12},
                        {"out_channels", 12},
                        {"kernel", 3},
                        {"stride", 2},
                        {"padding", 1},
                        {"groups", 12},
                        {"bias", false}});
  const int silu = g.add("silu", OpKind::kSiLU, {dw});
  g.add("hsig", OpKind::kHardSigmoid, {silu}, {{"alpha", 0.2}, {"beta", 0.5}});
  Tensors t;
  const Session s = make_session(g, t, 21);
  const int64_t batch = 2;
  const Vec input = random_input(static_cast<size_t>(batch * 4 * 36), 22);
  const Vec got = s.run(input.data(), batch);
  Vec want;
  for (int64_t b = 0; b < batch; ++b) {
    // Grouped conv: group j reads channels [2j, 2j + 2) and writes outputs [3j, 3j + 3).
    Vec hv(6 * 36);
    for (int64_t j = 0; j < 2; ++j) {
      const Vec xin(input.begin() + (b * 4 + 2 * j) * 36, input.begin() + (b * 4 + 2 * j + 2) * 36);
      const Vec w(t["g.weight"].begin() + j * 3 * 18, t["g.weight"].begin() + (j + 1) * 3 * 18);
      const Vec bias(t["g.bias"].begin() + j * 3, t["g.bias"].begin() + (j + 1) * 3);
      const Vec y = conv(xin, 2, 6, 6, w, &bias, 3, 3, 1, 1);
      std::copy(y.begin(), y.end(), hv.begin() + j * 3 * 36);
    }
    for (float& v : hv) v = v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    Vec joined(12 * 36);
    for (int64_t c = 0; c < 6; ++c) {
      double mean = 0.0;
      for (int64_t p = 0; p < 36; ++p) mean += hv[c * 36 + p];
      const float gv = 1.0f / (1.0f + std::exp(-static_cast<float>(mean / 36.0)));
      for (int64_t p = 0; p < 36; ++p) {
        joined[c * 36 + p] = std::min(std::max(hv[c * 36 + p], -1.0f), 0.5f);
        joined[(6 + c) * 36 + p] = hv[c * 36 + p] * gv;
      }
    }
    for (int64_t c = 0; c < 12; ++c) {
      const Vec plane(joined.begin() + c * 36, joined.begin() + (c + 1) * 36);
      const Vec w(t["dw.weight"].begin() + c * 9, t["dw.weight"].begin() + (c + 1) * 9);
      for (float v : conv(plane, 1, 6, 6, w, nullptr, 1, 3, 2, 1)) {
        const float si = v / (1.0f + std::exp(-v));
        want.push_back(std::min(std::max(0.2f * si + 0.5f, 0.0f), 1.0f));
      }
    }
  }
  require_close(got, want);
}

TEST_CASE("fp32: a sentence encoder's end: Linear then Tanh then L2Normalize that keeps a zero row zero") {
  Graph g;
  const int x = g.add("in", OpKind::kInput, {}, {{"shape", {5}}});
  const int fc = g.add("fc", OpKind::kLinear, {x}, {{"in_features", 5}, {"out_features", 7}});
  const int t = g.add("tanh", OpKind::kTanh, {fc});
  g.add("norm", OpKind::kL2Normalize, {t}, {{"eps", 1e-12}});
  Tensors w;
  const Session s = make_session(g, w, 31);
  const int64_t batch = 3;
  Vec input = random_input(static_cast<size_t>(batch * 5), 32);
  const Vec got = s.run(input.data(), batch);
  Vec want = linear(input, batch, 5, w["fc.weight"], &w["fc.bias"], 7);
  for (int64_t r = 0; r < batch; ++r) {
    double sum = 0.0;
    for (int64_t i = 0; i < 7; ++i) {
      float& v = want[static_cast<size_t>(r * 7 + i)];
      v = std::tanh(v);
      sum += static_cast<double>(v) * v;
    }
    for (int64_t i = 0; i < 7; ++i)
      want[static_cast<size_t>(r * 7 + i)] /= static_cast<float>(std::sqrt(sum));
  }
  require_close(got, want);
  for (int64_t r = 0; r < batch; ++r) {
    double norm = 0.0;
    for (int64_t i = 0; i < 7; ++i) norm += static_cast<double>(got[r * 7 + i]) * got[r * 7 + i];
    REQUIRE(norm == Approx(1.0).epsilon(1e-6));
  }
  // Below eps the row is scaled by 1 / sqrt(eps) instead of divided by its norm: zeros stay zeros.
  Graph z;
  const int zi = z.add("in", OpKind::kInput, {}, {{"shape", {4}}});
  z.add("norm", OpKind::kL2Normalize, {zi}, {{"eps", 1e-6}});
  Tensors none;
  const Session zs = make_session(z, none, 33);
  const Vec zeros(4, 0.0f), tiny = {1e-5f, 0.0f, 0.0f, 0.0f};
  REQUIRE(zs.run(zeros.data(), 1) == zeros);
  REQUIRE(zs.run(tiny.data(), 1)[0] == Approx(1e-5 / std::sqrt(1e-6)).epsilon(1e-6));
}

TEST_CASE("fp32: shapes that do not broadcast, join or group are refused at load") {
  auto refused = [](int op_case) {
    Graph g;
    const int x = g.add("in", OpKind::kInput, {}, {{"shape", {4, 6, 6}}});
    const int p = g.add("pool", OpKind::kGlobalAvgPool, {x});  // [4]
    if (op_case == 0) g.add("mul", OpKind::kMul, {x, p});
    if (op_case == 1) g.add("cat", OpKind::kConcat, {x, p});
    if (op_case == 2)
      g.add("c", OpKind::kConv2d, {x},
            {{"in_channels", 4}, {"out_channels", 6}, {"kernel", 1}, {"groups", 4}});
    if (op_case == 3) g.add("clip", OpKind::kClip, {x}, {{"min", 1.0}, {"max", 0.0}});
    try {
      g.infer_shapes();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  REQUIRE_THAT(refused(0), Catch::Contains("'mul', Mul): operand shapes [4, 6, 6] and [4] do not broadcast"));
  REQUIRE_THAT(refused(1), Catch::Contains("input 1 has shape [4], which does not join [4, 6, 6]"));
  REQUIRE_THAT(refused(2), Catch::Contains("4 groups do not divide 4 input and 6 output channels"));
  REQUIRE_THAT(refused(3), Catch::Contains("min 1 is above max 0"));
}

TEST_CASE("fp32: depthwise convolution at the edges (tiny and odd images, strides 1 to 3, padding 0 to 2)") {
  struct Case {
    int64_t h, w, k, stride, pad;
  };
  for (const Case& c : {Case{1, 1, 3, 2, 1}, Case{3, 2, 3, 2, 1}, Case{5, 7, 5, 3, 2}, Case{4, 4, 3, 1, 0},
                        Case{2, 9, 3, 1, 1}}) {
    INFO(c.h << "x" << c.w << " k" << c.k << " s" << c.stride << " p" << c.pad);
    Graph g;
    const int x = g.add("in", OpKind::kInput, {}, {{"shape", {3, c.h, c.w}}});
    g.add("dw", OpKind::kConv2d, {x},
          {{"in_channels", 3},
           {"out_channels", 3},
           {"kernel", c.k},
           {"stride", c.stride},
           {"padding", c.pad},
           {"groups", 3}});
    Tensors t;
    const Session s = make_session(g, t, 31);
    const Vec input = random_input(static_cast<size_t>(2 * 3 * c.h * c.w), 32);
    const Vec got = s.run(input.data(), 2);
    Vec want;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t ch = 0; ch < 3; ++ch) {
        const Vec plane(input.begin() + (b * 3 + ch) * c.h * c.w,
                        input.begin() + (b * 3 + ch + 1) * c.h * c.w);
        const Vec w(t["dw.weight"].begin() + ch * c.k * c.k, t["dw.weight"].begin() + (ch + 1) * c.k * c.k);
        const Vec bias = {t["dw.bias"][static_cast<size_t>(ch)]};
        for (float v : conv(plane, 1, c.h, c.w, w, &bias, 1, c.k, c.stride, c.pad)) want.push_back(v);
      }
    require_close(got, want);
  }
}

TEST_CASE("fp32: convolution at the edges (tiny and odd images, strides 1 to 3, padding 0 to 2)") {
  struct Case {
    int64_t h, w, k, stride, pad, cin = 2, groups = 1;
  };
  // Kernel columns that read no pixel of a row (1 x 1 images at stride 2, padding 1) and rows whose inside
  // run is empty or whole; then 8+ channels per group at stride 1 (the convolution as one implicit-im2col
  // GEMM).
  for (const Case& c : {Case{1, 1, 3, 2, 1}, Case{3, 2, 3, 2, 1}, Case{5, 7, 5, 3, 2}, Case{4, 4, 3, 1, 0},
                        Case{2, 9, 3, 1, 1}, Case{1, 2, 5, 2, 2}, Case{6, 5, 1, 2, 0}, Case{5, 7, 3, 1, 1, 9},
                        Case{4, 3, 5, 1, 2, 8}, Case{6, 6, 3, 1, 0, 16, 2}, Case{1, 1, 3, 1, 1, 8},
                        Case{9, 4, 2, 1, 0, 10}}) {
    INFO(c.h << "x" << c.w << " k" << c.k << " s" << c.stride << " p" << c.pad << " cin " << c.cin
             << " groups " << c.groups);
    const int64_t cout = 3 * c.groups, gin = c.cin / c.groups, image_size = c.cin * c.h * c.w;
    Graph g;
    const int x = g.add("in", OpKind::kInput, {}, {{"shape", {c.cin, c.h, c.w}}});
    g.add("conv", OpKind::kConv2d, {x},
          {{"in_channels", c.cin},
           {"out_channels", cout},
           {"kernel", c.k},
           {"stride", c.stride},
           {"padding", c.pad},
           {"groups", c.groups}});
    Tensors t;
    const Session s = make_session(g, t, 41);
    const Vec input = random_input(static_cast<size_t>(2 * image_size), 42);
    const Vec got = s.run(input.data(), 2);
    Vec want;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t gr = 0; gr < c.groups; ++gr) {
        const auto at = input.begin() + b * image_size + gr * gin * c.h * c.w;
        const Vec image(at, at + gin * c.h * c.w);
        const auto w0 = t["conv.weight"].begin() + gr * 3 * gin * c.k * c.k;
        const Vec weight(w0, w0 + 3 * gin * c.k * c.k);
        const Vec bias(t["conv.bias"].begin() + gr * 3, t["conv.bias"].begin() + gr * 3 + 3);
        for (float v : conv(image, gin, c.h, c.w, weight, &bias, 3, c.k, c.stride, c.pad)) want.push_back(v);
      }
    require_close(got, want);
  }
}

namespace {

// BatchNorm2d (inference form) of one image, then ReLU when `relu`.
Vec batch_norm(Vec y, int64_t channels, const Tensors& t, const std::string& bn, bool relu) {
  const int64_t plane = static_cast<int64_t>(y.size()) / channels;
  for (int64_t c = 0; c < channels; ++c) {
    const double inv = 1.0 / std::sqrt(static_cast<double>(t.at(bn + ".running_var")[c]) + 1e-5);
    for (int64_t p = 0; p < plane; ++p) {
      float& v = y[c * plane + p];
      v = static_cast<float>((v - t.at(bn + ".running_mean")[c]) * inv * t.at(bn + ".weight")[c] +
                             t.at(bn + ".bias")[c]);
      if (relu) v = std::max(v, 0.0f);
    }
  }
  return y;
}

}  // namespace

// Every fp32 convolution path (implicit-im2col GEMM from one input channel, 1x1 straight on the input,
// im2col at stride 2, depthwise) with the BatchNorm2d folded into it and the ReLU applied in its epilogue;
// and where fusion must not happen: a convolution with two users, a BatchNorm2d that is the graph's output.
TEST_CASE("fp32: a convolution takes in the BatchNorm2d and ReLU after it at load") {
  Graph g;
  int x = g.add("in", OpKind::kInput, {}, {{"shape", {1, 9, 8}}});
  x = g.add("c1", OpKind::kConv2d, {x},
            {{"in_channels", 1}, {"out_channels", 6}, {"kernel", 3}, {"padding", 1}});
  x = g.add("bn1", OpKind::kBatchNorm2d, {x}, {{"channels", 6}});
  x = g.add("r1", OpKind::kReLU, {x});
  x = g.add("c2", OpKind::kConv2d, {x},
            {{"in_channels", 6}, {"out_channels", 10}, {"kernel", 1}, {"bias", false}});
  x = g.add("bn2", OpKind::kBatchNorm2d, {x}, {{"channels", 10}});
  x = g.add("c3", OpKind::kConv2d, {x},
            {{"in_channels", 10}, {"out_channels", 10}, {"kernel", 3}, {"padding", 1}, {"groups", 10}});
  x = g.add("r3", OpKind::kReLU, {x});
  const int c4 =
      g.add("c4", OpKind::kConv2d, {x},
            {{"in_channels", 10}, {"out_channels", 4}, {"kernel", 3}, {"stride", 2}, {"padding", 1}});
  x = g.add("bn4", OpKind::kBatchNorm2d, {c4}, {{"channels", 4}});
  x = g.add("join", OpKind::kAdd, {x, c4});
  g.add("bn5", OpKind::kBatchNorm2d, {x}, {{"channels", 4}});
  Tensors t;
  const Session s = make_session(g, t, 23);
  const int64_t batch = 3, image = 9 * 8;
  const Vec input = random_input(static_cast<size_t>(batch * image), 24);
  const Vec got = s.run(input.data(), batch);
  Vec want;
  for (int64_t b = 0; b < batch; ++b) {
    const Vec xb(input.begin() + b * image, input.begin() + (b + 1) * image);
    Vec y = batch_norm(conv(xb, 1, 9, 8, t["c1.weight"], &t["c1.bias"], 6, 3, 1, 1), 6, t, "bn1", true);
    y = batch_norm(conv(y, 6, 9, 8, t["c2.weight"], nullptr, 10, 1, 1, 0), 10, t, "bn2", false);
    Vec dw;
    for (int64_t c = 0; c < 10; ++c) {
      const Vec plane(y.begin() + c * image, y.begin() + (c + 1) * image);
      const Vec w(t["c3.weight"].begin() + c * 9, t["c3.weight"].begin() + (c + 1) * 9),
          bias{t["c3.bias"][c]};
      for (float v : conv(plane, 1, 9, 8, w, &bias, 1, 3, 1, 1)) dw.push_back(std::max(v, 0.0f));
    }
    const Vec y4 = conv(dw, 10, 9, 8, t["c4.weight"], &t["c4.bias"], 4, 3, 2, 1);  // [4][5][4]
    Vec sum = batch_norm(y4, 4, t, "bn4", false);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += y4[i];
    for (float v : batch_norm(sum, 4, t, "bn5", false)) want.push_back(v);
  }
  require_close(got, want);
}
