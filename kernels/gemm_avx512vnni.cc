// AVX-512 VNNI path: vpdpbusd (u8 x s8, four products summed into each int32 lane, no saturation).
// Register tiles of MR rows x NV vectors of 16 columns; batch-1..4 shapes use wide tiles (up to 8 vectors) so
// enough independent accumulator chains hide vpdpbusd's latency while weights stream from cache.
#include <immintrin.h>

#include <cstring>

#include "kernels/depthwise.h"
#include "kernels/gemm.h"
#include "kernels/gemm_loads.h"

namespace mighty::kernels {
namespace {

// Only internal-linkage helpers here: an inline std:: template instantiated in this ISA-flagged unit could be
// picked by the linker for the generic code too and run on a CPU without the ISA.
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// The first byte of row m of A (its first run when a_rows is given).
inline const uint8_t* a_row(const GemmArgs& args, int64_t m) {
  return args.a + (args.a_rows ? args.a_rows[m] : m * args.lda);
}

inline __mmask16 column_mask(int64_t valid) {
  return valid >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << valid) - 1);
}

// The epilogue of requantize.h / apply_epilogue_ref, 16 columns at a time, bit-identical to the scalar one.
inline void epilogue16(const GemmArgs& args, int64_t row, int64_t col0, __m512i acc, __mmask16 mask) {
  const Epilogue& e = args.epilogue;
  const int32_t za = args.a_zero_points ? args.a_zero_points[row] : args.a_zero_point;
  const __m512i sums = _mm512_loadu_si512(args.w->column_sums.data() + col0);  // padded to 16
  __m512i v = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(za), sums));
  if (e.bias) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, e.bias + col0));
  if (e.kind == OutputKind::kInt32) {
    _mm512_mask_storeu_epi32(static_cast<int32_t*>(args.c) + row * args.ldc + col0, mask, v);
    return;
  }
  __m512 mult =
      e.per_channel ? _mm512_maskz_loadu_ps(mask, e.multiplier + col0) : _mm512_set1_ps(e.multiplier[0]);
  if (e.row_scale) mult = _mm512_mul_ps(_mm512_set1_ps(e.row_scale[row]), mult);
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), mult);
  if (e.kind == OutputKind::kUint8) {
    f = _mm512_max_ps(f, _mm512_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point)));
    f = _mm512_min_ps(f, _mm512_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point)));
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(e.out_zero_point));
    _mm_mask_storeu_epi8(static_cast<uint8_t*>(args.c) + row * args.ldc + col0, mask,
                         _mm512_cvtepi32_epi8(q));
  } else {
    if (e.fp_bias) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mask, e.fp_bias + col0));
    _mm512_mask_storeu_ps(static_cast<float*>(args.c) + row * args.ldc + col0, mask, f);
  }
}

// The epilogue of a tile with per-row activation zero points or row scales (dynamic quantization): the
// accumulators are spilled once and each 16-column vector goes through epilogue16.
template <int MR, int NV>
void store_tile(const GemmArgs& args, int64_t row0, int64_t col0, int64_t n_end,
                const int32_t (*sums)[NV][16]) {
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < NV; ++v) {
      const int64_t c = col0 + v * kPackColumns;
      if (c < n_end) epilogue16(args, row0 + r, c, _mm512_load_si512(sums[r][v]), column_mask(n_end - c));
    }
  }
}

