// fp32 elementwise math and row reductions for the runtime's floating-point layers: exp (inside softmax,
// SiLU, sigmoid and GELU), GELU (erf form), softmax with its scale and causal mask fused, LayerNorm.
//
// One source of the arithmetic (kernels/fp32_math_impl.h), instantiated on a float (the scalar `ref` path)
// and on a 16-lane vector (each SIMD path): every step is one IEEE operation (no contraction, no library
// call), so each path gives the same bits on every CPU (x86, ARM, WebAssembly) and is tested byte for byte
// against the scalar one. Sums and maxima over a row are taken in 16 partial lanes (element i into lane i %
// 16), folded 8+8, 4+4, 2+2, 1+1, on every path.
//
// Accuracy (tests/kernels/test_fp32_math.cc measures it against double precision):
// - exp: Cody-Waite reduction to |r| <= ln2/2 and its degree-7 Taylor polynomial, within 2 ulp. Below -87 it
//   gives 0 (no denormal results: each x86 operation on one takes a microcode assist); above 88.72, +inf.
// - GELU: Phi(x) = erfc(-x/sqrt 2)/2 from exp(-z^2) times a degree-10 polynomial in 1/(1 + |z|/2) fitted to
//   erfc(z) e^(z^2) on [0, 10] (Chebyshev least squares, in numpy); within (4e-7 + 3e-7 z^2) of Phi
//   relative to the smaller of Phi and 1 - Phi, so the negative tail keeps its relative accuracy (z^2 carries
//   the roundings of z = x / sqrt 2 and of its square into exp's argument).
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace mighty::kernels {

struct SoftmaxArgs {
  const float* x = nullptr;  // [rows][cols]
  float* y = nullptr;        // [rows][cols]; may be x
  int64_t rows = 0, cols = 0;
  float scale = 1.0f;  // the row is x * scale (attention's 1/sqrt(head_dim))
  // Causal: row r sees columns 0 .. causal_offset + r; later columns get probability 0. -1: every column.
  int64_t causal_offset = -1;
};

struct Fp32MathKernels {
  // Row-wise softmax of x * scale, max-subtracted; probabilities below FLT_MIN are 0 (not denormal).
  void (*softmax)(const SoftmaxArgs& args);
  // y = x Phi(x), LibTorch's default (erf) GELU. x and y may alias.
  void (*gelu)(const float* x, int64_t count, float* y);
  // y = x / (1 + exp(-x)) (SiLU) and y = 1 / (1 + exp(-x)) (sigmoid). x and y may alias.
  void (*silu)(const float* x, int64_t count, float* y);
  void (*sigmoid)(const float* x, int64_t count, float* y);
  // y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over the last dimension (biased variance, as
  // LibTorch).
  void (*layer_norm)(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta,
                     float eps, float* y);
  // 2x2 max pooling at stride 2 as kernels/fp32_ops.h's max_pool2_fp32 (that function is the scalar path),
  // bit for bit: each output std::max folded from -inf over its window in row order.
  void (*max_pool2)(const float* x, int64_t planes, int64_t h, int64_t w, float* y);
};
extern const Fp32MathKernels kFp32MathRef;
extern const Fp32MathKernels kFp32MathAvx2;
extern const Fp32MathKernels kFp32MathAvx512;
extern const Fp32MathKernels
    kFp32MathVector;  // the 16-lane form on the target's baseline SIMD (aarch64, wasm)

// On the selected path (MIGHTY_ISA or the best supported).
const Fp32MathKernels& fp32_math();
// On an explicit path (tests and benchmarks).
const Fp32MathKernels& fp32_math(Isa isa);

}  // namespace mighty::kernels
