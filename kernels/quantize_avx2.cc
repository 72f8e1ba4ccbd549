// AVX2 activation (de)quantization: 8 values per step, scalar tails, bit-identical to kQuantizeRef.
#include <immintrin.h>

#include "kernels/quantize.h"

namespace mighty::kernels {
namespace {

// Internal-linkage scalar twins for the tails (the header's inline versions must not be instantiated with
// this unit's ISA flags).
float max_like_x86(float a, float b) { return a > b ? a : b; }
float min_like_x86(float a, float b) { return a < b ? a : b; }

void quantize(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* q) {
  const __m256 inv = _mm256_set1_ps(inv_scale);
  const float lo_s = static_cast<float>(-zero_point), hi_s = static_cast<float>(255 - zero_point);
  const __m256 lo = _mm256_set1_ps(lo_s), hi = _mm256_set1_ps(hi_s);
  const __m256i zp = _mm256_set1_epi32(zero_point);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256i r = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
    const __m128i r16 = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packus_epi16(r16, r16));
  }
  for (; i < n; ++i) {
    const float v = min_like_x86(max_like_x86(x[i] * inv_scale, lo_s), hi_s);
    q[i] = static_cast<uint8_t>(_mm_cvtss_si32(_mm_set_ss(v)) + zero_point);
  }
}

void range(const float* x, int64_t n, float* out_lo, float* out_hi) {
  float mn = x[0], mx = x[0];
  int64_t i = 0;
  if (n >= 8) {
    __m256 vmn = _mm256_loadu_ps(x), vmx = vmn;
    for (i = 8; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      vmn = _mm256_min_ps(vmn, v);
      vmx = _mm256_max_ps(vmx, v);
    }
    alignas(32) float a[8], b[8];
    _mm256_store_ps(a, vmn);
    _mm256_store_ps(b, vmx);
    for (int k = 0; k < 8; ++k) {
      mn = min_like_x86(a[k], mn);
      mx = max_like_x86(b[k], mx);
    }
  }
  for (; i < n; ++i) {
    mn = min_like_x86(x[i], mn);
    mx = max_like_x86(x[i], mx);
  }
  *out_lo = mn;
  *out_hi = mx;
}

void dequantize(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256i zp = _mm256_set1_epi32(zero_point);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    const __m256i v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), zp);
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), s));
  }
  for (; i < n; ++i) x[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zero_point) * scale;
}

}  // namespace

const QuantizeKernels kQuantizeAvx2 = {quantize, range, dequantize};

}  // namespace mighty::kernels
