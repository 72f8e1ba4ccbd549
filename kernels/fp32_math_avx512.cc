// The 16-lane form of the fp32 math (kernels/fp32_math_impl.h) compiled for avx512, and 2x2 max pooling on
// AVX-512.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/fp32_math_impl.h"

namespace mighty::kernels {
namespace {

// 16 outputs per step from 32 floats of each of the window's two rows (masked loads for a row's last
// outputs), the pairs split by a permute: acc = max(v, acc) is v > acc ? v : acc = std::max(acc, v), in
// window order from -inf, as max_pool2_fp32 folds.
void max_pool2_avx512(const float* x, int64_t planes, int64_t h, int64_t w, float* y) {
  const int64_t oh = h / 2, ow = w / 2;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < oh; ++oy) {
      const float* r0 = x + (p * h + 2 * oy) * w;
      const float* r1 = r0 + w;
      float* o = y + (p * oh + oy) * ow;
      for (int64_t ox = 0; ox < ow; ox += 16) {
        const int n = static_cast<int>(std::min<int64_t>(16, ow - ox));  // outputs: 2n inputs per row
        const auto lo = static_cast<__mmask16>(n >= 8 ? 0xffffu : (1u << (2 * n)) - 1);
        const auto hi = static_cast<__mmask16>(n > 8 ? (1u << (2 * n - 16)) - 1 : 0u);
        const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ox),
                     a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ox + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ox),
                     b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ox + 16);
        __m512 acc = _mm512_max_ps(_mm512_permutex2var_ps(a0, even, a1), lowest);
        acc = _mm512_max_ps(_mm512_permutex2var_ps(a0, odd, a1), acc);
        acc = _mm512_max_ps(_mm512_permutex2var_ps(b0, even, b1), acc);
        acc = _mm512_max_ps(_mm512_permutex2var_ps(b0, odd, b1), acc);
        _mm512_mask_storeu_ps(o + ox, static_cast<__mmask16>((1u << n) - 1), acc);
      }
    }
}

constexpr Fp32MathKernels with_pooling(Fp32MathKernels t) {
  t.max_pool2 = max_pool2_avx512;
  return t;
}

}  // namespace

const Fp32MathKernels kFp32MathAvx512 = with_pooling(vector::table());

}  // namespace mighty::kernels
