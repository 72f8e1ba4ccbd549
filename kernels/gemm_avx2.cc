// AVX2 path, exact: vpmaddubsw would saturate int16 for u8 x s8 pairs (255 * 127 * 2 > 32767), so both
// operands are widened to int16 and multiplied with vpmaddwd, whose int32 pair sums cannot overflow. A
// 16-byte quarter of a packed 64-byte group (4 columns x 4 depths) widens to one ymm; vpmaddwd against the
// row's four activations (as int16, repeated) gives two partial sums per column, added pairwise when the tile
// is stored.
#include <immintrin.h>

#include <cstring>

#include "kernels/depthwise.h"
#include "kernels/gemm.h"

namespace mighty::kernels {
namespace {

// Only internal-linkage helpers here: an inline std:: template instantiated in this ISA-flagged unit could be
// picked by the linker for the generic code too and run on a CPU without the ISA.
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

constexpr int64_t kUnitColumns = 4;  // columns per widened ymm
// From this many rows on, a column panel of weights is widened to int16 once (at most kPanelBudget bytes: it
// stays in L2) for all row strips. Measured at M = 8: 0.71-0.83x of widening in the K loop; at M = 64 and
// 256: 1.08-1.19x. Panels of 256 and 640 KB measured the same as 384 KB.
constexpr int64_t kWideRows = 16;
constexpr int64_t kPanelBudget = 384 * 1024;

// Activations of one row, widened to int16 once per call so the inner loop broadcasts 64 bits from memory.
void widen_row(const uint8_t* a, int64_t k, int64_t k_padded, int16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_cvtepu8_epi16(bytes));
  }
  for (; i < k; ++i) out[i] = a[i];
  for (; i < k_padded; ++i) out[i] = 0;
}

// Row `row` of A widened (each run of an implicit im2col row in turn).
void widen_a_row(const GemmArgs& args, int64_t row, int16_t* out) {
  const PackedWeights& w = *args.w;
  if (!args.a_rows) return widen_row(args.a + row * args.lda, w.k, w.k_padded, out);
  const int64_t run = w.k / args.a_segments;  // a multiple of 4, so k_padded == k
  for (int64_t s = 0; s < args.a_segments; ++s)
    widen_row(args.a + args.a_rows[row] + s * args.a_segment_stride, run, run, out + s * run);
}

// Two accumulators of 4 columns x 2 partial sums -> 8 column sums in column order.
inline __m256i reduce_pairs(__m256i lo, __m256i hi) {
  const __m256i h = _mm256_hadd_epi32(lo, hi);  // [c0 c1 c4 c5 | c2 c3 c6 c7]
  return _mm256_permute4x64_epi64(h, 0xd8);     // [c0 c1 c2 c3 c4 c5 c6 c7]
}

// 8 columns of the epilogue, bit-identical to apply_epilogue_ref; `count` < 8 falls back to the scalar one.
inline void epilogue8(const GemmArgs& args, int64_t row, int64_t col0, __m256i acc, int64_t count) {
  if (count < 8) {
    alignas(32) int32_t tmp[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc);
    apply_epilogue_ref(args, row, col0, count, tmp);
    return;
  }
  const Epilogue& e = args.epilogue;
  const int32_t za = args.a_zero_points ? args.a_zero_points[row] : args.a_zero_point;
  const __m256i sums =
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(args.w->column_sums.data() + col0));
  __m256i v = _mm256_sub_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(za), sums));
  if (e.bias) v = _mm256_add_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.bias + col0)));
  if (e.kind == OutputKind::kInt32) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<int32_t*>(args.c) + row * args.ldc + col0), v);
    return;
  }
  __m256 mult = e.per_channel ? _mm256_loadu_ps(e.multiplier + col0) : _mm256_set1_ps(e.multiplier[0]);
  if (e.row_scale) mult = _mm256_mul_ps(_mm256_set1_ps(e.row_scale[row]), mult);
  __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), mult);
  if (e.kind == OutputKind::kUint8) {
    f = _mm256_max_ps(f, _mm256_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point)));
    f = _mm256_min_ps(f, _mm256_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point)));
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(e.out_zero_point));
    // Values are in [0, 255] after the clamp: pack 8 x int32 -> 8 x uint8.
    const __m128i q16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i q8 = _mm_packus_epi16(q16, q16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(args.c) + row * args.ldc + col0), q8);
  } else {
    if (e.fp_bias) f = _mm256_add_ps(f, _mm256_loadu_ps(e.fp_bias + col0));
    _mm256_storeu_ps(static_cast<float*>(args.c) + row * args.ldc + col0, f);
  }
}

