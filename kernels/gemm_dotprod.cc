// aarch64 dot-product path (ARMv8.2 SDOT, `MIGHTY_ISA=dotprod`): the int8 GEMM on 128-bit NEON registers.
// SDOT multiplies signed bytes only, and activations are uint8: each activation byte is taken as a - 128 (an
// XOR with 0x80), and the 128 * (sum of the column's weights) this removes is added back to the int32 sum
// before the shared epilogue, in wrapping uint32 arithmetic, so the result is the exact int32 of every path.
// The packed layout serves as it is: a 4-depth group of 16 columns is 64 bytes, four registers of 4 columns x
// 4 depths, which is the shape of SDOT's four lanes; the activations' 4 bytes go to every lane.
// Register tile: 4 rows x 16 columns (16 accumulators, 4 weight registers, 4 activation registers holding 4
// groups each). No std:: templates here (an
// instantiation compiled with this unit's flags could be picked by the linker for generic code).
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/gemm.h"

namespace mighty::kernels {
namespace {

constexpr uint32_t kFlipSign = 0x80808080u;  // a -> a - 128 in each byte, as a signed byte

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
inline void dot_group(const int8_t* group, const uint32_t (&words)[MR], int32x4_t (&acc)[MR][4]) {
  int8x16_t b[4];
  for (int v = 0; v < 4; ++v) b[v] = vld1q_s8(group + 16 * v);
  for (int r = 0; r < MR; ++r) {
    const int8x16_t a = vreinterpretq_s8_u32(vdupq_n_u32(words[r] ^ kFlipSign));
    for (int v = 0; v < 4; ++v) acc[r][v] = vdotq_s32(acc[r][v], b[v], a);
  }
}

// Four groups at once: 16 bytes of each row's activations in one register, each group's 4 bytes picked by
// SDOT's lane form (no per-group broadcast). Group L's weights are 64 bytes at group + 64 L.
template <int MR, int L>
inline void dot_lane(const int8_t* group, const int8x16_t (&a)[MR], int32x4_t (&acc)[MR][4]) {
  int8x16_t b[4];
  for (int v = 0; v < 4; ++v) b[v] = vld1q_s8(group + 64 * L + 16 * v);
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = vdotq_laneq_s32(acc[r][v], b[v], a[r], L);
}

template <int MR>
inline void dot_four_groups(const int8_t* groups, const uint8_t* const (&rows)[MR], int32x4_t (&acc)[MR][4]) {
  int8x16_t a[MR];
  const uint8x16_t flip = vdupq_n_u8(0x80);
  for (int r = 0; r < MR; ++r) a[r] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(rows[r]), flip));
  dot_lane<MR, 0>(groups, a, acc);
  dot_lane<MR, 1>(groups, a, acc);
  dot_lane<MR, 2>(groups, a, acc);
  dot_lane<MR, 3>(groups, a, acc);
}

// Rows [row0, row0 + MR) x the 16 columns of block cb, of which those below n_end are written.
template <int MR>
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
      dot_four_groups<MR>(b + (s * run_groups + g) * 64, rows, acc);
    }
    for (; g < run_groups; ++g) {
      for (int r = 0; r < MR; ++r) words[r] = load_group(a[r] + offset + g * kPackDepth);
      dot_group<MR>(b + (s * run_groups + g) * 64, words, acc);
    }
  }
  if (const int64_t rest = w.k - full * kPackDepth; rest > 0) {
    for (int r = 0; r < MR; ++r) words[r] = load_tail(a[r] + full * kPackDepth, rest);
    dot_group<MR>(b + full * 64, words, acc);
  }
  const int64_t col0 = cb * kPackColumns;
  const int64_t count = n_end - col0 < kPackColumns ? n_end - col0 : kPackColumns;
  const uint32_t* sums = reinterpret_cast<const uint32_t*>(w.column_sums.data()) + col0;
  for (int r = 0; r < MR; ++r) {
    int32_t out[kPackColumns];
    for (int v = 0; v < 4; ++v) vst1q_s32(out + 4 * v, acc[r][v]);
    for (int64_t j = 0; j < count; ++j)
      out[j] = static_cast<int32_t>(static_cast<uint32_t>(out[j]) + 128u * sums[j]);
    apply_epilogue_ref(args, row0 + r, col0, count, out);
  }
}

}  // namespace

void gemm_dotprod(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  for (int64_t cb = n_begin / kPackColumns; cb * kPackColumns < n_end; ++cb) {
    int64_t row = 0;
    for (; row + 4 <= args.m; row += 4) tile<4>(args, row, cb, n_end);
    switch (args.m - row) {
      case 3:
        tile<3>(args, row, cb, n_end);
        break;
      case 2:
        tile<2>(args, row, cb, n_end);
        break;
      case 1:
        tile<1>(args, row, cb, n_end);
        break;
      default:
        break;
    }
  }
}

}  // namespace mighty::kernels
