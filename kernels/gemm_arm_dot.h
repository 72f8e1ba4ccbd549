// The aarch64 int8 GEMM on 4-byte dot products, written once over the instruction (a policy D):
// gemm_dotprod.cc instantiates it with ARMv8.2's SDOT, gemm_i8mm.cc with ARMv8.6's SUDOT.
//
// SDOT multiplies signed bytes only, and activations are uint8: each activation byte is taken as a - 128 (an
// XOR with 0x80), and the 128 * (sum of the column's weights) this removes is added back to the int32 sum
// before the shared epilogue, in wrapping uint32 arithmetic, so the result is the exact int32 of every path.
// SUDOT (i8mm) multiplies signed weights by unsigned activations directly: no XOR, no correction.
// The packed layout serves as it is: a 4-depth group of 16 columns is 64 bytes, four registers of 4 columns x
// 4 depths, the shape of the instructions' four lanes; a group's 4 activation bytes go to every lane (by lane
// index, or broadcast for a lone group).
// Register tile: 4 rows x 16 columns (16 accumulators, 4 weight registers, 4 activation registers holding 4
// groups each). No std:: templates here (an instantiation compiled with a unit's flags could be picked by the
// linker for generic code); internal linkage throughout (the header is compiled with other flags in each
// unit). D: Act (the activations' register type), act(uint8x16_t) -> Act, dot(acc, b, a), dot_lane<L>(acc, b,
// a), kCorrection (times the column sums, added back to the sums).
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/gemm.h"
#include "kernels/gemm_loads.h"

