// Convolution as im2col + GEMM against a direct convolution written in the most obvious way (CHW, int64), and
// pooling against direct CHW loops.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "tests/kernels/guarded_buffer.h"

using namespace mighty::kernels;
using mighty::testing::GuardedBuffer;

TEST_CASE("conv: im2col + GEMM equals a direct convolution on every path") {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 60; ++trial) {
    ConvGeometry g;
    g.height = 1 + static_cast<int64_t>(rng() % 9);
    g.width = 1 + static_cast<int64_t>(rng() % 9);
    g.channels = 1 + static_cast<int64_t>(rng() % 7);
    g.kernel = 1 + static_cast<int64_t>(rng() % 3);
    g.stride = 1 + static_cast<int64_t>(rng() % 2);
    g.padding = static_cast<int64_t>(rng() % 2);
    if (g.height + 2 * g.padding < g.kernel || g.width + 2 * g.padding < g.kernel) continue;
    const int64_t out_ch = 1 + static_cast<int64_t>(rng() % 20);
    const uint8_t zp = static_cast<uint8_t>(rng());
    std::vector<uint8_t> chw(static_cast<size_t>(g.channels * g.height * g.width));
    for (auto& v : chw) v = static_cast<uint8_t>(rng());
    std::vector<int8_t> oihw(static_cast<size_t>(out_ch * g.channels * g.kernel * g.kernel));
    for (auto& v : oihw) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);

    // HWC input and weights in im2col order.
    std::vector<uint8_t> hwc(chw.size());
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t y = 0; y < g.height; ++y)
        for (int64_t x = 0; x < g.width; ++x)
          hwc[(y * g.width + x) * g.channels + c] = chw[(c * g.height + y) * g.width + x];
    std::vector<int8_t> ohwc(oihw.size());
    conv_weight_hwc(oihw.data(), out_ch, g.channels, g.kernel, ohwc.data());
    const PackedWeights packed = pack_weights(ohwc.data(), out_ch, g.patch(), g.patch());

    const int64_t oh = g.out_height(), ow = g.out_width();
    GuardedBuffer<uint8_t> cols(static_cast<size_t>(oh * ow * g.patch()));
    im2col_hwc(hwc.data(), g, zp, cols.data(), g.patch());

    for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512Vnni}) {
      if (isa > cpu_features().best_supported()) continue;
      std::vector<int32_t> out(static_cast<size_t>(oh * ow * out_ch));
      GemmArgs args;
      args.a = cols.data();
      args.lda = g.patch();
      args.m = oh * ow;
      args.a_zero_point = zp;
      args.w = &packed;
      args.c = out.data();
      args.ldc = out_ch;
      gemm_u8s8(args, isa, nullptr);
      for (int64_t o = 0; o < out_ch; ++o) {
        for (int64_t oy = 0; oy < oh; ++oy) {
          for (int64_t ox = 0; ox < ow; ++ox) {
            int64_t sum = 0;
            for (int64_t c = 0; c < g.channels; ++c) {
              for (int64_t ky = 0; ky < g.kernel; ++ky) {
                for (int64_t kx = 0; kx < g.kernel; ++kx) {
                  const int64_t iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx;
                  // Padding holds the zero point, i.e. the real value 0.
                  const int64_t a = (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width)
                                        ? zp
                                        : chw[(c * g.height + iy) * g.width + ix];
                  sum += (a - zp) * oihw[((o * g.channels + c) * g.kernel + ky) * g.kernel + kx];
                }
              }
            }
            INFO("trial " << trial << " path " << isa_name(isa));
            REQUIRE(out[(oy * ow + ox) * out_ch + o] == sum);
          }
        }
      }
    }
  }
}

TEST_CASE("pooling: max, average and global average") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t h = 2 + static_cast<int64_t>(rng() % 8), w = 2 + static_cast<int64_t>(rng() % 8);
    const int64_t c = 1 + static_cast<int64_t>(rng() % 9), k = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t s = 1 + static_cast<int64_t>(rng() % 2);
    std::vector<uint8_t> in(static_cast<size_t>(h * w * c));
    for (auto& v : in) v = static_cast<uint8_t>(rng());
    const int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
    GuardedBuffer<uint8_t> mx(static_cast<size_t>(oh * ow * c)), av(static_cast<size_t>(oh * ow * c));
    max_pool_hwc(in.data(), h, w, c, k, s, mx.data());
    avg_pool_hwc(in.data(), h, w, c, k, s, av.data());
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          int best = 0, total = 0;
          for (int64_t ky = 0; ky < k; ++ky) {
            for (int64_t kx = 0; kx < k; ++kx) {
              const int v = in[((oy * s + ky) * w + ox * s + kx) * c + ch];
              best = std::max(best, v);
              total += v;
            }
          }
          const int n = static_cast<int>(k * k);
          REQUIRE(mx[(oy * ow + ox) * c + ch] == best);
          REQUIRE(av[(oy * ow + ox) * c + ch] == (total + n / 2) / n);
        }
      }
    }
    GuardedBuffer<uint8_t> gap(static_cast<size_t>(c));
    global_avg_pool_hwc(in.data(), h * w, c, gap.data());
    for (int64_t ch = 0; ch < c; ++ch) {
      int64_t total = 0;
      for (int64_t p = 0; p < h * w; ++p) total += in[p * c + ch];
      REQUIRE(gap[ch] == (total + h * w / 2) / (h * w));
    }
  }
}
