// The depthwise kernel's SIMD body, shared by the AVX2 and AVX-512 translation units (each instantiates it
// with its own vector traits and epilogue; include it only from a file compiled for AVX2 or better).
//
// Per output row: the kernel rows it reads are widened once into pixel pairs (depthwise.h) in a ring of
// `kernel` rows per thread, so every input row is widened once per call; then for each block of channels the
// block's packed weights stay in registers while the output pixels go by, four at a time, each tap pair one
// multiply-add of a weight register and a widened pixel at a constant offset (64 bytes between pixels). The
// sums of a uint8 output are requantized in registers (the per-channel terms loaded once per block and row);
// other outputs, and the channels past the last whole register, go through a scratch row of int32 sums,
// [ow][channels_padded], and the path's epilogue. Lanes past the last channel hold zero weights and are
// never written out.
//
// V: kLanes (channels per register: 8 or 16), Reg, zero(), load(const int16_t*), store(int32_t*, Reg),
// madd_add(sum, weights, pixels) = sum + the lane-wise sums of the two int16 products, and for uint8
// outputs Requant, requant(GemmArgs, first channel) (a whole block's per-channel terms),
// store_u8<kFloatClamp>(Requant, sums, uint8_t*) and store_u8_pair<kFloatClamp>(Requant, sums a, sums b,
// out a, out b) (the epilogue's uint8 arithmetic; kFloatClamp = false only where rounding_cannot_overflow).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/depthwise.h"

namespace mighty::kernels::depthwise_simd {

// apply_epilogue_rows_avx2 or _avx512 (depthwise.h).
using EpilogueFn = void (*)(const GemmArgs& args, int64_t row0, int64_t rows, int64_t n0, int64_t count,
                            const int32_t* acc, int64_t acc_stride);

inline constexpr int64_t kPixel = kPackColumns * 2;  // int16s per widened pixel of one channel block
inline constexpr int kUnroll = 4;                    // output pixels per step

// Padded input row `src` ([wp][c] uint8) as pixel pairs, [cp / 16][wp][16][2]: (src[x][ch], src[x + 1][ch]),
// the pixel past the row's end as 0, channels [c, cp) as 0; only every `step`-th pixel (the kernel reads
// only even ones when the stride is even). Reads only the row's own bytes.
inline void widen_row(const uint8_t* src, int64_t wp, int64_t c, int64_t cp, int64_t step, int16_t* dst) {
  for (int64_t x = 0; x < wp; x += step) {
    const uint8_t* a = src + x * c;
    const bool last = x + 1 == wp;
    int64_t ch = 0;
    for (; ch + kPackColumns <= c; ch += kPackColumns) {
      int16_t* d = dst + (ch / kPackColumns * wp + x) * kPixel;
      const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + ch));
      const __m128i vb =
          last ? _mm_setzero_si128() : _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + c + ch));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(va, vb)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 16),
                          _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(va, vb)));
    }
    for (; ch < cp; ++ch) {
      int16_t* d = dst + (ch / kPackColumns * wp + x) * kPixel + ch % kPackColumns * 2;
      d[0] = ch < c ? a[ch] : 0;
      d[1] = ch < c && !last ? a[c + ch] : 0;
    }
  }
}

// The widened rows of one thread: padded row r in slot r % kernel, each slot starting on a cache line so
// that no widened pixel (64 bytes) straddles two.
struct Ring {
  std::vector<int16_t> data;
  std::vector<int64_t> held;  // the padded row in each slot, -1 when none
  int64_t row_elems = 0;      // a multiple of kPixel

  void reset(int64_t kernel, int64_t elems) {
    row_elems = elems;
    data.resize(static_cast<size_t>(kernel * elems + kPixel));
    held.assign(static_cast<size_t>(kernel), -1);
  }
  const int16_t* row(const DepthwiseArgs& args, int64_t r) {
    const ConvGeometry& g = args.geometry;
    const int64_t slot = r % g.kernel, wp = g.width + 2 * g.padding;
    const auto misalign = reinterpret_cast<uintptr_t>(data.data()) % 64;
    int16_t* dst = data.data() + (misalign ? (64 - misalign) / 2 : 0) + slot * row_elems;
    if (held[static_cast<size_t>(slot)] != r) {
      widen_row(args.image + r * wp * g.channels, wp, g.channels, args.w->channels_padded,
                g.stride % 2 ? 1 : 2, dst);
      held[static_cast<size_t>(slot)] = r;
    }
    return dst;
  }
};

// One channel block's weights: for a kernel size K known at compile time (K > 0) all K * row_pairs
// registers, loaded once per block and output row; else loaded at each use.
template <class V, int K>
struct Weights {
  static constexpr int kCount = K > 0 ? K*((K + 1) / 2) : 1;
  typename V::Reg reg[kCount];
  const int16_t* base;  // kPixel int16s between consecutive (dy, j)

