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
#include <vector>

#include "kernels/gemm.h"
#include "kernels/gemm_loads.h"

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

// Lane L's 32 bits in every lane (two int16 activations).
template <int L>
inline v128_t lane32(v128_t v) {
  return wasm_i32x4_shuffle(v, v, L, L, L, L);
}

// One group's 4 depths for MR rows against its widened weights (8 vectors: quarter q's pairs at 2q, 2q + 1).
template <int MR>
inline void dot_group(const v128_t* wg, const Pairs (&a)[MR], v128_t (&acc)[MR][4]) {
  for (int q = 0; q < 4; ++q) {
    const v128_t lo = wasm_v128_load(wg + 2 * q), hi = wasm_v128_load(wg + 2 * q + 1);
    for (int r = 0; r < MR; ++r)
      acc[r][q] = wasm_i32x4_add(
          acc[r][q], wasm_i32x4_add(wasm_i32x4_dot_i16x8(lo, a[r].lo), wasm_i32x4_dot_i16x8(hi, a[r].hi)));
  }
}

template <int MR>
inline void dot_words(const v128_t* wg, const uint32_t (&words)[MR], v128_t (&acc)[MR][4]) {
  Pairs a[MR];
  for (int r = 0; r < MR; ++r) a[r] = activations(words[r]);
  dot_group<MR>(wg, a, acc);
}

// Groups G of four read as one 16-byte load per row, zero-extended to int16 once (x[r]: groups 0-1 and 2-3).
template <int MR, int G>
inline void dot_quad_group(const v128_t* wg, const v128_t (&x)[MR][2], v128_t (&acc)[MR][4]) {
  Pairs a[MR];
  for (int r = 0; r < MR; ++r)
    a[r] = {lane32<(G % 2) * 2>(x[r][G / 2]), lane32<(G % 2) * 2 + 1>(x[r][G / 2])};
  dot_group<MR>(wg + 8 * G, a, acc);
}

template <int MR>
inline void dot_four_groups(const v128_t* wg, const uint8_t* const (&rows)[MR], v128_t (&acc)[MR][4]) {
  v128_t x[MR][2];
  for (int r = 0; r < MR; ++r) {
    const v128_t bytes = wasm_v128_load(rows[r]);
    x[r][0] = wasm_u16x8_extend_low_u8x16(bytes);
    x[r][1] = wasm_u16x8_extend_high_u8x16(bytes);
  }
  dot_quad_group<MR, 0>(wg, x, acc);
  dot_quad_group<MR, 1>(wg, x, acc);
  dot_quad_group<MR, 2>(wg, x, acc);
  dot_quad_group<MR, 3>(wg, x, acc);
}

// Block cb's groups widened once for all the rows that pass over it (per-thread scratch): every group, or
// for block-sparse weights only those the loop reads (the nonzero ones and a partial last group).
const v128_t* widen_block(const PackedWeights& w, int64_t cb) {
  thread_local std::vector<v128_t> widened;
  const int64_t groups = (w.k + kPackDepth - 1) / kPackDepth;
  widened.resize(static_cast<size_t>(groups * 8));
  const int8_t* b = w.block(cb);
  const auto widen = [&](int64_t g) {
    for (int q = 0; q < 4; ++q) {
      const Pairs p = weights(b + g * kPackColumns * kPackDepth, q);
      widened[static_cast<size_t>(g * 8 + 2 * q)] = p.lo;
      widened[static_cast<size_t>(g * 8 + 2 * q + 1)] = p.hi;
    }
  };
  if (!w.sparse) {
    for (int64_t g = 0; g < groups; ++g) widen(g);
    return widened.data();
  }
  for (int32_t j = w.nz_begin[cb]; j < w.nz_begin[cb + 1]; ++j) widen(w.nz_group[j]);
  if (w.k % kPackDepth != 0) widen(groups - 1);
  return widened.data();
}