// The epilogue of a tile with one activation zero point and no row scales, straight from the accumulator
// registers: the per-column terms (bias - za * column sums, multipliers) are loaded once per tile, the loops
// unroll completely, and only the last vector of a partial tile is masked (tile_nv gives every vector at
// least one column below n_end). The integer sum acc + (bias - za * sums) wraps exactly like epilogue16's
// (acc - za * sums) + bias and the float steps are the same, so the result is bit-identical to
// apply_epilogue_ref. Measured: the s32/f32 GEMM at M >= 8 went from 0.95-0.99x to 1.00-1.10x oneDNN on most
// shapes against spilling the accumulators first. (A per-row variant inlined beside this one made clang keep
// the accumulators in memory throughout the K loop, 2.4x slower: per-row epilogues keep the spill.)
template <int MR, int NV>
__attribute__((always_inline)) inline void store_tile_regs(const GemmArgs& args, int64_t row0, int64_t col0,
                                                           int64_t n_end, const __m512i (&acc)[MR][NV]) {
  const Epilogue& e = args.epilogue;
  __m512i offset[NV];
  __m512 mult[NV];
  __mmask16 mask[NV];
  const __m512i za = _mm512_set1_epi32(args.a_zero_point);
  for (int v = 0; v < NV; ++v) {
    const int64_t c = col0 + v * kPackColumns;
    mask[v] = column_mask(n_end - c);
    const __m512i bias = e.bias ? _mm512_maskz_loadu_epi32(mask[v], e.bias + c) : _mm512_setzero_si512();
    offset[v] =
        _mm512_sub_epi32(bias, _mm512_mullo_epi32(za, _mm512_loadu_si512(args.w->column_sums.data() + c)));
  }
  if (e.kind == OutputKind::kInt32) {
    int32_t* out = static_cast<int32_t*>(args.c) + row0 * args.ldc + col0;
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_epi32(out + r * args.ldc + v * kPackColumns, mask[v],
                                 _mm512_add_epi32(acc[r][v], offset[v]));
    return;
  }
  for (int v = 0; v < NV; ++v) {
    mult[v] = e.per_channel ? _mm512_maskz_loadu_ps(mask[v], e.multiplier + col0 + v * kPackColumns)
                            : _mm512_set1_ps(e.multiplier[0]);
  }
  if (e.kind == OutputKind::kUint8) {
    const __m512 lo = _mm512_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point));
    const __m512 hi = _mm512_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point));
    const __m512i zp = _mm512_set1_epi32(e.out_zero_point);
    uint8_t* out = static_cast<uint8_t*>(args.c) + row0 * args.ldc + col0;
    for (int r = 0; r < MR; ++r) {
      for (int v = 0; v < NV; ++v) {
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][v], offset[v])), mult[v]);
        f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
        _mm_mask_storeu_epi8(out + r * args.ldc + v * kPackColumns, mask[v],
                             _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), zp)));
      }
    }
    return;
  }
  float* out = static_cast<float*>(args.c) + row0 * args.ldc + col0;
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < NV; ++v) {
      __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][v], offset[v])), mult[v]);
      // Not + 0.0f without an fp32 bias: that would turn -0.0f into +0.0f.
      if (e.fp_bias)
        f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mask[v], e.fp_bias + col0 + v * kPackColumns));
      _mm512_mask_storeu_ps(out + r * args.ldc + v * kPackColumns, mask[v], f);
    }
  }
}

// A tile's accumulators through the epilogue: from the registers (one activation zero point, no row scales),
// or spilled once through a plain buffer: indexing the register array from the (not unrolled) epilogue loop
// would force the compiler to keep the accumulators in memory throughout the tile's K loop.
template <int MR, int NV>
__attribute__((always_inline)) inline void finish_tile(const GemmArgs& args, int64_t row0, int64_t col0,
                                                       int64_t n_end, const __m512i (&acc)[MR][NV]) {
  if (!args.a_zero_points && !args.epilogue.row_scale) {
    store_tile_regs<MR, NV>(args, row0, col0, n_end, acc);
    return;
  }
  alignas(64) int32_t sums[MR][NV][16];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) _mm512_store_si512(sums[r][v], acc[r][v]);
  store_tile<MR, NV>(args, row0, col0, n_end, sums);
}

// One register tile: rows [row0, row0 + MR) x columns [col0, col0 + 16 * NV) (col0 a multiple of 16), of
// which the columns below n_end are written.
template <int MR, int NV>
void tile(const GemmArgs& args, int64_t row0, int64_t col0, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const int64_t block_stride = w.block_stride;
  const int8_t* b = reinterpret_cast<const int8_t*>(w.data.get()) + (col0 / kPackColumns) * block_stride;
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = a_row(args, row0 + r);

  __m512i acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();

  // K in runs of whole groups: one run for a plain A, the kernel rows of a patch for an implicit im2col.
  const int64_t full_groups = w.k / kPackDepth;
  const int64_t runs = args.a_rows ? args.a_segments : 1, run_groups = full_groups / runs;
  for (int64_t s = 0; s < runs; ++s) {
    const int8_t* bs = b + s * run_groups * 64;
    for (int64_t g = 0; g < run_groups; ++g) {
      __m512i bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(bs + v * block_stride + g * 64);
      for (int r = 0; r < MR; ++r) {
        const __m512i av = _mm512_set1_epi32(static_cast<int>(load_group(a[r] + g * kPackDepth)));
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
      }
    }
    if (s + 1 < runs)
      for (int r = 0; r < MR; ++r) a[r] += args.a_segment_stride;
  }
  // The last, partial group reads only the activations that exist; its weights are zero padding (never with
  // runs: they are whole groups).
  if (const int64_t rest = w.k - full_groups * kPackDepth; rest > 0) {
    const int64_t g = full_groups;
    __m512i bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + v * block_stride + g * 64);
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(load_tail(a[r] + g * kPackDepth, rest)));
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, bv[v]);
    }
  }
  finish_tile<MR, NV>(args, row0, col0, n_end, acc);
}