namespace mighty::kernels {
namespace {

// The activations of the paths whose instruction multiplies signed bytes only: a - 128 (XOR 0x80), with 128 x
// the column sums added back to the sums.
struct SignFlipped {
  using Act = int8x16_t;
  static constexpr uint32_t kCorrection = 128;
  static Act act(uint8x16_t a) { return vreinterpretq_s8_u8(veorq_u8(a, vdupq_n_u8(0x80))); }
};

template <class D, int MR>
inline void dot_group(const int8_t* group, const uint32_t (&words)[MR], int32x4_t (&acc)[MR][4]) {
  int8x16_t b[4];
  for (int v = 0; v < 4; ++v) b[v] = vld1q_s8(group + 16 * v);
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
    const typename D::Act a = D::act(vreinterpretq_u8_u32(vdupq_n_u32(words[r])));
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = D::dot(acc[r][v], b[v], a);
  }
}

// Four groups at once: 16 bytes of each row's activations in one register, each group's 4 bytes picked by
// SDOT's lane form (no per-group broadcast). Group L's weights are 64 bytes at group + 64 L. The loops over
// the accumulators are unrolled in full (pragma), so they stay in registers: clang left the longer NEON form
// as a loop over them in memory.
template <class D, int MR, int L>
inline void dot_lane(const int8_t* group, const typename D::Act (&a)[MR], int32x4_t (&acc)[MR][4]) {
  int8x16_t b[4];
  for (int v = 0; v < 4; ++v) b[v] = vld1q_s8(group + 64 * L + 16 * v);
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = D::template dot_lane<L>(acc[r][v], b[v], a[r]);
}

template <class D, int MR>
inline void dot_four_groups(const int8_t* groups, const uint8_t* const (&rows)[MR], int32x4_t (&acc)[MR][4]) {
  typename D::Act a[MR];
  for (int r = 0; r < MR; ++r) a[r] = D::act(vld1q_u8(rows[r]));
  dot_lane<D, MR, 0>(groups, a, acc);
  dot_lane<D, MR, 1>(groups, a, acc);
  dot_lane<D, MR, 2>(groups, a, acc);
  dot_lane<D, MR, 3>(groups, a, acc);
}

// The epilogue (gemm.h, requantize.h) for one row's 16 accumulators at column col0, `count` of them written:
// 4 columns per step, each step the scalar definition's operations in its order (convert, multiply, clamp as
// std::max/min compare, round half to even: FCVTNS), so the bytes are ref's.
inline void epilogue16(const GemmArgs& args, int64_t row, int64_t col0, int64_t count,
                       const int32x4_t (&acc)[4]) {
  if (count < kPackColumns) {
    int32_t out[kPackColumns];
    for (int q = 0; q < 4; ++q) vst1q_s32(out + 4 * q, acc[q]);
    return apply_epilogue_ref(args, row, col0, count, out);
  }
  const Epilogue& e = args.epilogue;
  const int32x4_t za = vdupq_n_s32(args.a_zero_points ? args.a_zero_points[row] : args.a_zero_point);
  const int32_t* sums = args.w->column_sums.data() + col0;
  int32x4_t v[4];
  for (int q = 0; q < 4; ++q) {
    v[q] = vsubq_s32(acc[q], vmulq_s32(za, vld1q_s32(sums + 4 * q)));
    if (e.bias) v[q] = vaddq_s32(v[q], vld1q_s32(e.bias + col0 + 4 * q));
  }
  const int64_t at = row * args.ldc + col0;
  if (e.kind == OutputKind::kInt32) {
    for (int q = 0; q < 4; ++q) vst1q_s32(static_cast<int32_t*>(args.c) + at + 4 * q, v[q]);
    return;
  }
  float32x4_t mult[4];
  for (int q = 0; q < 4; ++q) {
    mult[q] = e.per_channel ? vld1q_f32(e.multiplier + col0 + 4 * q) : vdupq_n_f32(e.multiplier[0]);
    if (e.row_scale) mult[q] = vmulq_f32(vdupq_n_f32(e.row_scale[row]), mult[q]);
  }
  if (e.kind == OutputKind::kFloat32) {
    for (int q = 0; q < 4; ++q) {
      const float32x4_t f = vmulq_f32(vcvtq_f32_s32(v[q]), mult[q]);
      vst1q_f32(static_cast<float*>(args.c) + at + 4 * q,
                vaddq_f32(f, e.fp_bias ? vld1q_f32(e.fp_bias + col0 + 4 * q) : vdupq_n_f32(0.0f)));
    }
    return;
  }
  const float32x4_t lo = vdupq_n_f32(static_cast<float>(e.clamp_lo - e.out_zero_point));
  const float32x4_t hi = vdupq_n_f32(static_cast<float>(e.clamp_hi - e.out_zero_point));
  const int32x4_t zp = vdupq_n_s32(e.out_zero_point);
  int32x4_t q32[4];
  for (int q = 0; q < 4; ++q) {
    float32x4_t f = vmulq_f32(vcvtq_f32_s32(v[q]), mult[q]);
    f = vbslq_f32(vcltq_f32(f, lo), lo, f);  // std::max(f, lo)
    f = vbslq_f32(vcltq_f32(hi, f), hi, f);  // std::min(f, hi)
    q32[q] = vaddq_s32(vcvtnq_s32_f32(f), zp);
  }
  // Every value is within [clamp_lo, clamp_hi] (a subset of 0..255): the saturating narrows are exact.
  const int16x8_t h0 = vcombine_s16(vqmovn_s32(q32[0]), vqmovn_s32(q32[1]));
  const int16x8_t h1 = vcombine_s16(vqmovn_s32(q32[2]), vqmovn_s32(q32[3]));
  vst1q_u8(static_cast<uint8_t*>(args.c) + at, vcombine_u8(vqmovun_s16(h0), vqmovun_s16(h1)));
}

// Rows [row0, row0 + MR) x the 16 columns of block cb, of which those below n_end are written.
template <class D, int MR>
void tile(const GemmArgs& args, int64_t row0, int64_t cb, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const int8_t* b = w.block(cb);
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = args.a + (args.a_rows ? args.a_rows[row0 + r] : (row0 + r) * args.lda);
  int32x4_t acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = vdupq_n_s32(0);
  // K in runs of whole groups: one run for a plain A, the kernel rows of a patch for an implicit im2col.
  const int64_t full = w.k / kPackDepth, runs = args.a_rows ? args.a_segments : 1, run_groups = full / runs;
  uint32_t words[MR];
  for (int64_t s = 0; s < runs; ++s) {
    const int64_t offset = s * args.a_segment_stride;
    int64_t g = 0;
    for (; g + 4 <= run_groups; g += 4) {
      const uint8_t* rows[MR];
      for (int r = 0; r < MR; ++r) rows[r] = a[r] + offset + g * kPackDepth;
      dot_four_groups<D, MR>(b + (s * run_groups + g) * 64, rows, acc);
    }
    for (; g < run_groups; ++g) {
      for (int r = 0; r < MR; ++r) words[r] = load_group(a[r] + offset + g * kPackDepth);
      dot_group<D, MR>(b + (s * run_groups + g) * 64, words, acc);
    }
  }
  if (const int64_t rest = w.k - full * kPackDepth; rest > 0) {
    for (int r = 0; r < MR; ++r) words[r] = load_tail(a[r] + full * kPackDepth, rest);
    dot_group<D, MR>(b + full * 64, words, acc);
  }
  const int64_t col0 = cb * kPackColumns;
  const int64_t count = n_end - col0 < kPackColumns ? n_end - col0 : kPackColumns;
  // column_sums has an entry for every padded column: 16 can always be read.
  const uint32_t* sums = reinterpret_cast<const uint32_t*>(w.column_sums.data()) + col0;
  for (int r = 0; r < MR; ++r) {
    if (D::kCorrection != 0)
      for (int v = 0; v < 4; ++v)
        acc[r][v] = vreinterpretq_s32_u32(vaddq_u32(vreinterpretq_u32_s32(acc[r][v]),
                                                    vmulq_n_u32(vld1q_u32(sums + 4 * v), D::kCorrection)));
    epilogue16(args, row0 + r, col0, count, acc[r]);
  }
}

// Columns [n_begin, n_end) (n_begin a multiple of 16), all rows.
template <class D>
void gemm_dot(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  for (int64_t cb = n_begin / kPackColumns; cb * kPackColumns < n_end; ++cb) {
    int64_t row = 0;
    for (; row + D::kRows <= args.m; row += D::kRows) tile<D, D::kRows>(args, row, cb, n_end);
    switch (args.m - row) {
      case 3:
        tile<D, 3>(args, row, cb, n_end);
        break;
      case 2:
        tile<D, 2>(args, row, cb, n_end);
        break;
      case 1:
        tile<D, 1>(args, row, cb, n_end);
        break;
      default:
        break;
    }
  }
}

}  // namespace
}  // namespace mighty::kernels
