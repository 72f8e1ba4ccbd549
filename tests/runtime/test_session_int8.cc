// The runtime's static int8 convolutions against a scalar reference written from the numerics contract:
// uint8 inputs with a calibrated scale and zero point, int8 weights per output channel, exact integer dot
// products, a requantizing epilogue (int32 bias, fused ReLU as the clamp) between two convs, max pooling on
// uint8, and a dequantizing epilogue at the end.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/quantize.h"
#include "kernels/requantize.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"

using namespace mighty;

namespace {

struct ConvSpec {
  int64_t cin, cout, k, pad;
  std::vector<int8_t> w;     // [cout][cin][k][k]
  std::vector<float> scale;  // [cout]
  std::vector<float> bias;   // [cout]
};

ConvSpec random_conv(int64_t cin, int64_t cout, std::mt19937& rng) {
  ConvSpec c{cin, cout, 3, 1, {}, {}, {}};
  std::uniform_int_distribution<int> wd(-127, 127);
  std::uniform_real_distribution<float> sd(0.002f, 0.02f), bd(-0.5f, 0.5f);
  for (int64_t i = 0; i < cout * cin * 9; ++i) c.w.push_back(static_cast<int8_t>(wd(rng)));
  for (int64_t o = 0; o < cout; ++o) {
    c.scale.push_back(sd(rng));
    c.bias.push_back(bd(rng));
  }
  return c;
}

// Exact integer accumulators of a conv over uint8 input q [cin][h][w] (padding = zero point, i.e. 0 after
// centering): acc[o][y][x].
std::vector<int32_t> accumulate(const ConvSpec& c, const std::vector<uint8_t>& q, int32_t zp, int64_t h,
                                int64_t w) {
  std::vector<int32_t> acc(static_cast<size_t>(c.cout * h * w), 0);
  for (int64_t o = 0; o < c.cout; ++o)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        int32_t sum = 0;
        for (int64_t ci = 0; ci < c.cin; ++ci)
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t iy = y - 1 + ky, ix = x - 1 + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              sum += (static_cast<int32_t>(q[(ci * h + iy) * w + ix]) - zp) *
                     c.w[((o * c.cin + ci) * 3 + ky) * 3 + kx];
            }
        acc[(o * h + y) * w + x] = sum;
      }
  return acc;
}

}  // namespace

