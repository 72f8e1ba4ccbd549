// u8 x s8 -> s32 GEMM with a fused epilogue: C[m][n] = epilogue( sum_k (A[m][k] - za[m]) * W[n][k] ).
//
// Weights W are int8 [N][K] (a Linear layer's layout), symmetric (no zero point), packed once at model load
// by pack_weights() into the layout of the path that will run. Activations A are uint8 [M][K] with a zero
// point per tensor or per row. The zero point is applied after the dot product with precomputed per-column
// weight sums: sum_k (a - za) * w = sum_k a * w - za * sum_k w, all in exact int32 arithmetic.
//
// Packed layout (every SIMD path): columns in blocks of 16, K in groups of 4, [N/16][K/4][16][4] bytes, N
// padded to a multiple of 16 and K to a multiple of 4 with zero weights; each block of 16 columns is followed
// by zero groups up to a depth that is a multiple of 64, so 16 consecutive groups (1 KB) are always one AMX B
// tile. One 64-byte row of a block is one
// vpdpbusd operand; the AVX2 path widens 16-byte quarters of it to int16 and uses vpmaddwd, which cannot
// saturate (vpmaddubsw can). The ref path reads the same packed bytes, so every path is tested on the same
// packing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cpu_features.h"

namespace mighty::kernels {

class ThreadPool;

inline constexpr int64_t kPackColumns = 16;
inline constexpr int64_t kPackDepth = 4;
inline constexpr int64_t kAmxDepth = 64;     // bytes of K per AMX tile row
inline constexpr int64_t kAmxTileRows = 16;  // rows per AMX tile
// Below this many rows, or this depth (a convolution's gathered patches: kAmxMinGatherDepth), the AMX path
// runs the AVX-512 VNNI loops (see gemm_amx.cc).
inline constexpr int64_t kAmxMinRows = 8;
inline constexpr int64_t kAmxMinDepth = 64;
inline constexpr int64_t kAmxMinGatherDepth = 256;
// Packed weights per AMX column panel: a panel stays in a core's L2 while every row strip passes over it.
inline constexpr int64_t kAmxPanelBytes = 1 << 20;

struct AlignedFree {
  void operator()(void* p) const;
};
using AlignedBytes = std::unique_ptr<uint8_t[], AlignedFree>;
AlignedBytes aligned_bytes(size_t bytes);  // 64-byte aligned, zeroed

struct PackedWeights {
  int64_t n = 0, k = 0;                // logical shape of W
  int64_t n_padded = 0, k_padded = 0;  // multiples of 16 and 4
  int64_t block_stride =
      0;              // bytes from one block of 16 columns to the next (>= 16 * k_padded rounded to 64)
  AlignedBytes data;  // n_padded / 16 * block_stride bytes in the packed layout
  // Layers of one block (n <= 16) also keep their groups in pairs for the AVX-512 path, which then broadcasts
  // 8 activation bytes (two groups) per two vpdpbusd instead of 4 bytes per one: pair p is 128 bytes, columns
  // 0-7 then 8-15, each column's group 2p then 2p + 1 (4 bytes each). block_stride bytes; empty otherwise.
  // Built on every machine, as the 64-byte depth padding is: one packed model serves every path (the tests
  // run them all).
  AlignedBytes pairs;
  std::vector<int32_t> column_sums;  // sum_k W[n][k], n_padded entries (zero for padding)
  // Block-sparse execution (set by index_zero_blocks when worth it): per block of 16 columns, the 4-deep
  // groups whose 64 packed bytes are not all zero; every path then skips the others. The packed bytes stay as
  // they are, so the sparse and dense loops read the same weights.
  bool sparse = false;
  double zero_block_fraction = 0.0;  // of all [16 x 4] blocks
  std::vector<int32_t> nz_begin;     // [n_padded / 16 + 1] offsets into nz_group
  std::vector<int32_t> nz_group;     // group indices, ascending within a column block

  const int8_t* block(int64_t n_block) const {
    return reinterpret_cast<const int8_t*>(data.get()) + n_block * block_stride;
  }
};

// Packs row-major int8 W[n][k] (row stride ldw >= k). Weights with at least kSparseCrossover of their
// [16 x 4] blocks zero are indexed for the block-sparse loops (see index_zero_blocks).
PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k, int64_t ldw);

// The AMX path's direct convolution (gemm_amx_driver.h) reads each 64-byte step of a run straight from the
// image, so its weights hold every run of an implicit im2col padded to whole 64-byte steps: W[n][s * run + j]
// of `segments` runs of `run` bytes goes to column s * round_up(run, 64) + j, zeros between. Always dense
// (the padding must not make the AMX path take the block-sparse loops).
PackedWeights pack_weights_runs64(const int8_t* w, int64_t n, int64_t segments, int64_t run, int64_t ldw);
inline int64_t runs64_bytes(int64_t run) { return (run + kAmxDepth - 1) / kAmxDepth * kAmxDepth; }

