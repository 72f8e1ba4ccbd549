// Depthwise convolution on AVX-512 VNNI (depthwise.h, depthwise_simd.h): 16 channels per vpdpwssd of a
// widened input row's pixel pairs and a weight register, exact int32 sums, then the GEMM's AVX-512 epilogue.
// Bit-identical to depthwise_ref.
#include <immintrin.h>

#include "kernels/depthwise.h"
#include "kernels/depthwise_simd.h"

namespace mighty::kernels {
namespace {

struct Avx512 {
  using Reg = __m512i;
  static constexpr int kLanes = 16;
  static Reg zero() { return _mm512_setzero_si512(); }
  static Reg load(const int16_t* p) { return _mm512_loadu_si512(p); }
  static void store(int32_t* p, Reg v) { _mm512_storeu_si512(p, v); }
  static Reg madd_add(Reg sum, Reg w, Reg x) { return _mm512_dpwssd_epi32(sum, w, x); }

  // apply_epilogue_rows_avx512's uint8 arithmetic for 16 whole channels from `col`.
  struct Requant {
    __m512i offset, zp;
    __m512 mult, lo, hi;
  };
  static Requant requant(const GemmArgs& g, int64_t col) {
    const Epilogue& e = g.epilogue;
    const __m512i bias = e.bias ? _mm512_loadu_si512(e.bias + col) : _mm512_setzero_si512();
    const __m512i sums = _mm512_loadu_si512(g.w->column_sums.data() + col);
    Requant q;
    q.offset = _mm512_sub_epi32(bias, _mm512_mullo_epi32(_mm512_set1_epi32(g.a_zero_point), sums));
    q.mult = e.per_channel ? _mm512_loadu_ps(e.multiplier + col) : _mm512_set1_ps(e.multiplier[0]);
    q.lo = _mm512_set1_ps(static_cast<float>(e.clamp_lo - e.out_zero_point));
    q.hi = _mm512_set1_ps(static_cast<float>(e.clamp_hi - e.out_zero_point));
    q.zp = _mm512_set1_epi32(e.out_zero_point);
    return q;
  }
  // The float clamp always (kFloatClamp is AVX2's choice; here the clamp costs what an integer one would).
  template <bool kFloatClamp>
  static void store_u8(const Requant& q, Reg sum, uint8_t* out) {
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(sum, q.offset)), q.mult);
    f = _mm512_min_ps(_mm512_max_ps(f, q.lo), q.hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                     _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), q.zp)));
  }
  template <bool kFloatClamp>
  static void store_u8_pair(const Requant& q, Reg a, Reg b, uint8_t* out_a, uint8_t* out_b) {
    store_u8<kFloatClamp>(q, a, out_a);
    store_u8<kFloatClamp>(q, b, out_b);
  }
};

}  // namespace

void depthwise_avx512(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  depthwise_simd::rows<Avx512>(args, row_begin, row_end, apply_epilogue_rows_avx512);
}

}  // namespace mighty::kernels