TEST_CASE("static int8 convs: uint8 between them, bit-exact against the scalar definition") {
  std::mt19937 rng(1234);
  const int64_t h = 6, w = 6, batch = 3;
  const ConvSpec a = random_conv(2, 5, rng), b = random_conv(5, 3, rng);
  const kernels::QuantParams in_a{0.02f, 100}, in_b{0.05f, 0};  // b's input: after a ReLU, so zp 0

  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {2, h, w}}, {"dtype", "float32"}});
  nlohmann::json qa = {{"weight", "int8"},           {"activation", "static"},
                       {"input_scale", in_a.scale},  {"input_zero_point", in_a.zero_point},
                       {"output_scale", in_b.scale}, {"output_zero_point", in_b.zero_point},
                       {"output_relu", true}};
  x = g.add("a", OpKind::kConv2d, {x},
            {{"in_channels", 2}, {"out_channels", 5}, {"kernel", 3}, {"padding", 1}, {"quant", qa}});
  x = g.add("a.act", OpKind::kReLU, {x});
  x = g.add("pool", OpKind::kMaxPool2d, {x}, {{"kernel", 2}, {"stride", 2}});
  nlohmann::json qb = {{"weight", "int8"},
                       {"activation", "static"},
                       {"input_scale", in_b.scale},
                       {"input_zero_point", in_b.zero_point}};
  x = g.add("b", OpKind::kConv2d, {x},
            {{"in_channels", 5}, {"out_channels", 3}, {"kernel", 3}, {"padding", 1}, {"quant", qb}});
  g.add("flatten", OpKind::kFlatten, {x});
  ArtifactWriter writer;
  writer.set_metadata({{"producer", "test"}, {"graph", g.to_json()}});
  for (const auto* c : {&a, &b}) {
    const std::string name = c == &a ? "a" : "b";
    writer.add_tensor(name + ".weight", TensorType::kInt8, {c->cout, c->cin, 3, 3}, c->w.data());
    writer.add_tensor(name + ".weight_scale", TensorType::kFloat32, {c->cout}, c->scale.data());
    writer.add_tensor(name + ".bias", TensorType::kFloat32, {c->cout}, c->bias.data());
  }
  const std::string bytes = writer.serialize();

  std::uniform_real_distribution<float> xd(-2.5f, 3.5f);  // some values saturate the input range
  std::vector<float> input(static_cast<size_t>(batch * 2 * h * w));
  for (auto& v : input) v = xd(rng);

  // The reference, one image at a time.
  std::vector<float> expected;
  for (int64_t n = 0; n < batch; ++n) {
    std::vector<uint8_t> q(static_cast<size_t>(2 * h * w));
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = kernels::quantize_value(input[n * 2 * h * w + i], 1.0f / in_a.scale, in_a.zero_point);
    }
    const auto acc_a = accumulate(a, q, in_a.zero_point, h, w);
    std::vector<uint8_t> mid(acc_a.size());
    for (int64_t o = 0; o < a.cout; ++o) {
      const double acc_scale = static_cast<double>(in_a.scale) * static_cast<double>(a.scale[o]);
      const auto bias = static_cast<int32_t>(std::nearbyint(static_cast<double>(a.bias[o]) / acc_scale));
      const float m = in_a.scale * a.scale[o] / in_b.scale;
      for (int64_t p = 0; p < h * w; ++p) {
        mid[o * h * w + p] = static_cast<uint8_t>(
            kernels::requantize_value(acc_a[o * h * w + p] + bias, m, in_b.zero_point, in_b.zero_point, 255));
      }
    }
    const int64_t ph = h / 2, pw = w / 2;
    std::vector<uint8_t> pooled(static_cast<size_t>(a.cout * ph * pw));
    for (int64_t o = 0; o < a.cout; ++o)
      for (int64_t y = 0; y < ph; ++y)
        for (int64_t x2 = 0; x2 < pw; ++x2) {
          uint8_t v = 0;
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx) v = std::max(v, mid[(o * h + 2 * y + dy) * w + 2 * x2 + dx]);
          pooled[(o * ph + y) * pw + x2] = v;
        }
    const auto acc_b = accumulate(b, pooled, in_b.zero_point, ph, pw);
    for (int64_t o = 0; o < b.cout; ++o)
      for (int64_t p = 0; p < ph * pw; ++p) {
        expected.push_back(
            kernels::dequantize_value(acc_b[o * ph * pw + p], in_b.scale * b.scale[o], b.bias[o]));
      }
  }

  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    const Session s(Artifact::from_bytes(bytes, "u8.mighty"), threads);
    const auto out = s.run(input.data(), batch);
    REQUIRE(out.size() == expected.size());
    REQUIRE(out == expected);
    // Runs reuse the activation buffers of earlier runs on the thread (larger, then smaller ones, holding
    // old values): the last image alone, then the whole batch again.
    const size_t per_image = expected.size() / batch;
    const auto last = s.run(input.data() + (batch - 1) * 2 * h * w, 1);
    REQUIRE(last ==
            std::vector<float>(expected.end() - static_cast<std::ptrdiff_t>(per_image), expected.end()));
    REQUIRE(s.run(input.data(), batch) == expected);
  }
  // A batch run in slices (here 2 + 1 examples; with 2 threads the threads take whole slices) gives the same
  // outputs.
  for (int threads : {1, 2}) {
    setenv("MIGHTY_BATCH_SLICE", "2", 1);
    const Session sliced(Artifact::from_bytes(bytes, "u8.mighty"), threads);
    unsetenv("MIGHTY_BATCH_SLICE");
    REQUIRE(sliced.run(input.data(), batch) == expected);
  }
  setenv("MIGHTY_BATCH_SLICE", "two", 1);
  REQUIRE_THROWS_WITH(Session(Artifact::from_bytes(bytes, "u8.mighty"), 1),
                      Catch::Contains("MIGHTY_BATCH_SLICE='two': expected a positive number of examples"));
  unsetenv("MIGHTY_BATCH_SLICE");
}