// Whether a GEMM can use the pairs layout (gemm.h): a one-block layer without a partial group whose runs
// (implicit im2col) hold whole pairs, so a row's 8-byte read stays inside its run.
bool pairs_fit(const GemmArgs& args) {
  const PackedWeights& w = *args.w;
  const int64_t runs = args.a_rows ? args.a_segments : 1;
  return w.pairs && w.k % kPackDepth == 0 && (w.k / kPackDepth) % (2 * runs) == 0;
}

// One tile of MR rows x the layer's 16 columns over the pairs layout: each row's two groups are broadcast as
// one 64-bit value, so the even lanes of acc[r][h] sum group 2p and the odd lanes group 2p + 1 of columns
// 8h ... 8h + 7; adjacent lanes are added at the end (the same int32 sum in another order: exact). One
// broadcast per two vpdpbusd, as with two weight vectors in `tile`; with one vector (16 columns) `tile` needs
// one per vpdpbusd.
template <int MR>
void pair_tile(const GemmArgs& args, int64_t row0, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const int8_t* b = reinterpret_cast<const int8_t*>(w.pairs.get());
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = a_row(args, row0 + r);
  __m512i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  const int64_t runs = args.a_rows ? args.a_segments : 1, run_pairs = w.k / kPackDepth / runs / 2;
  for (int64_t s = 0; s < runs; ++s) {
    const int8_t* bs = b + s * run_pairs * 128;
    for (int64_t p = 0; p < run_pairs; ++p) {
      const __m512i b0 = _mm512_load_si512(bs + p * 128), b1 = _mm512_load_si512(bs + p * 128 + 64);
      for (int r = 0; r < MR; ++r) {
        uint64_t v;
        std::memcpy(&v, a[r] + p * 2 * kPackDepth, sizeof v);
        const __m512i av = _mm512_set1_epi64(static_cast<long long>(v));
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
      }
    }
    if (s + 1 < runs)
      for (int r = 0; r < MR; ++r) a[r] += args.a_segment_stride;
  }
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  __m512i sum[MR][1];
  for (int r = 0; r < MR; ++r)
    sum[r][0] = _mm512_add_epi32(_mm512_permutex2var_epi32(acc[r][0], even, acc[r][1]),
                                 _mm512_permutex2var_epi32(acc[r][0], odd, acc[r][1]));
  finish_tile<MR, 1>(args, row0, 0, n_end, sum);
}

// tile<MR, nv> for a run-time nv in [1, NVMAX].
template <int MR, int NVMAX>
void tile_nv(int nv, const GemmArgs& args, int64_t row0, int64_t col0, int64_t n_end) {
  if constexpr (NVMAX > 1) {
    if (nv < NVMAX) return tile_nv<MR, NVMAX - 1>(nv, args, row0, col0, n_end);
  }
  tile<MR, NVMAX>(args, row0, col0, n_end);
}

// Rows [row0, row0 + MR) over columns [n_begin, n_end) in tiles of NV vectors. A range of NV + 1 vectors at
// the end goes in two tiles of about half, not NV + 1 (a tile of one vector issues a weight load and MR
// broadcasts per MR vpdpbusd; measured: M = 8 and 64 at N = 512 with 2 threads, 16 vectors per thread,
// 1.08x).
template <int MR, int NV>
void row_strip(const GemmArgs& args, int64_t row0, int64_t n_begin, int64_t n_end) {
  for (int64_t c = n_begin; c < n_end;) {
    const int64_t left = (n_end - c + kPackColumns - 1) / kPackColumns;  // vectors
    int nv = static_cast<int>(min64(NV, left));
    if (NV >= 3 && left == NV + 1) nv = (NV + 1) / 2;
    const int64_t end = min64(n_end, c + nv * kPackColumns);
    tile_nv<MR, NV>(nv, args, row0, c, end);
    c = end;
  }
}