// Reduces a tile's accumulator pairs and spills them once through a plain buffer, so the epilogue loop does
// not index the register array (which would keep the accumulators in memory throughout the K loop).
template <int MR, int NU>
__attribute__((always_inline)) inline void store_tile(const GemmArgs& args, int64_t row0, int64_t col0,
                                                      int64_t n_end, const __m256i (&acc)[MR][NU]) {
  alignas(32) int32_t sums[MR][NU / 2][8];
  for (int r = 0; r < MR; ++r)
    for (int u = 0; u < NU; u += 2)
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r][u / 2]), reduce_pairs(acc[r][u], acc[r][u + 1]));
  for (int r = 0; r < MR; ++r) {
    for (int u = 0; u < NU; u += 2) {
      const int64_t c = col0 + u * kUnitColumns;
      if (c < n_end) {
        epilogue8(args, row0 + r, c, _mm256_load_si256(reinterpret_cast<const __m256i*>(sums[r][u / 2])),
                  min64(8, n_end - c));
      }
    }
  }
}

// Rows [row0, row0 + MR) x columns [col0, col0 + 4 * NU) (col0 a multiple of 4) straight from the packed
// int8 weights, widened in the K loop (few rows: each weight is used by at most 4 rows), writing columns
// below n_end.
template <int MR, int NU>
void tile(const GemmArgs& args, const int16_t* a16, int64_t row0, int64_t col0, int64_t n_end) {
  static_assert(NU % 2 == 0, "units are stored in pairs of 8 columns");
  const PackedWeights& w = *args.w;
  const int64_t groups = w.k_padded / kPackDepth;
  const int8_t* b[NU];
  for (int u = 0; u < NU; ++u) {
    const int64_t c = col0 + u * kUnitColumns;
    b[u] = w.block(c / kPackColumns) + (c % kPackColumns) * kPackDepth;
  }
  __m256i acc[MR][NU];
  for (int r = 0; r < MR; ++r)
    for (int u = 0; u < NU; ++u) acc[r][u] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    __m256i bw[NU];
    for (int u = 0; u < NU; ++u)
      bw[u] = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(b[u] + g * 64)));
    for (int r = 0; r < MR; ++r) {
      int64_t a4;
      std::memcpy(&a4, a16 + r * w.k_padded + g * kPackDepth, 8);
      const __m256i av = _mm256_set1_epi64x(a4);
      for (int u = 0; u < NU; ++u) acc[r][u] = _mm256_add_epi32(acc[r][u], _mm256_madd_epi16(av, bw[u]));
    }
  }
  store_tile<MR, NU>(args, row0, col0, n_end, acc);
}

template <int MR, int NU>
void row_strip(const GemmArgs& args, const int16_t* a16, int64_t row0, int64_t n_begin, int64_t n_end) {
  constexpr int64_t kTileCols = NU * kUnitColumns;
  int64_t c = n_begin;
  for (; c + kTileCols <= n_end; c += kTileCols) tile<MR, NU>(args, a16, row0, c, c + kTileCols);
  // Remainder in tiles of 8 columns (reading the zero padding of the packed weights, never past it).
  for (; c < n_end; c += 2 * kUnitColumns)
    tile<MR, 2>(args, a16, row0, c, min64(n_end, c + 2 * kUnitColumns));
}

void strip(int rows, const GemmArgs& args, const int16_t* a16, int64_t row0, int64_t n_begin, int64_t n_end) {
  switch (rows) {
    case 1:
      return row_strip<1, 8>(args, a16, row0, n_begin, n_end);
    case 2:
      return row_strip<2, 4>(args, a16, row0, n_begin, n_end);
    case 3:
      return row_strip<3, 2>(args, a16, row0, n_begin, n_end);
    default:
      return row_strip<4, 2>(args, a16, row0, n_begin, n_end);
  }
}