  explicit Weights(const int16_t* b) : base(b) {
    if constexpr (K > 0)
      for (int t = 0; t < kCount; ++t) reg[t] = V::load(base + t * kPixel);
  }
  typename V::Reg operator[](int64_t t) const {
    if constexpr (K > 0) {
      return reg[t];
    } else {
      return V::load(base + t * kPixel);
    }
  }
};

// Where a channel block's sums go: the int32 scratch row (for the path's epilogue), or, for a uint8 output,
// straight through V's requantization (the epilogue's arithmetic, bit for bit) into the output.
template <class V>
struct ToScratch {
  int32_t* acc;  // the block's first channel of output pixel 0
  int64_t stride;
  void operator()(int64_t ox, typename V::Reg sum) const { V::store(acc + ox * stride, sum); }
  void pair(int64_t ox, typename V::Reg a, typename V::Reg b) const {
    V::store(acc + ox * stride, a);
    V::store(acc + (ox + 1) * stride, b);
  }
};
template <class V, bool kFloatClamp>
struct ToUint8 {
  typename V::Requant q;
  uint8_t* out;  // the block's first channel of output pixel 0
  int64_t ldc;
  void operator()(int64_t ox, typename V::Reg sum) const {
    V::template store_u8<kFloatClamp>(q, sum, out + ox * ldc);
  }
  void pair(int64_t ox, typename V::Reg a, typename V::Reg b) const {
    V::template store_u8_pair<kFloatClamp>(q, a, b, out + ox * ldc, out + (ox + 1) * ldc);
  }
};

// Whether, for channels [col, col + lanes) of a uint8 output, no input can take the rounded scaled sum
// round(float(sum - za * column_sum + bias) * multiplier) out of int32 (|sum| <= kernel^2 * 255 * 128): then
// the requantization may round before clamping (V's kFloatClamp = false) and get the epilogue's result.
inline bool rounding_cannot_overflow(const GemmArgs& g, int64_t col, int64_t lanes, int64_t kernel) {
  const Epilogue& e = g.epilogue;
  const double max_sum = static_cast<double>(kernel * kernel) * 255.0 * 128.0;
  for (int64_t ch = col; ch < col + lanes; ++ch) {
    const int64_t offset = (e.bias ? int64_t{e.bias[ch]} : 0) -
                           int64_t{g.a_zero_point} * g.w->column_sums[static_cast<size_t>(ch)];
    const double bound = std::abs(static_cast<double>(offset)) + max_sum;
    const double mult = std::abs(static_cast<double>(e.per_channel ? e.multiplier[ch] : e.multiplier[0]));
    if (!(bound < 2147483648.0 && bound * mult < 1073741824.0)) return false;
  }
  return true;
}

// The sums of output pixels [ox, ox + U) of one channel block for a kernel size K and stride S known at
// compile time (K, S > 0; else k and s): row[dy] points at pixel ox's window in widened row dy.
template <class V, int K, int S, int U, class Sink>
inline void pixels(const int16_t* const* row, const Weights<V, K>& w, int64_t k, int64_t s, int64_t ox,
                   const Sink& sink) {
  const int64_t kk = K > 0 ? K : k, ss = S > 0 ? S : s, rp = (kk + 1) / 2;
  typename V::Reg sum[U];
  for (int u = 0; u < U; ++u) sum[u] = V::zero();
  for (int64_t dy = 0; dy < kk; ++dy)
    for (int64_t j = 0; j < rp; ++j) {
      const typename V::Reg wt = w[dy * rp + j];
      const int16_t* p = row[dy] + 2 * j * kPixel;
      for (int u = 0; u < U; ++u) sum[u] = V::madd_add(sum[u], wt, V::load(p + u * ss * kPixel));
    }
  int u = 0;
  for (; u + 1 < U; u += 2) sink.pair(ox + u, sum[u], sum[u + 1]);
  if (u < U) sink(ox + u, sum[u]);
}

