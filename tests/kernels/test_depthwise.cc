// The depthwise kernel on every path against a plain formula written here: int32, requantized uint8 (with
// clamps) and dequantized float outputs, channel counts that are and are not multiples of the SIMD width,
// kernels 1 to 5 and 7, strides 1 and 2, rows of fewer and more than four output pixels, padding; the padded
// image ends at a guard page.
#include <catch2/catch.hpp>

#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include "guarded_buffer.h"
#include "kernels/depthwise.h"
#include "kernels/requantize.h"
#include "kernels/thread_pool.h"

using namespace mighty::kernels;
using mighty::testing::GuardedBuffer;

namespace {

struct Case {
  int64_t h, w, c, k, stride, pad;
};

std::vector<Isa> paths() {
  std::vector<Isa> out = {Isa::kRef};
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni}) {
    if (cpu_features().supports(isa)) {
      out.push_back(isa);
    } else {
      static bool said[3] = {};
      if (!said[static_cast<int>(isa)])
        std::cout << "depthwise tests: SKIPPING path " << isa_name(isa) << "\n";
      said[static_cast<int>(isa)] = true;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("depthwise convolution: every path equals the formula, byte for byte") {
  std::mt19937 rng(11);
  const Case cases[] = {{7, 7, 8, 3, 1, 1},   {14, 14, 96, 3, 1, 1}, {9, 11, 19, 3, 2, 1},
                        {6, 5, 33, 5, 1, 2},  {5, 5, 16, 1, 1, 0},   {8, 8, 1, 3, 2, 0},
                        {4, 4, 40, 3, 1, 0},  {10, 10, 24, 5, 2, 2}, {3, 3, 17, 3, 1, 1},
                        {12, 13, 9, 7, 1, 3}, {23, 22, 48, 3, 2, 1}, {2, 30, 31, 3, 1, 1},
                        {5, 6, 20, 4, 1, 1},  {7, 9, 16, 2, 2, 0}};
  ThreadPool pool2(2);
  for (const Case& t : cases) {
    ConvGeometry g;
    g.height = t.h;
    g.width = t.w;
    g.channels = t.c;
    g.kernel = t.k;
    g.stride = t.stride;
    g.padding = t.pad;
    const int64_t oh = g.out_height(), ow = g.out_width(), taps = t.k * t.k;
    std::uniform_int_distribution<int> u8(0, 255), s8(-127, 127);
    const int32_t zp = u8(rng);
    std::vector<uint8_t> image(static_cast<size_t>(t.h * t.w * t.c));
    for (auto& v : image) v = static_cast<uint8_t>(u8(rng));
    std::vector<int8_t> weights(static_cast<size_t>(t.c * taps));
    for (auto& v : weights) v = static_cast<int8_t>(s8(rng));
    // Extremes too: a full-scale filter over a saturated patch.
    weights[0] = -127;
    GuardedBuffer<uint8_t> padded(static_cast<size_t>(padded_image_bytes(g)));
    pad_hwc(image.data(), g, static_cast<uint8_t>(zp), padded.data());
    const DepthwiseWeights packed = pack_depthwise(weights.data(), t.c, t.k);
    // The formula: acc = sum over taps of (x - zp) * w, x = zp outside the image.
    std::vector<int32_t> acc(static_cast<size_t>(oh * ow * t.c));
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t ch = 0; ch < t.c; ++ch) {
          int32_t s = 0;
          for (int64_t ky = 0; ky < t.k; ++ky)
            for (int64_t kx = 0; kx < t.k; ++kx) {
              const int64_t iy = oy * t.stride - t.pad + ky, ix = ox * t.stride - t.pad + kx;
              const int32_t x = (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w)
                                    ? zp
                                    : image[static_cast<size_t>((iy * t.w + ix) * t.c + ch)];
              s += (x - zp) * weights[static_cast<size_t>(ch * taps + ky * t.k + kx)];
            }
          acc[static_cast<size_t>((oy * ow + ox) * t.c + ch)] = s;
        }
    std::vector<int32_t> bias(static_cast<size_t>(t.c));
    std::vector<float> mult(static_cast<size_t>(t.c)), fp_bias(static_cast<size_t>(t.c));
    std::uniform_real_distribution<float> scale(1e-4f, 4e-3f), fb(-1.0f, 1.0f);
    for (int64_t ch = 0; ch < t.c; ++ch) {
      bias[ch] = s8(rng) * 40;
      mult[ch] = scale(rng);
      fp_bias[ch] = fb(rng);
    }
    // Large multipliers too, for uint8: sums far outside int16 after scaling (every saturation of the
    // integer clamp), and beyond int32 (where the SIMD paths must clamp in float before rounding).
    std::vector<float> large = mult;
    for (int64_t ch = 0; ch < t.c; ++ch)
      if (ch % 3) large[ch] = ch % 3 == 1 ? 50.0f : 1e5f;
    const std::pair<OutputKind, const std::vector<float>*> variants[] = {{OutputKind::kInt32, &mult},
                                                                         {OutputKind::kUint8, &mult},
                                                                         {OutputKind::kUint8, &large},
                                                                         {OutputKind::kFloat32, &mult}};
    for (const auto& [kind, multipliers] : variants) {
      const std::vector<float>& m = *multipliers;
      DepthwiseArgs a;
      a.image = padded.data();
      a.geometry = g;
      a.zero_point = zp;
      a.w = &packed;
      a.epilogue.kind = kind;
      a.epilogue.bias = bias.data();
      a.epilogue.multiplier = m.data();
      a.epilogue.per_channel = true;
      a.epilogue.out_zero_point = 77;
      a.epilogue.clamp_lo = 77;  // a fused ReLU
      a.epilogue.clamp_hi = 250;
      a.epilogue.fp_bias = fp_bias.data();
      const size_t elem = kind == OutputKind::kUint8 ? 1 : 4;
      const int64_t ldc = t.c + 3;  // untouched padding between rows
      const size_t bytes = static_cast<size_t>(oh * ow * ldc) * elem;
      std::vector<uint8_t> expected(bytes, 0xab);
      for (int64_t p = 0; p < oh * ow; ++p)
        for (int64_t ch = 0; ch < t.c; ++ch) {
          const int32_t v = acc[static_cast<size_t>(p * t.c + ch)] + bias[ch];
          uint8_t* dst = expected.data() + static_cast<size_t>(p * ldc + ch) * elem;
          if (kind == OutputKind::kInt32) {
            std::memcpy(dst, &v, 4);
          } else if (kind == OutputKind::kUint8) {
            *dst = static_cast<uint8_t>(requantize_value(v, m[ch], 77, 77, 250));
          } else {
            const float f = dequantize_value(v, m[ch], fp_bias[ch]);
            std::memcpy(dst, &f, 4);
          }
        }
      for (Isa isa : paths()) {
        for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
          INFO("path " << isa_name(isa) << ", " << t.h << "x" << t.w << "x" << t.c << " k" << t.k << " s"
                       << t.stride << " p" << t.pad << ", output kind " << static_cast<int>(kind));
          GuardedBuffer<uint8_t> got(bytes);
          std::memset(got.data(), 0xab, bytes);
          a.c = got.data();
          a.ldc = ldc;
          depthwise_u8s8(a, isa, pool);
          REQUIRE(std::memcmp(got.data(), expected.data(), bytes) == 0);
        }
      }
    }
  }
}

TEST_CASE("depthwise convolution refuses weights of another geometry") {
  const std::vector<int8_t> w(18, 1);
  const DepthwiseWeights packed = pack_depthwise(w.data(), 2, 3);
  DepthwiseArgs a;
  a.geometry.height = a.geometry.width = 4;
  a.geometry.channels = 3;
  a.geometry.kernel = 3;
  a.w = &packed;
  REQUIRE_THROWS_AS(depthwise_u8s8(a, Isa::kRef, nullptr), std::invalid_argument);
}
