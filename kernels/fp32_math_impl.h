// The arithmetic of kernels/fp32_math.h, written once over a lane type: `float` (the scalar ref path) or
// Vec, 16 floats in a GCC/clang vector, which each SIMD unit compiles to its own registers (one zmm, two ymm,
// four NEON or WebAssembly q registers). Every step is a single IEEE operation in the same order for both, so
// the paths agree bit for bit. Include only from the kernels' fp32 math units: everything here has internal
// linkage, so no function compiled with one unit's ISA flags is linked into another.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/fp32_math.h"
#include "kernels/fp32_ops.h"

// A 64-byte vector passed by value is returned differently with and without AVX-512; every function here has
// internal linkage and is inlined, so no call crosses that ABI.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mighty::kernels {
namespace {

constexpr int kLanes = 16;
using Vec = float __attribute__((vector_size(64)));
using VecI = int32_t __attribute__((vector_size(64)));
using VecU = uint32_t __attribute__((vector_size(64)));

// The lane operations both forms need: comparisons give a mask (bool, or -1/0 per lane), select(mask, a, b),
// the bits of a float and back, a constant in every lane.
inline bool less(float a, float b) { return a < b; }
inline VecI less(Vec a, Vec b) { return a < b; }
inline float select(bool m, float a, float b) { return m ? a : b; }
inline Vec select(VecI m, Vec a, Vec b) {
  return reinterpret_cast<Vec>((reinterpret_cast<VecI>(a) & m) | (reinterpret_cast<VecI>(b) & ~m));
}
inline int32_t bits(float v) {
  int32_t i;
  std::memcpy(&i, &v, 4);
  return i;
}
inline VecI bits(Vec v) { return reinterpret_cast<VecI>(v); }
inline float from_bits(int32_t i) {
  float v;
  std::memcpy(&v, &i, 4);
  return v;
}
inline Vec from_bits(VecI i) { return reinterpret_cast<Vec>(i); }
// 2^n for n in [-126, 127] (any other n gives some float, never undefined behaviour).
inline float pow2(int32_t n) { return from_bits(static_cast<int32_t>(static_cast<uint32_t>(n + 127) << 23)); }
inline Vec pow2(VecI n) { return reinterpret_cast<Vec>(reinterpret_cast<VecU>(n + 127) << 23); }
template <class T>
inline T splat(float c) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return c;
  } else {
    return T{} + c;
  }
}
// max as `a < b ? b : a` (a NaN in b is kept only when a < b holds, which it never does: the first NaN seen
// from the left is dropped, the same on every path).
template <class T>
inline T max_of(T a, T b) {
  return select(less(a, b), b, a);
}

// exp(x): x = k ln2 + r (k = round(x log2 e), ln2 in two parts so k ln2_hi is exact), e^r by its Taylor
// polynomial to degree 7 (|r| <= 0.347: truncation below 6e-9 relative), times 2^k built in the exponent
// field, in two halves so k = 128 and k = -126 stay representable. 0 below -87, +inf past 88.72.
template <class T>
inline T exp_t(T x) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, kept in the low bits
  const T lo = splat<T>(-87.0f), hi = splat<T>(89.0f);
  const T xc = select(less(x, lo), lo, select(less(hi, x), hi, x));  // NaN stays NaN
  const T kb = xc * 1.44269504f + kMagic;
  const T k = kb - kMagic;
  T r = xc - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  T p = splat<T>(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const auto n = bits(kb) - bits(kMagic);
  const auto half = n >> 1;
  p = p * pow2(half);
  p = p * pow2(n - half);
  return select(less(x, lo), splat<T>(0.0f), p);
}