// One channel block (V::kLanes channels at `lane` within 16-channel block `block`) of an output row.
template <class V, int K, int S, class Sink>
inline void block_row(const int16_t* const* widened, const DepthwiseWeights& w, int64_t block, int64_t lane,
                      int64_t k, int64_t s, int64_t wp, int64_t ow, const Sink& sink) {
  const int64_t kk = K > 0 ? K : k, ss = S > 0 ? S : s;
  constexpr int kRows = K > 0 ? K : 1;
  const int16_t* fixed[kRows];
  thread_local std::vector<const int16_t*> any;  // the general body only: no allocation per block
  const int16_t** row = fixed;
  if (K == 0) {
    any.resize(static_cast<size_t>(kk));
    row = any.data();
  }
  for (int64_t dy = 0; dy < kk; ++dy) row[dy] = widened[dy] + block * wp * kPixel + lane * 2;
  const Weights<V, K> wb(w.taps.data() + (block * kk * ((kk + 1) / 2)) * kPixel + lane * 2);
  int64_t ox = 0;
  for (; ox + kUnroll <= ow; ox += kUnroll) {
    pixels<V, K, S, kUnroll>(row, wb, kk, ss, ox, sink);
    for (int64_t dy = 0; dy < kk; ++dy) row[dy] += kUnroll * ss * kPixel;
  }
  for (; ox < ow; ++ox) {
    pixels<V, K, S, 1>(row, wb, kk, ss, ox, sink);
    for (int64_t dy = 0; dy < kk; ++dy) row[dy] += ss * kPixel;
  }
}

template <class V, int K, int S>
void rows_ks(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, EpilogueFn epilogue_fn) {
  const ConvGeometry& g = args.geometry;
  const DepthwiseWeights& w = *args.w;
  const int64_t k = g.kernel, s = g.stride, ow = g.out_width();
  const int64_t c = g.channels, cp = w.channels_padded, wp = g.width + 2 * g.padding;
  const GemmArgs epilogue = depthwise_epilogue_args(args);
  // Whole blocks of a uint8 output are requantized in registers; the rest goes through the scratch row.
  const bool to_u8 = args.epilogue.kind == OutputKind::kUint8 && !args.epilogue.row_scale;
  const int64_t direct = to_u8 ? c / V::kLanes * V::kLanes : 0;
  thread_local Ring ring;
  thread_local std::vector<int32_t> acc;             // [ow][cp]
  thread_local std::vector<const int16_t*> widened;  // the output row's kernel rows
  ring.reset(k, cp * wp * 2);
  acc.resize(static_cast<size_t>(ow * cp));
  widened.resize(static_cast<size_t>(k));
  thread_local std::vector<char> exact_int;  // per register of channels below `direct`
  exact_int.resize(static_cast<size_t>(direct / V::kLanes));
  for (int64_t col = 0; col < direct; col += V::kLanes)
    exact_int[static_cast<size_t>(col / V::kLanes)] = rounding_cannot_overflow(epilogue, col, V::kLanes, k);
  for (int64_t oy = row_begin; oy < row_end; ++oy) {
    for (int64_t dy = 0; dy < k; ++dy) widened[static_cast<size_t>(dy)] = ring.row(args, oy * s + dy);
    for (int64_t block = 0; block < cp / kPackColumns; ++block)
      for (int64_t lane = 0; lane < kPackColumns; lane += V::kLanes) {
        const int64_t col = block * kPackColumns + lane;
        if (col + V::kLanes <= direct) {
          uint8_t* out = static_cast<uint8_t*>(args.c) + oy * ow * args.ldc + col;
          if (exact_int[static_cast<size_t>(col / V::kLanes)])
            block_row<V, K, S>(widened.data(), w, block, lane, k, s, wp, ow,
                               ToUint8<V, false>{V::requant(epilogue, col), out, args.ldc});
          else
            block_row<V, K, S>(widened.data(), w, block, lane, k, s, wp, ow,
                               ToUint8<V, true>{V::requant(epilogue, col), out, args.ldc});
        } else if (col < c) {
          block_row<V, K, S>(widened.data(), w, block, lane, k, s, wp, ow,
                             ToScratch<V>{acc.data() + col, cp});
        }
      }
    if (direct < c) epilogue_fn(epilogue, oy * ow, ow, direct, c - direct, acc.data() + direct, cp);
  }
}

// Output rows [row_begin, row_end) on the path of V: 3x3 and 5x5 at strides 1 and 2 compiled for their
// sizes, any other kernel and stride through the general body.
template <class V>
void rows(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end, EpilogueFn epilogue_fn) {
  const int64_t k = args.geometry.kernel, s = args.geometry.stride;
  if (k == 3 && s == 1) return rows_ks<V, 3, 1>(args, row_begin, row_end, epilogue_fn);
  if (k == 3 && s == 2) return rows_ks<V, 3, 2>(args, row_begin, row_end, epilogue_fn);
  if (k == 5 && s == 1) return rows_ks<V, 5, 1>(args, row_begin, row_end, epilogue_fn);
  if (k == 5 && s == 2) return rows_ks<V, 5, 2>(args, row_begin, row_end, epilogue_fn);
  return rows_ks<V, 0, 0>(args, row_begin, row_end, epilogue_fn);
}

}  // namespace mighty::kernels::depthwise_simd
