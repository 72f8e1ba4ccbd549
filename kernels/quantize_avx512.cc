// AVX-512 activation (de)quantization: 16 values per step, masked tails, bit-identical to kQuantizeRef.
#include <immintrin.h>

#include "kernels/quantize.h"

namespace mighty::kernels {
namespace {

inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

void quantize(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* q) {
  const __m512 inv = _mm512_set1_ps(inv_scale);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(-zero_point));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(255 - zero_point));
  const __m512i zp = _mm512_set1_epi32(zero_point);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
    _mm_mask_storeu_epi8(q + i, m, _mm512_cvtepi32_epi8(r));
  }
}

void range(const float* x, int64_t n, float* out_lo, float* out_hi) {
  const __m512 first = _mm512_set1_ps(x[0]);
  __m512 mn = first, mx = first;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    const __m512 v = _mm512_mask_loadu_ps(first, m, x + i);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  *out_lo = _mm512_reduce_min_ps(mn);
  *out_hi = _mm512_reduce_max_ps(mx);
}

void dequantize(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i zp = _mm512_set1_epi32(zero_point);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail_mask(n - i);
    const __m512i v = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q + i)), zp);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_cvtepi32_ps(v), s));
  }
}

}  // namespace

const QuantizeKernels kQuantizeAvx512 = {quantize, range, dequantize};

}  // namespace mighty::kernels