// Many rows: the weights of a column panel are widened to int16 once, in the order the tiles read them (for
// each 8 columns, group after group, 16 values of columns 0-3 then 16 of columns 4-7: one sequential stream),
// and strips of up to 6 rows pass over the panel while it stays in L2. 6 x 8 tiles keep 12 accumulators,
// 2 weight vectors and one broadcast activation in the 16 ymm registers.
void widen_panel(const PackedWeights& w, int64_t c0, int64_t c1, int16_t* out) {
  const int64_t groups = w.k_padded / kPackDepth;
  for (int64_t c = c0; c < c1; c += 2 * kUnitColumns) {
    const int8_t* src = w.block(c / kPackColumns) + (c % kPackColumns) * kPackDepth;
    for (int64_t g = 0; g < groups; ++g, out += 32) {
      const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(src + g * 64));
      const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(src + g * 64 + 16));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_cvtepi8_epi16(lo));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_cvtepi8_epi16(hi));
    }
  }
}

// Where the tiles read rows [row0, row0 + MR) of A, widened: row r's K is `segments` runs of `run_groups`
// 4-deep groups, run s at a[r] + s * stride (rows widened per strip: one run of k_padded; implicit im2col
// over a source widened once: the GEMM's runs, at its offsets).
template <int MR>
struct WideRows {
  const int16_t* a[MR];
  int64_t segments, stride, run_groups;
};

template <int MR, bool kWholeSource>
WideRows<MR> wide_rows(const GemmArgs& args, const int16_t* a16, int64_t row0) {
  WideRows<MR> rows{};
  if constexpr (kWholeSource) {
    for (int r = 0; r < MR; ++r) rows.a[r] = a16 + args.a_rows[row0 + r];
    rows.segments = args.a_segments;
    rows.stride = args.a_segment_stride;
    rows.run_groups = args.w->k / args.a_segments / kPackDepth;
  } else {
    for (int r = 0; r < MR; ++r) rows.a[r] = a16 + r * args.w->k_padded;
    rows.segments = 1;
    rows.stride = 0;
    rows.run_groups = args.w->k_padded / kPackDepth;
  }
  return rows;
}

// Rows [row0, row0 + MR) x the 8 columns at col0 whose widened weights start at b16.
template <int MR>
void wide_tile(const GemmArgs& args, const int16_t* b16, const WideRows<MR>& rows, int64_t row0, int64_t col0,
               int64_t n_end) {
  __m256i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int64_t s = 0; s < rows.segments; ++s) {
    const int16_t* a[MR];
    for (int r = 0; r < MR; ++r) a[r] = rows.a[r] + s * rows.stride;
    const int16_t* bs = b16 + s * rows.run_groups * 32;
    for (int64_t g = 0; g < rows.run_groups; ++g) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bs + g * 32));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bs + g * 32 + 16));
      for (int r = 0; r < MR; ++r) {
        int64_t a4;
        std::memcpy(&a4, a[r] + g * kPackDepth, 8);
        const __m256i av = _mm256_set1_epi64x(a4);
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
      }
    }
  }
  store_tile<MR, 2>(args, row0, col0, n_end, acc);
}

// `a16`: the strip's rows widened (kWholeSource false), or the whole source widened.
template <int MR, bool kWholeSource>
void wide_strip(const GemmArgs& args, const int16_t* panel, int64_t p, const int16_t* a16, int64_t row0,
                int64_t p_end) {
  const int64_t pair_values = args.w->k_padded / kPackDepth * 32;  // one 8-column pair of the panel
  const WideRows<MR> rows = wide_rows<MR, kWholeSource>(args, a16, row0);
  for (int64_t c = p; c < p_end; c += 2 * kUnitColumns)
    wide_tile<MR>(args, panel + (c - p) / (2 * kUnitColumns) * pair_values, rows, row0, c,
                  min64(p_end, c + 8));
}

// The bytes of args.a that an implicit im2col's rows read: [0, extent).
int64_t source_extent(const GemmArgs& args) {
  int64_t last = 0;
  for (int64_t r = 0; r < args.m; ++r) last = max64(last, args.a_rows[r]);
  return last + (args.a_segments - 1) * args.a_segment_stride + args.w->k / args.a_segments;
}