// Row strips of fewer than 6 rows (the GEMM remainder, and the batch-1..4 GEMV shapes).
void small_rows(int rows, const GemmArgs& args, int64_t row0, int64_t n_begin, int64_t n_end) {
  switch (rows) {
    case 1:
      return row_strip<1, 8>(args, row0, n_begin, n_end);
    case 2:
      return row_strip<2, 8>(args, row0, n_begin, n_end);
    case 3:
      return row_strip<3, 8>(args, row0, n_begin, n_end);
    case 4:
      return row_strip<4, 6>(args, row0, n_begin, n_end);
    default:
      return row_strip<5, 4>(args, row0, n_begin, n_end);
  }
}

// Rows [row0, m): strips of 8 rows x 48 columns (24 accumulators, 3 weight loads and 8 broadcasts per 24
// vpdpbusd), then the remainder.
void gemm_rows(const GemmArgs& args, int64_t row0, int64_t n_begin, int64_t n_end) {
  int64_t row = row0;
  for (; row + 8 <= args.m; row += 8) row_strip<8, 3>(args, row, n_begin, n_end);
  if (row + 6 <= args.m) {
    row_strip<6, 4>(args, row, n_begin, n_end);
    row += 6;
  }
  if (row < args.m) small_rows(static_cast<int>(args.m - row), args, row, n_begin, n_end);
}

// Block-sparse: rows [row0, row0 + MR) x the 16 columns of block `cb`, over that block's nonzero groups only,
// in CH independent accumulator chains per row (vpdpbusd's latency, at MR = 1 nothing else hides it). RUNS:
// the rows are implicit im2col rows, group g at args.a_group_offsets[g].
template <int MR, int CH, bool RUNS>
void sparse_block(const GemmArgs& args, int64_t row0, int64_t cb, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const int8_t* b = w.block(cb);
  const int32_t* groups = w.nz_group.data() + w.nz_begin[cb];
  int64_t count = w.nz_begin[cb + 1] - w.nz_begin[cb];
  const int64_t full_groups = w.k / kPackDepth;
  const uint8_t* a[MR];
  for (int r = 0; r < MR; ++r) a[r] = a_row(args, row0 + r);
  const int64_t* offsets = args.a_group_offsets;
  auto at = [offsets](int64_t g) { return RUNS ? offsets[g] : g * kPackDepth; };
  __m512i acc[MR][CH];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < CH; ++c) acc[r][c] = _mm512_setzero_si512();
  // The partial last group (K not a multiple of 4) is the last in the list when present.
  const bool tail = count > 0 && groups[count - 1] == full_groups;
  if (tail) --count;
  int64_t j = 0;
  for (; j + CH <= count; j += CH) {
    for (int c = 0; c < CH; ++c) {
      const int64_t g = groups[j + c];
      const __m512i bv = _mm512_load_si512(b + g * 64);
      for (int r = 0; r < MR; ++r) {
        const __m512i av = _mm512_set1_epi32(static_cast<int>(load_group(a[r] + at(g))));
        acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], av, bv);
      }
    }
  }
  for (; j < count; ++j) {
    const int64_t g = groups[j];
    const __m512i bv = _mm512_load_si512(b + g * 64);
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(load_group(a[r] + at(g))));
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, bv);
    }
  }
  if (tail) {
    const int64_t g = full_groups, rest = w.k - full_groups * kPackDepth;
    const __m512i bv = _mm512_load_si512(b + g * 64);
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(load_tail(a[r] + g * kPackDepth, rest)));
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, bv);
    }
  }
  const int64_t col0 = cb * kPackColumns;
  for (int r = 0; r < MR; ++r) {
    __m512i sum = acc[r][0];
    for (int c = 1; c < CH; ++c) sum = _mm512_add_epi32(sum, acc[r][c]);
    epilogue16(args, row0 + r, col0, sum, column_mask(n_end - col0));
  }
}

template <bool RUNS>
void gemm_sparse(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  for (int64_t c = n_begin; c < n_end; c += kPackColumns) {
    const int64_t cb = c / kPackColumns, end = min64(n_end, c + kPackColumns);
    int64_t row = 0;
    for (; row + 4 <= args.m; row += 4) sparse_block<4, 1, RUNS>(args, row, cb, end);
    switch (args.m - row) {
      case 1:
        sparse_block<1, 4, RUNS>(args, row, cb, end);
        break;
      case 2:
        sparse_block<2, 2, RUNS>(args, row, cb, end);
        break;
      case 3:
        sparse_block<3, 1, RUNS>(args, row, cb, end);
        break;
      default:
        break;
    }
  }
}

}  // namespace

