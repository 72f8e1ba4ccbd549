// Depthwise convolution of uint8 channels-last images with int8 weights: one k x k filter per channel, a
// stride, padding with the input's zero point (the caller pads the image with pad_hwc, conv.h), exact int32
// accumulation and the GEMM's epilogue (gemm.h: int32, requantized uint8 or dequantized float), one output
// row per output pixel with the channels as columns, so a depthwise layer's output is channels-last like
// the GEMM's and feeds the next 1x1 convolution without a transpose.
//
// acc[p][c] = sum_t (x[p, t][c] - za) * w[c][t] = sum_t x[p, t][c] * w[c][t] - za * sum_t w[c][t]: the
// zero point is applied by the epilogue through the per-channel weight sums, as in the GEMM.
//
// Packed layout (every path reads the same bytes): channels in blocks of 16 (padded), each kernel row's taps
// in pairs (dx = 2j, 2j + 1): [channels_padded / 16][kernel][row_pairs][16][2] int16, zero past a row's last
// tap and the last channel. The SIMD paths widen each padded input row once into the matching pixel pairs,
// [channels_padded / 16][x][16][2] = (x[x][c], x[x + 1][c]) (depthwise_simd.h), so one vpmaddwd (or
// vpdpwssd) of a weight register and 8 (AVX2) or 16 (AVX-512) channels of one widened pixel at a constant
// offset gives those channels' two-tap sums, which cannot overflow (|x w| <= 255 * 128).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"

namespace mighty::kernels {

class ThreadPool;

struct DepthwiseWeights {
  int64_t channels = 0, kernel = 0;
  int64_t channels_padded = 0;  // a multiple of 16
  int64_t row_pairs = 0;        // (kernel + 1) / 2
  std::vector<int16_t> taps;    // [channels_padded / 16][kernel][row_pairs][16][2]
  // The epilogue's view: n = channels and column_sums[c] = sum_t w[c][t] (no packed GEMM data).
  PackedWeights sums;
};

// Packs weights [C][kernel][kernel] (LibTorch's [C][1][k][k] of a depthwise Conv2d).
DepthwiseWeights pack_depthwise(const int8_t* w, int64_t channels, int64_t kernel);

struct DepthwiseArgs {
  const uint8_t* image = nullptr;  // one image padded by pad_hwc: (H + 2p) x (W + 2p) x C
  ConvGeometry geometry;           // of the unpadded image; channels = the weights' channels
  int32_t zero_point = 0;          // the input's
  const DepthwiseWeights* w = nullptr;
  Epilogue epilogue;  // per output channel as in the GEMM
  void* c = nullptr;  // [out_h * out_w][ldc] of int32, uint8 or float per epilogue.kind
  int64_t ldc = 0;    // >= channels
};

// One path's kernel: output rows (oy) [row_begin, row_end).
using DepthwiseKernel = void (*)(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end);
void depthwise_ref(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end);
void depthwise_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end);
void depthwise_avx512(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end);

// On the selected path (MIGHTY_ISA or the best supported), or an explicit one; output rows split over
// `pool` when given.
void depthwise_u8s8(const DepthwiseArgs& args, ThreadPool* pool = nullptr);
void depthwise_u8s8(const DepthwiseArgs& args, Isa isa, ThreadPool* pool);

// The packed weight of channel `ch`, kernel tap (dy, dx).
inline int16_t depthwise_tap(const DepthwiseWeights& w, int64_t ch, int64_t dy, int64_t dx) {
  const int64_t block = ch / kPackColumns, lane = ch % kPackColumns;
  return w.taps[static_cast<size_t>(
      (((block * w.kernel + dy) * w.row_pairs + dx / 2) * kPackColumns + lane) * 2 + dx % 2)];
}
// Shared by the paths: the GemmArgs through which an output pixel's accumulators reach the epilogue.
GemmArgs depthwise_epilogue_args(const DepthwiseArgs& args);
// The epilogue of one output row segment on each SIMD path (bit-identical to apply_epilogue_ref).
void apply_epilogue_avx2(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc);
void apply_epilogue_avx512(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc);
// The same for `rows` consecutive output rows' columns [n0, n0 + count) (row r's at acc + r * acc_stride),
// the per-column terms loaded once per column block.
void apply_epilogue_rows_avx2(const GemmArgs& args, int64_t row0, int64_t rows, int64_t n0, int64_t count,
                              const int32_t* acc, int64_t acc_stride);
void apply_epilogue_rows_avx512(const GemmArgs& args, int64_t row0, int64_t rows, int64_t n0, int64_t count,
                                const int32_t* acc, int64_t acc_stride);

}  // namespace mighty::kernels