// Block-sparse: rows [row0, row0 + MR) x the 16 columns of block `cb` over its nonzero groups only (the
// widened activations are zero-padded to k_padded, so the partial last group needs no care).
template <int MR>
void sparse_block(const GemmArgs& args, const int16_t* a16, int64_t row0, int64_t cb, int64_t n_end) {
  const PackedWeights& w = *args.w;
  const int8_t* b = w.block(cb);
  const int32_t* groups = w.nz_group.data() + w.nz_begin[cb];
  const int64_t count = w.nz_begin[cb + 1] - w.nz_begin[cb];
  __m256i acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int u = 0; u < 4; ++u) acc[r][u] = _mm256_setzero_si256();
  for (int64_t j = 0; j < count; ++j) {
    const int64_t g = groups[j];
    __m256i bw[4];
    for (int u = 0; u < 4; ++u) {
      bw[u] = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(b + g * 64 + u * 16)));
    }
    for (int r = 0; r < MR; ++r) {
      int64_t a4;
      std::memcpy(&a4, a16 + r * w.k_padded + g * kPackDepth, 8);
      const __m256i av = _mm256_set1_epi64x(a4);
      for (int u = 0; u < 4; ++u) acc[r][u] = _mm256_add_epi32(acc[r][u], _mm256_madd_epi16(av, bw[u]));
    }
  }
  const int64_t col0 = cb * kPackColumns;
  for (int r = 0; r < MR; ++r) {
    for (int h = 0; h < 2; ++h) {
      const int64_t c = col0 + h * 8;
      if (c < n_end)
        epilogue8(args, row0 + r, c, reduce_pairs(acc[r][2 * h], acc[r][2 * h + 1]), min64(8, n_end - c));
    }
  }
}

void sparse_rows(int rows, const GemmArgs& args, const int16_t* a16, int64_t row0, int64_t n_begin,
                 int64_t n_end) {
  for (int64_t c = n_begin; c < n_end; c += kPackColumns) {
    const int64_t cb = c / kPackColumns, end = min64(n_end, c + kPackColumns);
    switch (rows) {
      case 1:
        sparse_block<1>(args, a16, row0, cb, end);
        break;
      case 2:
        sparse_block<2>(args, a16, row0, cb, end);
        break;
      case 3:
        sparse_block<3>(args, a16, row0, cb, end);
        break;
      default:
        sparse_block<4>(args, a16, row0, cb, end);
        break;
    }
  }
}

// Rows in strips of up to 4, each row widened to int16 once, then run(rows, widened rows, first row).
template <class Run>
void four_row_strips(const GemmArgs& args, const Run& run) {
  constexpr int kRows = 4;
  const int64_t k_padded = args.w->k_padded;
  int16_t* a16 = scratch_int16(static_cast<size_t>(kRows * k_padded));
  for (int64_t row = 0; row < args.m; row += kRows) {
    const int rows = static_cast<int>(min64(kRows, args.m - row));
    for (int r = 0; r < rows; ++r) widen_a_row(args, row + r, a16 + r * k_padded);
    run(rows, a16, row);
  }
}

}  // namespace

void gemm_avx2(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeights& w = *args.w;
  if (w.sparse && (args.m <= 4 || w.zero_block_fraction >= kSparseCrossoverAvx2Rows)) {
    return four_row_strips(args, [&](int rows, const int16_t* a16, int64_t row) {
      sparse_rows(rows, args, a16, row, n_begin, n_end);
    });
  }
  if (args.m < kWideRows) {  // each weight is used by few rows: widened where it is used
    return four_row_strips(args, [&](int rows, const int16_t* a16, int64_t row) {
      strip(rows, args, a16, row, n_begin, n_end);
    });
  }
  constexpr int kRows = 6;
  using WideStrip = void (*)(const GemmArgs&, const int16_t*, int64_t, const int16_t*, int64_t, int64_t);
  static constexpr WideStrip kWideStrips[kRows] = {wide_strip<1, false>, wide_strip<2, false>,
                                                   wide_strip<3, false>, wide_strip<4, false>,
                                                   wide_strip<5, false>, wide_strip<6, false>};
  static constexpr WideStrip kWideStripsRuns[kRows] = {wide_strip<1, true>, wide_strip<2, true>,
                                                       wide_strip<3, true>, wide_strip<4, true>,
                                                       wide_strip<5, true>, wide_strip<6, true>};
  const int64_t panel_cols =
      min64(max64(16, kPanelBudget / (2 * w.k_padded) / 16 * 16), (n_end - n_begin + 15) / 16 * 16);
  // Implicit im2col reads each source byte in up to K / run rows: the source is widened once when that is
  // less work than widening every row and its int16 copy fits the panel budget (L2).
  const int64_t extent = args.a_rows ? source_extent(args) : 0;
  const bool whole_source = args.a_rows && extent < args.m * w.k && 2 * extent <= kPanelBudget;
  const int64_t a_values = ((whole_source ? extent : kRows * w.k_padded) + 31) / 32 * 32;  // panel aligned
  int16_t* a16 = scratch_int16(static_cast<size_t>(a_values + panel_cols * w.k_padded));
  int16_t* b16 = a16 + a_values;
  if (whole_source) widen_row(args.a, extent, extent, a16);
  for (int64_t p = n_begin; p < n_end; p += panel_cols) {
    const int64_t p_end = min64(n_end, p + panel_cols);
    widen_panel(w, p, p_end, b16);
    for (int64_t row = 0; row < args.m; row += kRows) {
      const int rows = static_cast<int>(min64(kRows, args.m - row));
      if (whole_source) {
        kWideStripsRuns[rows - 1](args, b16, p, a16, row, p_end);
        continue;
      }
      for (int r = 0; r < rows; ++r) widen_a_row(args, row + r, a16 + r * w.k_padded);
      kWideStrips[rows - 1](args, b16, p, a16, row, p_end);
    }
  }
}