void gemm_avx512vnni(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  if (args.w->sparse) {
    if (args.a_rows)
      gemm_sparse<true>(args, n_begin, n_end);
    else
      gemm_sparse<false>(args, n_begin, n_end);
    return;
  }
  if (args.m <= 5) {
    small_rows(static_cast<int>(args.m), args, 0, n_begin, n_end);
    return;
  }
  if (n_begin == 0 && pairs_fit(args)) {  // one block of columns: 8-row tiles over the pairs, then the rest
    int64_t row = 0;
    for (; row + 8 <= args.m; row += 8) pair_tile<8>(args, row, n_end);
    if (row < args.m) gemm_rows(args, row, n_begin, n_end);
    return;
  }
  // Column panels sized so a panel of packed weights stays in L2 while every row strip passes over it.
  constexpr int64_t kL2Budget = 384 * 1024;
  const int64_t panel = max64(48, kL2Budget / args.w->k_padded / 48 * 48);
  for (int64_t p = n_begin; p < n_end; p += panel) gemm_rows(args, 0, p, min64(n_end, p + panel));
}

void apply_epilogue_avx512(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc) {
  for (int64_t j = 0; j < count; j += 16) {
    const __mmask16 mask = column_mask(count - j);
    epilogue16(args, row, n0 + j, _mm512_maskz_loadu_epi32(mask, acc + j), mask);
  }
}

void apply_epilogue_rows_avx512(const GemmArgs& args, int64_t row0, int64_t rows, int64_t n0, int64_t count,
                                const int32_t* acc, int64_t acc_stride) {
  const Epilogue& e = args.epilogue;
  if (args.a_zero_points || e.row_scale) {
    for (int64_t r = 0; r < rows; ++r) apply_epilogue_avx512(args, row0 + r, n0, count, acc + r * acc_stride);
    return;
  }
  const __m512i za = _mm512_set1_epi32(args.a_zero_point);
  for (int64_t col = n0; col < n0 + count; col += kPackColumns) {
    const __mmask16 mask = column_mask(n0 + count - col);
    // (acc - za * sums) + bias == acc + (bias - za * sums) in wrapping int32: epilogue16's result exactly.
    const __m512i bias = e.bias ? _mm512_maskz_loadu_epi32(mask, e.bias + col) : _mm512_setzero_si512();
    const __m512i offset =
        _mm512_sub_epi32(bias, _mm512_mullo_epi32(za, _mm512_loadu_si512(args.w->column_sums.data() + col)));
    const int32_t* a = acc + (col - n0);
    if (e.kind == OutputKind::kInt32) {
      int32_t* out = static_cast<int32_t*>(args.c) + row0 * args.ldc + col;
      for (int64_t r = 0; r < rows; ++r)
        _mm512_mask_storeu_epi32(
            out + r * args.ldc, mask,
            _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, a + r * acc_stride), offset));
      continue;
    }
    const __m512 mult =
        e.per_channel ? _mm512_maskz_loadu_ps(mask, e.multiplier + col) : _mm512_set1_ps(e.multiplier[0]);
    if (e.kind == OutputKind::kUint8) {
      const __m512 lo = _mm512_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point));
      const __m512 hi = _mm512_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point));
      const __m512i zp = _mm512_set1_epi32(e.out_zero_point);
      uint8_t* out = static_cast<uint8_t*>(args.c) + row0 * args.ldc + col;
      for (int64_t r = 0; r < rows; ++r) {
        const __m512i v = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, a + r * acc_stride), offset);
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), mult);
        f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
        _mm_mask_storeu_epi8(out + r * args.ldc, mask,
                             _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), zp)));
      }
      continue;
    }
    float* out = static_cast<float*>(args.c) + row0 * args.ldc + col;
    const bool fp_bias = e.fp_bias != nullptr;
    const __m512 fb = fp_bias ? _mm512_maskz_loadu_ps(mask, e.fp_bias + col) : _mm512_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) {
      const __m512i v = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, a + r * acc_stride), offset);
      __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), mult);
      if (fp_bias) f = _mm512_add_ps(f, fb);  // as epilogue16
      _mm512_mask_storeu_ps(out + r * args.ldc, mask, f);
    }
  }
}

}  // namespace mighty::kernels
