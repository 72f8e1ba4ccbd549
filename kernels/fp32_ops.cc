#include "kernels/fp32_ops.h"

#include <algorithm>
#include <limits>

#include "kernels/sgemm.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mighty::kernels {
void linear_fp32(const float* x, int64_t rows, int64_t in, const float* wt, const float* b, int64_t out,
                 float* y, ThreadPool* pool) {
  SgemmArgs p;
  p.a = x;
  p.lda = p.k = in;
  p.b = wt;
  p.ldb = p.n = p.ldc = out;
  p.c = y;
  p.m = rows;
  p.col_bias = b;
  sgemm(p, pool);
}

void max_pool2_fp32(const float* x, int64_t planes, int64_t h, int64_t w, float* y) {
  const int64_t oh = h / 2, ow = w / 2;
  const float lowest = -std::numeric_limits<float>::infinity();
  // std::max(acc, v) = acc < v ? v : acc, which is maxps(v, acc) lane by lane.
  auto fold = [](float acc, float v) { return std::max(acc, v); };
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = x + p * h * w;
    float* out = y + p * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy) {
      const float* r0 = plane + 2 * oy * w;
      const float* r1 = r0 + w;
      float* o = out + oy * ow;
      int64_t ox = 0;
#if defined(__SSE2__)
      const auto four = [&](int64_t at) {
        const __m128 a0 = _mm_loadu_ps(r0 + 2 * at), a1 = _mm_loadu_ps(r0 + 2 * at + 4);
        const __m128 b0 = _mm_loadu_ps(r1 + 2 * at), b1 = _mm_loadu_ps(r1 + 2 * at + 4);
        __m128 acc = _mm_set1_ps(lowest);
        acc = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), acc);
        acc = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), acc);
        acc = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), acc);
        acc = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), acc);
        _mm_storeu_ps(o + at, acc);
      };
      for (; ox + 4 <= ow; ox += 4) four(ox);
      // The last few outputs of a row at least 4 wide: the last four again, overlapping (same values).
      if (ox < ow && ow >= 4) four(ox = ow - 4), ox = ow;
#endif
      for (; ox < ow; ++ox)
        o[ox] = fold(fold(fold(fold(lowest, r0[2 * ox]), r0[2 * ox + 1]), r1[2 * ox]), r1[2 * ox + 1]);
    }
  }
}

}  // namespace mighty::kernels
