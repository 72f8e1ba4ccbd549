// WebAssembly path (128-bit SIMD, `MIGHTY_ISA=simd128`): the int8 GEMM on i32x4.dot_i16x8s, the one
// multiply-add of wasm's SIMD that sums products into int32 lanes (each lane: two int16 x int16 products).
//
// Each 16-byte quarter of a packed group (4 columns x 4 depths, column by column: gemm.h) is shuffled once
// so each column's depths 0-1 are adjacent, then 2-3, and widened to two int16 vectors (weights
// sign-extended); a row's 4 activation bytes become the two int16 pairs (a0, a1) and (a2, a3) in every lane
// (zero-extended). Two dots then give 4 columns' sums over the group's 4 depths. uint8 x int8 products and
// the sum of two fit int32 exactly, and the sums wrap as int32 like every path's, so the results are ref's
// bit for bit: no offset trick and no correction (unlike the ARM paths, whose dot products take signed bytes
// only). Register tile: 2 rows x 16 columns (8 accumulators, 4 activation vectors, 2 weight vectors: within
// the 16 registers an x86-64 engine maps v128 values to, so nothing spills). The epilogue is the shared
// scalar one.
#include <wasm_simd128.h>

#include <cstdint>
#include <cstring>

#include "kernels/gemm.h"

namespace mighty::kernels {
namespace {

struct Pairs {
  v128_t lo, hi;  // depths 0-1 and 2-3
};

// Quarter `q` of a packed group: columns 4q..4q+3, as int16 (column, depth) pairs.
inline Pairs weights(const int8_t* group, int q) {
  const v128_t b = wasm_v128_load(group + 16 * q);
  const v128_t paired = wasm_i8x16_shuffle(b, b, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  return {wasm_i16x8_extend_low_i8x16(paired), wasm_i16x8_extend_high_i8x16(paired)};
}

// A group's 4 activation bytes (little-endian in `word`) as (a0, a1) and (a2, a3) in every 32-bit lane.
inline Pairs activations(uint32_t word) {
  return {wasm_i32x4_splat(static_cast<int32_t>((word & 0xffu) | ((word << 8) & 0xff0000u))),
          wasm_i32x4_splat(static_cast<int32_t>(((word >> 16) & 0xffu) | ((word >> 8) & 0xff0000u)))};
}

inline uint32_t load_group(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The last, partial group of a plain A: only the bytes that exist (their weights beyond K are zero).
inline uint32_t load_tail(const uint8_t* p, int64_t n) {
  uint32_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(n));
  return v;
}

template <int MR>
inline void dot_group(const int8_t* group, const uint32_t (&words)[MR], v128_t (&acc)[MR][4]) {
  Pairs a[MR];
  for (int r = 0; r < MR; ++r) a[r] = activations(words[r]);
  for (int q = 0; q < 4; ++q) {
    const Pairs w = weights(group, q);
    for (int r = 0; r < MR; ++r)
      acc[r][q] = wasm_i32x4_add(acc[r][q], wasm_i32x4_add(wasm_i32x4_dot_i16x8(w.lo, a[r].lo),
                                                           wasm_i32x4_dot_i16x8(w.hi, a[r].hi)));
  }
}

// Rows [row0, row0 + MR) x the 16 columns of block cb, of which those below n_end are written.
template <int MR>
void tile(const GemmArgs& args, int64_t row0, int64_t cb, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const int8_t* b = w.block(cb);
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = args.a + (args.a_rows ? args.a_rows[row0 + r] : (row0 + r) * args.lda);
  v128_t acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < 4; ++q) acc[r][q] = wasm_i32x4_splat(0);
  // K in runs of whole groups: one run for a plain A, the kernel rows of a patch for an implicit im2col.
  const int64_t full = w.k / kPackDepth, runs = args.a_rows ? args.a_segments : 1, run_groups = full / runs;
  uint32_t words[MR];
  for (int64_t s = 0; s < runs; ++s) {
    const int64_t offset = s * args.a_segment_stride;
    for (int64_t g = 0; g < run_groups; ++g) {
      for (int r = 0; r < MR; ++r) words[r] = load_group(a[r] + offset + g * kPackDepth);
      dot_group<MR>(b + (s * run_groups + g) * kPackColumns * kPackDepth, words, acc);
    }
  }
  if (const int64_t rest = w.k - full * kPackDepth; rest > 0) {
    for (int r = 0; r < MR; ++r) words[r] = load_tail(a[r] + full * kPackDepth, rest);
    dot_group<MR>(b + full * kPackColumns * kPackDepth, words, acc);
  }
  const int64_t col0 = cb * kPackColumns;
  const int64_t count = n_end - col0 < kPackColumns ? n_end - col0 : kPackColumns;
  for (int r = 0; r < MR; ++r) {
    int32_t out[kPackColumns];
    for (int q = 0; q < 4; ++q) wasm_v128_store(out + 4 * q, acc[r][q]);
    apply_epilogue_ref(args, row0 + r, col0, count, out);
  }
}

}  // namespace

// Columns [n_begin, n_end) (n_begin a multiple of 16), all rows. Block-sparse weights run densely: their
// skipped groups are zero in the packing, so the sums are the same.
void gemm_wasm(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  constexpr int kRows = 2;
  for (int64_t cb = n_begin / kPackColumns; cb * kPackColumns < n_end; ++cb) {
    int64_t row = 0;
    for (; row + kRows <= args.m; row += kRows) tile<kRows>(args, row, cb, n_end);
    if (row < args.m) tile<1>(args, row, cb, n_end);
  }
}

}  // namespace mighty::kernels