// x Phi(x). With z = x / sqrt 2 and h = erfc(|z|) / 2 = exp(-z^2) g(|z|) / 2: Phi = h below 0, 1 - h above.
// g(z) = erfc(z) e^(z^2) is a degree-10 polynomial in t = 1 / (1 + z/2) on [0, 10] (coefficients from a
// Chebyshev least-squares fit in double, rounded to float; relative error of the float evaluation 3e-7).
template <class T>
inline T gelu_t(T x) {
  constexpr float kG[] = {1.310654897679342e-05f, 0.28172942996025085f, 0.28653624653816223f,
                          0.21578893065452576f,   0.3145924508571625f,  -0.3260971009731293f,
                          0.809520959854126f,     -1.1065642833709717f, 0.739632248878479f,
                          -0.24999144673347473f,  0.03483942151069641f};
  const T zero = splat<T>(0.0f), ten = splat<T>(10.0f);
  const T z = x * 0.707106781f;
  const auto negative = less(z, zero);
  const T az = select(negative, zero - z, z);
  const T azc = select(less(ten, az), ten, az);
  const T t = 1.0f / (azc * 0.5f + 1.0f);
  T g = splat<T>(kG[10]);
  for (int i = 9; i >= 0; --i) g = g * t + kG[i];
  const T h = exp_t<T>(zero - az * az) * 0.5f * g;
  return x * select(negative, h, 1.0f - h);
}

template <class T>
inline T silu_t(T x) {
  return x / (exp_t<T>(splat<T>(0.0f) - x) + 1.0f);
}

template <class T>
inline T sigmoid_t(T x) {
  return 1.0f / (exp_t<T>(splat<T>(0.0f) - x) + 1.0f);
}

// The fold of 16 partial lanes: 8+8, 4+4, 2+2, 1+1 (sums) or the same with max_of.
template <class F>
inline float fold16(float (&l)[kLanes], F f) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) l[i] = f(l[i], l[i + w]);
  return l[0];
}
inline float fold_sum(float (&l)[kLanes]) {
  return fold16(l, [](float a, float b) { return a + b; });
}
inline float fold_max(float (&l)[kLanes]) {
  return fold16(l, [](float a, float b) { return max_of(a, b); });
}

// ---- The scalar form: element i goes into partial lane i % 16. ----

namespace scalar {

template <float (*F)(float)>
inline void map(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = F(x[i]);
}

inline void softmax(const SoftmaxArgs& a) {
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* x = a.x + r * a.cols;
    float* y = a.y + r * a.cols;
    const int64_t n = a.causal_offset < 0 ? a.cols : std::min(a.cols, a.causal_offset + r + 1);
    float part[kLanes];
    for (float& v : part) v = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) part[i % kLanes] = max_of(part[i % kLanes], x[i] * a.scale);
    const float mx = fold_max(part);
    for (float& v : part) v = -0.0f;
    for (int64_t i = 0; i < n; ++i) {
      y[i] = exp_t(x[i] * a.scale - mx);
      part[i % kLanes] += y[i];
    }
    const float sum = fold_sum(part);
    for (int64_t i = 0; i < n; ++i) {
      const float p = y[i] / sum;
      y[i] = select(less(p, FLT_MIN), 0.0f, p);
    }
    for (int64_t i = n; i < a.cols; ++i) y[i] = 0.0f;
  }
}

inline void layer_norm(const float* x, int64_t rows, int64_t dim, const float* g, const float* b, float eps,
                       float* y) {
  for (int64_t r = 0; r < rows; ++r, x += dim, y += dim) {
    float part[kLanes];
    for (float& v : part) v = -0.0f;
    for (int64_t i = 0; i < dim; ++i) part[i % kLanes] += x[i];
    const float mean = fold_sum(part) / static_cast<float>(dim);
    for (float& v : part) v = -0.0f;
    for (int64_t i = 0; i < dim; ++i) part[i % kLanes] += (x[i] - mean) * (x[i] - mean);
    const float inv = 1.0f / std::sqrt(fold_sum(part) / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < dim; ++i) y[i] = (x[i] - mean) * inv * g[i] + b[i];
  }
}

}  // namespace scalar

// ---- The vector form: whole blocks of 16, then the tail in a padded block. ----

