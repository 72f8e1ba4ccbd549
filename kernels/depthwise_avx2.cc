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

  // apply_epilogue_rows_avx2's uint8 arithmetic for 8 whole channels from `col`.
  struct Requant {
    __m256i offset, zp;
    __m256 mult, lo, hi;
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
    q.zp = _mm256_set1_epi32(e.out_zero_point);
    return q;
  }
  static void store_u8(const Requant& q, Reg sum, uint8_t* out) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(sum, q.offset)), q.mult);
    f = _mm256_min_ps(_mm256_max_ps(f, q.lo), q.hi);
    const __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(f), q.zp);
    const __m128i v16 = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(v16, v16));
  }
};

}  // namespace

void depthwise_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_simd::rows<Avx2>(args, row_begin, row_end, apply_epilogue_rows_avx2);
}

}  // namespace mighty::kernels
