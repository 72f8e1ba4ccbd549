#include "kernels/fp32_ops.h"

#include <algorithm>
#include <limits>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include "kernels/sgemm.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mighty::kernels {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRows = Eigen::Map<const RowMatrix>;
using Rows = Eigen::Map<RowMatrix>;

}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps,
                float* y) {
  const Eigen::Map<const Eigen::ArrayXf> g(gamma, dim), b(beta, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const Eigen::Map<const Eigen::ArrayXf> in(x + r * dim, dim);
    const float mean = in.mean();
    const float var = (in - mean).square().mean();
    const float inv = 1.0f / std::sqrt(var + eps);
    Eigen::Map<Eigen::ArrayXf>(y + r * dim, dim) = (in - mean) * inv * g + b;
  }
}

void gelu(const float* x, int64_t count, float* y) {
  const Eigen::Map<const Eigen::ArrayXf> in(x, count);
  Eigen::Map<Eigen::ArrayXf> out(y, count);
  out = 0.5f * in * (1.0f + (in * 0.70710678118654752f).erf());
}

void softmax_rows(const float* x, int64_t rows, int64_t cols, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const Eigen::Map<const Eigen::ArrayXf> in(x + r * cols, cols);
    Eigen::Map<Eigen::ArrayXf> out(y + r * cols, cols);
    const float mx = in.maxCoeff();
    // Probabilities below FLT_MIN are 0 here, not denormal: exp of a difference below -87 underflows, and a
    // quotient may still land below FLT_MIN. Every x86 operation on a denormal takes a microcode assist, and
    // attention multiplies these by the values (measured: the KJV character model's full-context forward
    // 11.9 -> 1.6 ms once no denormal reaches its GEMMs). The change is below 1.2e-38 per probability.
    out = ((in - mx) < -87.0f).select(0.0f, (in - mx).exp());
    out /= out.sum();
    out = (out < std::numeric_limits<float>::min()).select(0.0f, out);
  }
}

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
      for (; ox + 4 <= ow; ox += 4) {
        const __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
        const __m128 b0 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
        __m128 acc = _mm_set1_ps(lowest);
        acc = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), acc);
        acc = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), acc);
        acc = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), acc);
        acc = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), acc);
        _mm_storeu_ps(o + ox, acc);
      }
#endif
      for (; ox < ow; ++ox)
        o[ox] = fold(fold(fold(fold(lowest, r0[2 * ox]), r0[2 * ox + 1]), r1[2 * ox]), r1[2 * ox + 1]);
    }
  }
}

}  // namespace mighty::kernels
