// Depthwise convolution on AVX2 (depthwise.h, depthwise_simd.h): 8 channels per vpmaddwd of a widened
// input row's pixel pairs and a weight register, exact int32 sums, then the GEMM's AVX2 epilogue.
// Bit-identical to depthwise_ref.
#include <immintrin.h>

#include "kernels/depthwise.h"
#include "kernels/depthwise_simd.h"

namespace mighty::kernels {
namespace {

struct Avx2 {
  using Reg = __m256i;
  static constexpr int kLanes = 8;
  static Reg zero() { return _mm256_setzero_si256(); }
  static Reg load(const int16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(int32_t* p, Reg v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static Reg madd_add(Reg sum, Reg w, Reg x) { return _mm256_add_epi32(sum, _mm256_madd_epi16(w, x)); }

  // apply_epilogue_rows_avx2's uint8 arithmetic for 8 whole channels from `col`. With kFloatClamp the
  // scaled sums are clamped in float before rounding, as the epilogue does; without it (only where
  // depthwise_simd::rounding_cannot_overflow holds, so cvtps2dq is exact) they are rounded first and clamped
  // as integers after the saturating packs: the same result, since the bounds are integers and every
  // saturation on the way is monotonic and wider than [clamp_lo, clamp_hi].
  struct Requant {
    __m256i offset, zp16;
    __m256 mult, lo, hi;
    __m128i lo8, hi8;
  };
  static Requant requant(const GemmArgs& g, int64_t col) {
    const Epilogue& e = g.epilogue;
    const __m256i bias =
        e.bias ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.bias + col)) : _mm256_setzero_si256();
    const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.w->column_sums.data() + col));
    Requant q;
    q.offset = _mm256_sub_epi32(bias, _mm256_mullo_epi32(_mm256_set1_epi32(g.a_zero_point), sums));
    q.mult = e.per_channel ? _mm256_loadu_ps(e.multiplier + col) : _mm256_set1_ps(e.multiplier[0]);
    q.lo = _mm256_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point));
    q.hi = _mm256_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point));
    q.zp16 = _mm256_set1_epi16(static_cast<int16_t>(e.out_zero_point));
    q.lo8 = _mm_set1_epi8(static_cast<char>(e.clamp_lo));
    q.hi8 = _mm_set1_epi8(static_cast<char>(e.clamp_hi));
    return q;
  }
  // round(sum * multiplier) relative to the output zero point, clamped first with kFloatClamp.
  template <bool kFloatClamp>
  static __m256i scaled(const Requant& q, Reg sum) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(sum, q.offset)), q.mult);
    if constexpr (kFloatClamp) f = _mm256_min_ps(_mm256_max_ps(f, q.lo), q.hi);
    return _mm256_cvtps_epi32(f);
  }
  // 16 int16 values (saturated) plus the zero point, to bytes clamped to [clamp_lo, clamp_hi].
  template <bool kFloatClamp>
  static __m128i to_bytes(const Requant& q, __m256i packed) {
    packed = _mm256_adds_epi16(packed, q.zp16);
    __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(packed), _mm256_extracti128_si256(packed, 1));
    if constexpr (!kFloatClamp) b = _mm_min_epu8(_mm_max_epu8(b, q.lo8), q.hi8);
    return b;
  }
  template <bool kFloatClamp>
  static void store_u8(const Requant& q, Reg sum, uint8_t* out) {
    const __m256i v = scaled<kFloatClamp>(q, sum);
    // [v0-3, v0-3 | v4-7, v4-7] as int16, then bytes [v0-3, v0-3, v4-7, v4-7]
    const __m128i b = to_bytes<kFloatClamp>(q, _mm256_packs_epi32(v, v));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_shuffle_epi32(b, 0xD8));
  }
  // Two output pixels' 8 channels each.
  template <bool kFloatClamp>
  static void store_u8_pair(const Requant& q, Reg a, Reg b, uint8_t* out_a, uint8_t* out_b) {
    // [a0-3, b0-3 | a4-7, b4-7] as int16, then bytes [a0-3, b0-3, a4-7, b4-7], then [a0-7, b0-7]
    const __m128i v = _mm_shuffle_epi32(
        to_bytes<kFloatClamp>(q, _mm256_packs_epi32(scaled<kFloatClamp>(q, a), scaled<kFloatClamp>(q, b))),
        0xD8);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out_a), v);
    _mm_storeh_pd(reinterpret_cast<double*>(out_b), _mm_castsi128_pd(v));
  }
};

}  // namespace

void depthwise_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_simd::rows<Avx2>(args, row_begin, row_end, apply_epilogue_rows_avx2);
}

}  // namespace mighty::kernels