namespace vector {

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
// The first n (< 16) elements of p, the other lanes `fill`.
inline Vec load_part(const float* p, int64_t n, float fill) {
  float buf[kLanes];
  for (float& v : buf) v = fill;
  std::memcpy(buf, p, static_cast<size_t>(n) * 4);
  return load(buf);
}
inline void store_part(float* p, int64_t n, Vec v) {
  float buf[kLanes];
  store(buf, v);
  std::memcpy(p, buf, static_cast<size_t>(n) * 4);
}
inline VecI first_lanes(int64_t n) {
  VecI idx;
  for (int i = 0; i < kLanes; ++i) idx[i] = i;
  return idx < static_cast<int32_t>(n);
}
inline float fold_sum(Vec v) {
  float l[kLanes];
  store(l, v);
  return kernels::fold_sum(l);
}
inline float fold_max(Vec v) {
  float l[kLanes];
  store(l, v);
  return kernels::fold_max(l);
}

template <Vec (*F)(Vec)>
inline void map(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(y + i, F(load(x + i)));
  if (i < n) store_part(y + i, n - i, F(load_part(x + i, n - i, 0.0f)));
}

inline void softmax(const SoftmaxArgs& a) {
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* x = a.x + r * a.cols;
    float* y = a.y + r * a.cols;
    const int64_t n = a.causal_offset < 0 ? a.cols : std::min(a.cols, a.causal_offset + r + 1);
    const int64_t whole = n / kLanes * kLanes, rest = n - whole;
    const VecI tail = first_lanes(rest);
    Vec m = splat<Vec>(-inf);
    for (int64_t i = 0; i < whole; i += kLanes) m = max_of(m, load(x + i) * a.scale);
    if (rest) m = max_of(m, select(tail, load_part(x + whole, rest, 0.0f) * a.scale, splat<Vec>(-inf)));
    const float mx = fold_max(m);
    Vec s = splat<Vec>(-0.0f);
    for (int64_t i = 0; i < whole; i += kLanes) {
      const Vec e = exp_t(load(x + i) * a.scale - mx);
      store(y + i, e);
      s += e;
    }
    if (rest) {
      const Vec e = exp_t(load_part(x + whole, rest, 0.0f) * a.scale - mx);
      store_part(y + whole, rest, e);
      s += select(tail, e, splat<Vec>(-0.0f));
    }
    const float sum = fold_sum(s);
    const Vec tiny = splat<Vec>(FLT_MIN), zero = splat<Vec>(0.0f);
    for (int64_t i = 0; i < whole; i += kLanes) {
      const Vec p = load(y + i) / sum;
      store(y + i, select(less(p, tiny), zero, p));
    }
    if (rest) {
      const Vec p = load_part(y + whole, rest, 0.0f) / sum;
      store_part(y + whole, rest, select(less(p, tiny), zero, p));
    }
    for (int64_t i = n; i < a.cols; ++i) y[i] = 0.0f;
  }
}

inline void layer_norm(const float* x, int64_t rows, int64_t dim, const float* g, const float* b, float eps,
                       float* y) {
  const int64_t whole = dim / kLanes * kLanes, rest = dim - whole;
  const VecI tail = first_lanes(rest);
  const Vec neg0 = splat<Vec>(-0.0f);
  for (int64_t r = 0; r < rows; ++r, x += dim, y += dim) {
    Vec s = neg0;
    for (int64_t i = 0; i < whole; i += kLanes) s += load(x + i);
    if (rest) s += load_part(x + whole, rest, -0.0f);
    const float mean = fold_sum(s) / static_cast<float>(dim);
    s = neg0;
    for (int64_t i = 0; i < whole; i += kLanes) {
      const Vec d = load(x + i) - mean;
      s += d * d;
    }
    if (rest) {
      const Vec d = load_part(x + whole, rest, 0.0f) - mean;
      s += select(tail, d * d, neg0);
    }
    const float inv = 1.0f / std::sqrt(fold_sum(s) / static_cast<float>(dim) + eps);
    for (int64_t i = 0; i < whole; i += kLanes)
      store(y + i, (load(x + i) - mean) * inv * load(g + i) + load(b + i));
    if (rest)
      store_part(y + whole, rest,
                 (load_part(x + whole, rest, 0.0f) - mean) * inv * load_part(g + whole, rest, 0.0f) +
                     load_part(b + whole, rest, 0.0f));
  }
}

// The table of a SIMD unit.
constexpr Fp32MathKernels table() {
  return {softmax, map<gelu_t<Vec>>, map<silu_t<Vec>>, map<sigmoid_t<Vec>>, layer_norm, max_pool2_fp32};
}

}  // namespace vector
}  // namespace
}  // namespace mighty::kernels
