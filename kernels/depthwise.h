// Depthwise convolution of uint8 channels-last images with int8 weights: one k x k filter per channel, a
// stride, padding with the input's zero point (the caller pads the image with pad_hwc, conv.h), exact int32
// accumulation and the GEMM's epilogue (gemm.h: int32, requantized uint8 or dequantized float), one output
// row per output pixel with the channels as columns, so a depthwise layer's output is channels-last like
// the GEMM's and feeds the next 1x1 convolution without a transpose.
//
// acc[p][c] = sum_t (x[p, t][c] - za) * w[c][t] = sum_t x[p, t][c] * w[c][t] - za * sum_t w[c][t]: the
// zero point is applied by the epilogue through the per-channel weight sums, as in the GEMM.
//
// Packed layout (every path reads the same bytes): taps in pairs (2q, 2q + 1), channels padded to 16,
// [pairs][channels_padded][2] int16, the pair of a channel adjacent: one vpmaddwd of interleaved pixel pairs
// gives 8 (AVX2) or 16 (AVX-512) channels' two-tap sums, which cannot overflow (|x w| <= 255 * 127).
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
  int64_t pairs = 0;            // (kernel * kernel + 1) / 2
  std::vector<int16_t> taps;    // [pairs][channels_padded][2], zero past the last tap and channel
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

// Shared by the paths: each tap's byte offset from a window's top-left corner in the padded image
// ([kernel * kernel]), and the exact sums of channels [c0, c1) of the window at `corner` (the scalar path,
// and the channels past the SIMD paths' last whole block).
void depthwise_offsets(const DepthwiseArgs& args, std::vector<int64_t>& offset);
void depthwise_channels_ref(const DepthwiseArgs& args, const uint8_t* corner, const int64_t* offset,
                            int64_t c0, int64_t c1, int32_t* acc);
// Shared by the paths: the GemmArgs through which an output pixel's accumulators reach the epilogue.
GemmArgs depthwise_epilogue_args(const DepthwiseArgs& args);
// The epilogue of one output row segment on each SIMD path (bit-identical to apply_epilogue_ref).
void apply_epilogue_avx2(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc);
void apply_epilogue_avx512(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc);

}  // namespace mighty::kernels