// The epilogue (gemm.h, requantize.h) for one row's 16 accumulators at column col0, `count` of them written:
// 4 columns per step, each step the scalar definition's operations in its order (convert, multiply, clamp by
// pseudo-min/max, which are `b < a ? b : a` as std::min is, round half to even), so the bytes are ref's.
void epilogue16(const GemmArgs& args, int64_t row, int64_t col0, int64_t count, const v128_t (&acc)[4]) {
  if (count < kPackColumns) {
    int32_t out[kPackColumns];
    for (int q = 0; q < 4; ++q) wasm_v128_store(out + 4 * q, acc[q]);
    return apply_epilogue_ref(args, row, col0, count, out);
  }
  const Epilogue& e = args.epilogue;
  const v128_t za = wasm_i32x4_splat(args.a_zero_points ? args.a_zero_points[row] : args.a_zero_point);
  const int32_t* sums = args.w->column_sums.data() + col0;
  v128_t v[4];
  for (int q = 0; q < 4; ++q) {
    v[q] = wasm_i32x4_sub(acc[q], wasm_i32x4_mul(za, wasm_v128_load(sums + 4 * q)));
    if (e.bias) v[q] = wasm_i32x4_add(v[q], wasm_v128_load(e.bias + col0 + 4 * q));
  }
  const int64_t at = row * args.ldc + col0;
  if (e.kind == OutputKind::kInt32) {
    for (int q = 0; q < 4; ++q) wasm_v128_store(static_cast<int32_t*>(args.c) + at + 4 * q, v[q]);
    return;
  }
  v128_t mult[4];
  for (int q = 0; q < 4; ++q) {
    mult[q] = e.per_channel ? wasm_v128_load(e.multiplier + col0 + 4 * q) : wasm_f32x4_splat(e.multiplier[0]);
    if (e.row_scale) mult[q] = wasm_f32x4_mul(wasm_f32x4_splat(e.row_scale[row]), mult[q]);
  }
  if (e.kind == OutputKind::kFloat32) {
    for (int q = 0; q < 4; ++q) {
      v128_t f = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(v[q]), mult[q]);
      f = wasm_f32x4_add(f, e.fp_bias ? wasm_v128_load(e.fp_bias + col0 + 4 * q) : wasm_f32x4_splat(0.0f));
      wasm_v128_store(static_cast<float*>(args.c) + at + 4 * q, f);
    }
    return;
  }
  const v128_t lo = wasm_f32x4_splat(static_cast<float>(e.clamp_lo - e.out_zero_point));
  const v128_t hi = wasm_f32x4_splat(static_cast<float>(e.clamp_hi - e.out_zero_point));
  const v128_t zp = wasm_i32x4_splat(e.out_zero_point);
  v128_t q32[4];
  for (int q = 0; q < 4; ++q) {
    v128_t f = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(v[q]), mult[q]);
    f = wasm_f32x4_pmin(wasm_f32x4_pmax(f, lo), hi);
    q32[q] = wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(f)), zp);
  }
  // Every value is within [clamp_lo, clamp_hi] (a subset of 0..255): the saturating narrows are exact.
  const v128_t bytes = wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(q32[0], q32[1]),
                                               wasm_i16x8_narrow_i32x4(q32[2], q32[3]));
  wasm_v128_store(static_cast<uint8_t*>(args.c) + at, bytes);
}

// Rows [row0, row0 + MR) x the 16 columns of block cb, of which those below n_end are written. SPARSE: only
// the block's nonzero groups (PackedWeights::nz_group), group g of an implicit im2col row at
// args.a_group_offsets[g].
template <int MR, bool SPARSE>
void tile(const GemmArgs& args, const v128_t* wb, int64_t row0, int64_t cb, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = args.a + (args.a_rows ? args.a_rows[row0 + r] : (row0 + r) * args.lda);
  v128_t acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < 4; ++q) acc[r][q] = wasm_i32x4_splat(0);
  const int64_t full = w.k / kPackDepth, rest = w.k - full * kPackDepth;
  uint32_t words[MR];
  if constexpr (SPARSE) {
    const int32_t* groups = w.nz_group.data() + w.nz_begin[cb];
    int64_t count = w.nz_begin[cb + 1] - w.nz_begin[cb];
    if (count > 0 && groups[count - 1] == full) --count;  // the partial last group: below
    for (int64_t j = 0; j < count; ++j) {
      const int64_t g = groups[j], at = args.a_rows ? args.a_group_offsets[g] : g * kPackDepth;
      for (int r = 0; r < MR; ++r) words[r] = load_group(a[r] + at);
      dot_words<MR>(wb + 8 * g, words, acc);
    }
  } else {
    // K in runs of whole groups: one run for a plain A, the kernel rows of a patch for an implicit im2col.
    const int64_t runs = args.a_rows ? args.a_segments : 1, run_groups = full / runs;
    for (int64_t s = 0; s < runs; ++s) {
      const int64_t offset = s * args.a_segment_stride;
      int64_t g = 0;
      for (; g + 4 <= run_groups; g += 4) {  // 16 bytes of the run per row
        const uint8_t* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = a[r] + offset + g * kPackDepth;
        dot_four_groups<MR>(wb + 8 * (s * run_groups + g), rows, acc);
      }
      for (; g < run_groups; ++g) {
        for (int r = 0; r < MR; ++r) words[r] = load_group(a[r] + offset + g * kPackDepth);
        dot_words<MR>(wb + 8 * (s * run_groups + g), words, acc);
      }
    }
  }
  if (rest > 0) {  // zero weights when a sparse block skipped it: adding them changes nothing
    for (int r = 0; r < MR; ++r) words[r] = load_tail(a[r] + full * kPackDepth, rest);
    dot_words<MR>(wb + 8 * full, words, acc);
  }
  const int64_t col0 = cb * kPackColumns;
  const int64_t count = n_end - col0 < kPackColumns ? n_end - col0 : kPackColumns;
  for (int r = 0; r < MR; ++r) epilogue16(args, row0 + r, col0, count, acc[r]);
}

template <bool SPARSE>
void gemm_blocks(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  constexpr int kRows = 2;
  for (int64_t cb = n_begin / kPackColumns; cb * kPackColumns < n_end; ++cb) {
    const v128_t* wb = widen_block(*args.w, cb);
    int64_t row = 0;
    for (; row + kRows <= args.m; row += kRows) tile<kRows, SPARSE>(args, wb, row, cb, n_end);
    if (row < args.m) tile<1, SPARSE>(args, wb, row, cb, n_end);
  }
}

}  // namespace

// Columns [n_begin, n_end) (n_begin a multiple of 16), all rows.
void gemm_wasm(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  if (args.w->sparse)
    gemm_blocks<true>(args, n_begin, n_end);
  else
    gemm_blocks<false>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