// The fraction of zero [16 x 4] blocks above which the block-sparse loops beat the dense ones at batch 1
// (measured by bench_sparse; see docs/kernels.md).
inline constexpr double kSparseCrossover = 0.35;
// The AVX2 sparse loop widens each weight block again for every strip of 4 rows, so above 4 rows it pays only
// from this fraction on (measured: 0.96-0.99x at 0.50, 1.5x at 0.70 for M = 8 and 64); below it the dense
// loops run.
inline constexpr double kSparseCrossoverAvx2Rows = 0.55;
// Builds the index of nonzero blocks and sets `sparse` (forced: tests and benchmarks compare both loops on
// the same packing); returns the fraction of zero blocks.
double index_zero_blocks(PackedWeights& w, bool sparse);

enum class OutputKind {
  kInt32,    // raw accumulators (with zero-point compensation and int32 bias, no scaling)
  kUint8,    // requantized: requantize_value(acc + bias, multiplier, out_zero_point, clamp_lo, clamp_hi)
  kFloat32,  // dequantized: dequantize_value(acc + bias, multiplier, fp_bias)
};

struct Epilogue {
  OutputKind kind = OutputKind::kInt32;
  const int32_t* bias = nullptr;  // [N] int32, added to the accumulator (optional)
  // Multiplier per output column ([N], per_channel) or one for all; multiplied by row_scale[m] when given
  // (dynamic per-row activation quantization). Requantize: a_scale * w_scale / out_scale; dequantize: a_scale
  // * w_scale.
  const float* multiplier = nullptr;
  bool per_channel = false;
  const float* row_scale = nullptr;      // [M] (optional)
  int32_t out_zero_point = 0;            // kUint8
  int32_t clamp_lo = 0, clamp_hi = 255;  // kUint8; a fused ReLU is clamp_lo = out_zero_point
  const float* fp_bias = nullptr;        // kFloat32: [N] added after scaling (optional)
};

struct GemmArgs {
  const uint8_t* a = nullptr;
  int64_t lda = 0;  // >= K
  int64_t m = 0;
  // Implicit im2col (a convolution reading its patches straight from a padded image, see conv.h): when
  // a_rows is given, row m of A is not at a + m * lda but is the concatenation of a_segments runs of
  // K / a_segments bytes (a multiple of 4: whole 4-deep groups), run s at a + a_rows[m] + s *
  // a_segment_stride.
  const int64_t* a_rows = nullptr;  // [M] byte offsets
  int64_t a_segments = 1;
  int64_t a_segment_stride = 0;
  // Set by gemm_u8s8 for the block-sparse loops when a_rows is given and the weights run sparse: the offset
  // of each 4-deep group of K from its row's start, [K / 4].
  const int64_t* a_group_offsets = nullptr;
  // For the AMX path's direct convolution (optional, implicit im2col only): the weights in runs padded to
  // 64 bytes (pack_weights_runs64, same columns as w), and how many bytes from `a` may be read. Tiles of 16
  // rows are then loaded from the image itself at the rows' pixel stride, reading up to 15 pixels past the
  // last row of a tile and up to 63 bytes past a run; tiles that would read past a_readable are packed.
  const PackedWeights* w_runs64 = nullptr;
  int64_t a_readable = 0;
  int32_t a_zero_point = 0;                // per tensor
  const int32_t* a_zero_points = nullptr;  // per row [M] (optional; overrides a_zero_point)
  const PackedWeights* w = nullptr;
  Epilogue epilogue;
  void* c = nullptr;  // int32, uint8 or float [M][ldc] per epilogue.kind
  int64_t ldc = 0;    // >= N
};

// One path's kernel: computes output columns [n_begin, n_end) (multiples of 16 except at N) for all rows.
using GemmKernel = void (*)(const GemmArgs& args, int64_t n_begin, int64_t n_end);

// C = epilogue(A x W^T) on the selected path (MIGHTY_ISA or the best supported), split over `pool` when
// given. Throws std::invalid_argument for implicit im2col runs that are not whole 4-deep groups.
void gemm_u8s8(const GemmArgs& args, ThreadPool* pool = nullptr);
// The same on an explicit path (tests and benchmarks).
void gemm_u8s8(const GemmArgs& args, Isa isa, ThreadPool* pool);

// Path entry points (one translation unit each).
void gemm_ref(const GemmArgs& args, int64_t n_begin, int64_t n_end);
void gemm_avx2(const GemmArgs& args, int64_t n_begin, int64_t n_end);
void gemm_avx512vnni(const GemmArgs& args, int64_t n_begin, int64_t n_end);
void gemm_amx(const GemmArgs& args, int64_t n_begin, int64_t n_end);
void gemm_neon(const GemmArgs& args, int64_t n_begin, int64_t n_end);     // aarch64
void gemm_dotprod(const GemmArgs& args, int64_t n_begin, int64_t n_end);  // aarch64
void gemm_i8mm(const GemmArgs& args, int64_t n_begin, int64_t n_end);     // aarch64
void gemm_wasm(const GemmArgs& args, int64_t n_begin, int64_t n_end);     // WebAssembly SIMD128
// The AMX path's blocking over a scalar model of the tile instructions (no ISA needed; tests).
void gemm_amx_model(const GemmArgs& args, int64_t n_begin, int64_t n_end);

// Per-thread scratch of at least `count` int16 values, 64-byte aligned, valid until the next call on the same
// thread.
int16_t* scratch_int16(size_t count);

// Shared by the paths: the epilogue for one row segment of accumulators acc[0..count) at columns
// n0..n0+count.
void apply_epilogue_ref(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc);

}  // namespace mighty::kernels