void apply_epilogue_avx2(const GemmArgs& args, int64_t row, int64_t n0, int64_t count, const int32_t* acc) {
  for (int64_t j = 0; j < count; j += 8) {
    const int64_t n = min64(8, count - j);
    if (n < 8) {
      apply_epilogue_ref(args, row, n0 + j, n, acc + j);
      break;
    }
    epilogue8(args, row, n0 + j, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)), 8);
  }
}

void apply_epilogue_rows_avx2(const GemmArgs& args, int64_t row0, int64_t rows, int64_t n0, int64_t count,
                              const int32_t* acc, int64_t acc_stride) {
  const Epilogue& e = args.epilogue;
  if (args.a_zero_points || e.row_scale) {
    for (int64_t r = 0; r < rows; ++r) apply_epilogue_avx2(args, row0 + r, n0, count, acc + r * acc_stride);
    return;
  }
  const int64_t full = n0 + count / 8 * 8, end = n0 + count;
  const __m256i za = _mm256_set1_epi32(args.a_zero_point);
  for (int64_t col = n0; col < full; col += 8) {
    // (acc - za * sums) + bias == acc + (bias - za * sums) in wrapping int32: epilogue8's result exactly.
    const __m256i bias =
        e.bias ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.bias + col)) : _mm256_setzero_si256();
    const __m256i offset =
        _mm256_sub_epi32(bias, _mm256_mullo_epi32(za, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                                          args.w->column_sums.data() + col))));
    const int32_t* a = acc + (col - n0);
    if (e.kind == OutputKind::kInt32) {
      int32_t* out = static_cast<int32_t*>(args.c) + row0 * args.ldc + col;
      for (int64_t r = 0; r < rows; ++r)
        _mm256_storeu_si256(
            reinterpret_cast<__m256i*>(out + r * args.ldc),
            _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + r * acc_stride)),
                             offset));
      continue;
    }
    const __m256 mult = e.per_channel ? _mm256_loadu_ps(e.multiplier + col) : _mm256_set1_ps(e.multiplier[0]);
    if (e.kind == OutputKind::kUint8) {
      const __m256 lo = _mm256_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point));
      const __m256 hi = _mm256_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point));
      const __m256i zp = _mm256_set1_epi32(e.out_zero_point);
      uint8_t* out = static_cast<uint8_t*>(args.c) + row0 * args.ldc + col;
      for (int64_t r = 0; r < rows; ++r) {
        const __m256i v = _mm256_add_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + r * acc_stride)), offset);
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), mult);
        f = _mm256_min_ps(_mm256_max_ps(f, lo), hi);
        const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), zp);
        const __m128i q16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + r * args.ldc), _mm_packus_epi16(q16, q16));
      }
      continue;
    }
    float* out = static_cast<float*>(args.c) + row0 * args.ldc + col;
    const bool fp_bias = e.fp_bias != nullptr;
    const __m256 fb = fp_bias ? _mm256_loadu_ps(e.fp_bias + col) : _mm256_setzero_ps();
    for (int64_t r = 0; r < rows; ++r) {
      const __m256i v =
          _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + r * acc_stride)), offset);
      __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), mult);
      if (fp_bias) f = _mm256_add_ps(f, fb);  // as epilogue8
      _mm256_storeu_ps(out + r * args.ldc, f);
    }
  }
  if (full < end)
    for (int64_t r = 0; r < rows; ++r)
      apply_epilogue_ref(args, row0 + r, full, end - full, acc + r * acc_stride + (full - n0));
}

}  // namespace mighty::kernels
