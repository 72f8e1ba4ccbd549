// Convolution as im2col + GEMM against a direct convolution written in the most obvious way (CHW, int64), and
// pooling against direct CHW loops.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <vector>

#include "guarded_buffer.h"
#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "kernels/transpose.h"

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
    conv_weight_hwc(oihw.data(), out_ch, g.channels, g.kernel, g.kernel * g.channels, ohwc.data());
    const PackedWeights packed = pack_weights(ohwc.data(), out_ch, g.patch(), g.patch());

    const int64_t oh = g.out_height(), ow = g.out_width();
    GuardedBuffer<uint8_t> cols(static_cast<size_t>(oh * ow * g.patch()));
    im2col_hwc(hwc.data(), g, zp, cols.data(), g.patch());

    for (Isa isa : kAllIsas) {
      if (!cpu_features().supports(isa)) continue;
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

TEST_CASE("conv: implicit im2col equals the patch matrix on every path, dense and block-sparse") {
  std::mt19937_64 rng(7);
  // 32 to 64 channels: patches deep enough for the AMX path to gather them (runs of 96 to 192 bytes).
  const int64_t channel_choices[] = {1, 2, 3, 4, 5, 8, 12, 16, 32, 40, 64};
  for (int trial = 0; trial < 120; ++trial) {
    ConvGeometry g;
    // Every tenth image 17 to 31 pixels wide: whole 16-row AMX tiles within an output row.
    g.height = 1 + static_cast<int64_t>(rng() % 10);
    g.width = trial % 10 == 0 ? 17 + static_cast<int64_t>(rng() % 15) : 1 + static_cast<int64_t>(rng() % 10);
    g.channels = channel_choices[rng() % 11];
    g.kernel = 1 + static_cast<int64_t>(rng() % 3);
    g.stride = 1 + static_cast<int64_t>(rng() % 2);
    g.padding = static_cast<int64_t>(rng() % 2);
    if (g.height + 2 * g.padding < g.kernel || g.width + 2 * g.padding < g.kernel) continue;
    const int64_t batch = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t out_ch = 1 + static_cast<int64_t>(rng() % 40);
    const uint8_t zp = static_cast<uint8_t>(rng());
    const int64_t image = g.height * g.width * g.channels, patch = g.patch();
    std::vector<uint8_t> hwc(static_cast<size_t>(batch * image));
    for (auto& v : hwc) v = static_cast<uint8_t>(rng());
    // Whole [16 x 4] blocks of zeros (in the patch-matrix order) so the sparse loops have groups to skip.
    std::vector<int8_t> oihw(static_cast<size_t>(out_ch * patch));
    for (size_t i = 0; i < oihw.size(); ++i) {
      const bool zero = (static_cast<int64_t>(i) / 4 + static_cast<int64_t>(i) / patch / 16) % 3 == 0;
      oihw[i] = zero ? 0 : static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    }

    // The reference: the patch matrix and its weights.
    const int64_t oh = g.out_height(), ow = g.out_width(), rows = batch * oh * ow;
    std::vector<uint8_t> cols(static_cast<size_t>(rows * patch));
    for (int64_t b = 0; b < batch; ++b)
      im2col_hwc(hwc.data() + b * image, g, zp, cols.data() + b * oh * ow * patch, patch);
    std::vector<int8_t> ohwc(oihw.size());
    conv_weight_hwc(oihw.data(), out_ch, g.channels, g.kernel, g.kernel * g.channels, ohwc.data());
    // The implicit im2col: padded images (the last run may read kRunSlack bytes past the last image, which
    // end at the guard page) and weights in runs of whole groups.
    const int64_t run = implicit_run_bytes(g.kernel, g.channels), image_padded = padded_image_bytes(g);
    // The AMX direct convolution may read direct_conv_slack bytes past the last image (GemmArgs::a_readable).
    GuardedBuffer<uint8_t> padded(static_cast<size_t>(batch * image_padded + direct_conv_slack(g)));
    for (size_t i = 0; i < padded.size(); ++i) padded[i] = static_cast<uint8_t>(rng());  // slack: any value
    for (int64_t b = 0; b < batch; ++b)
      pad_hwc(hwc.data() + b * image, g, zp, padded.data() + b * image_padded);
    std::vector<int64_t> offsets(static_cast<size_t>(rows));
    const int64_t stride = implicit_rows(g, batch, offsets.data());
    std::vector<int8_t> runs(static_cast<size_t>(out_ch * g.kernel * run));
    conv_weight_hwc(oihw.data(), out_ch, g.channels, g.kernel, run, runs.data());

    for (bool sparse : {false, true}) {
      PackedWeights packed = pack_weights(ohwc.data(), out_ch, patch, patch);
      PackedWeights packed_runs = pack_weights(runs.data(), out_ch, g.kernel * run, g.kernel * run);
      const PackedWeights runs64 = pack_weights_runs64(runs.data(), out_ch, g.kernel, run, g.kernel * run);
      index_zero_blocks(packed, sparse);
      index_zero_blocks(packed_runs, sparse);
      std::vector<int32_t> expected(static_cast<size_t>(rows * out_ch));
      GemmArgs args;
      args.a = cols.data();
      args.lda = patch;
      args.m = rows;
      args.a_zero_point = zp;
      args.w = &packed;
      args.c = expected.data();
      args.ldc = out_ch;
      gemm_u8s8(args, Isa::kRef, nullptr);
      for (Isa isa : kAllIsas) {
        if (!cpu_features().supports(isa)) continue;
        std::vector<int32_t> out(expected.size());
        GemmArgs implicit = args;
        implicit.a = padded.data();
        implicit.lda = 0;
        implicit.a_rows = offsets.data();
        implicit.a_segments = g.kernel;
        implicit.a_segment_stride = stride;
        implicit.w = &packed_runs;
        implicit.c = out.data();
        gemm_u8s8(implicit, isa, nullptr);
        INFO("trial " << trial << " path " << isa_name(isa) << " sparse " << sparse << " C " << g.channels
                      << " k " << g.kernel << " stride " << g.stride << " pad " << g.padding);
        REQUIRE(out == expected);
        // With the run-padded weights and the readable bytes, as the runtime calls it (the AMX path then
        // loads its tiles from the image; the other paths ignore both).
        std::fill(out.begin(), out.end(), 0);
        implicit.w_runs64 = &runs64;
        implicit.a_readable = static_cast<int64_t>(padded.size());
        gemm_u8s8(implicit, isa, nullptr);
        REQUIRE(out == expected);
      }
      if (!packed_runs.sparse) {  // the AMX tile model gathers the runs into its A strips
        std::vector<int32_t> out(expected.size());
        GemmArgs implicit = args;
        implicit.a = padded.data();
        implicit.lda = 0;
        implicit.a_rows = offsets.data();
        implicit.a_segments = g.kernel;
        implicit.a_segment_stride = stride;
        implicit.w = &packed_runs;
        implicit.c = out.data();
        gemm_amx_model(implicit, 0, out_ch);
        INFO("trial " << trial << " amx model C " << g.channels << " k " << g.kernel << " stride "
                      << g.stride);
        REQUIRE(out == expected);
        // The direct convolution over the model's tile loads (reads past the last image end at the guard page
        // unless a_readable holds them).
        std::fill(out.begin(), out.end(), 0);
        implicit.w_runs64 = &runs64;
        implicit.a_readable = static_cast<int64_t>(padded.size());
        gemm_amx_model(implicit, 0, out_ch);
        INFO("direct");
        REQUIRE(out == expected);
      }
    }
  }
}

TEST_CASE("conv: implicit im2col rejects runs that are not whole 4-deep groups") {
  std::vector<int8_t> w(2 * 6, 1);
  const PackedWeights packed = pack_weights(w.data(), 2, 6, 6);
  std::vector<uint8_t> a(64, 1);
  std::vector<int64_t> rows = {0};
  std::vector<int32_t> out(2);
  GemmArgs args;
  args.a = a.data();
  args.m = 1;
  args.a_rows = rows.data();
  args.a_segments = 2;  // runs of 3 bytes
  args.a_segment_stride = 8;
  args.w = &packed;
  args.c = out.data();
  args.ldc = 2;
  REQUIRE_THROWS_AS(gemm_u8s8(args, Isa::kRef, nullptr), std::invalid_argument);
}

TEST_CASE("pooling: max, average and global average") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t k = 1 + static_cast<int64_t>(rng() % 3), s = 1 + static_cast<int64_t>(rng() % 2);
    const int64_t h = std::max<int64_t>(2, k) + static_cast<int64_t>(rng() % 8);
    const int64_t w = std::max<int64_t>(2, k) + static_cast<int64_t>(rng() % 8);
    // Fewer than 16 channels, 16 or more (whole 16-channel blocks and a rest), and whole blocks only.
    const int64_t c = trial % 3 == 0   ? 1 + static_cast<int64_t>(rng() % 9)
                      : trial % 3 == 1 ? 16 + static_cast<int64_t>(rng() % 24)
                                       : 16 * (1 + static_cast<int64_t>(rng() % 3));
    GuardedBuffer<uint8_t> in(static_cast<size_t>(h * w * c));
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(rng());
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

TEST_CASE("transpose: every element moves to its place, small (one loop) and large (tiles, ragged edges)") {
  std::mt19937_64 rng(21);
  for (const auto& [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {32, 3136}, {3136, 33}, {517, 129}}) {
    std::vector<uint8_t> src(static_cast<size_t>(rows * cols)), dst(src.size());
    for (auto& v : src) v = static_cast<uint8_t>(rng());
    transpose(src.data(), rows, cols, dst.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) REQUIRE(dst[c * rows + r] == src[r * cols + c]);
  }
}
