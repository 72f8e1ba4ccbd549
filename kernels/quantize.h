// Activation (de)quantization between fp32 and uint8, bit-identical on every path.
//   quantize:   q = round_half_even(clamp(x * inv_scale, -zp, 255 - zp)) + zp
//               (clamp with x86 max/min operand semantics: a NaN input maps to the low end, 0)
//   dequantize: x = float(q - zp) * scale
// Dynamic quantization picks per-row parameters from the row's range (extended to include 0, so zero is
// exact):
//   scale = (max - min) / 255 (1 when the row is constant zero), zp = clamp(round_half_even(-min / scale), 0,
//   255).
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace mighty::kernels {

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// The parameters for values in [lo, hi] (the range is first extended to include 0).
QuantParams choose_quant_params(float lo, float hi);

// The scalar definition of one value.
inline uint8_t quantize_value(float x, float inv_scale, int32_t zero_point) {
  float v = x * inv_scale;
  const float lo = static_cast<float>(-zero_point), hi = static_cast<float>(255 - zero_point);
  v = v > lo ? v : lo;  // _mm_max_ps(v, lo): lo when v is NaN
  v = v < hi ? v : hi;  // _mm_min_ps(v, hi)
  return static_cast<uint8_t>(static_cast<int32_t>(__builtin_nearbyintf(v)) + zero_point);
}

// Rows of x [rows][ldx] -> q [rows][ldq], one scale and zero point for all.
void quantize_rows(const float* x, int64_t rows, int64_t cols, int64_t ldx, QuantParams p, uint8_t* q,
                   int64_t ldq);
// Each row with its own parameters, chosen from its range; written to scales[rows] and zero_points[rows].
void quantize_rows_dynamic(const float* x, int64_t rows, int64_t cols, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scales, int32_t* zero_points);
void dequantize(const uint8_t* q, int64_t count, QuantParams p, float* x);

// The same on an explicit path (tests and benchmarks).
void quantize_rows(const float* x, int64_t rows, int64_t cols, int64_t ldx, QuantParams p, uint8_t* q,
                   int64_t ldq, Isa isa);
void quantize_rows_dynamic(const float* x, int64_t rows, int64_t cols, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scales, int32_t* zero_points, Isa isa);
void dequantize(const uint8_t* q, int64_t count, QuantParams p, float* x, Isa isa);

// Per-path primitives over one contiguous run (one ISA per translation unit).
struct QuantizeKernels {
  void (*quantize)(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* q);
  void (*range)(const float* x, int64_t n, float* lo, float* hi);  // min and max (finite inputs)
  void (*dequantize)(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x);
};
extern const QuantizeKernels kQuantizeRef;
extern const QuantizeKernels kQuantizeAvx2;
extern const QuantizeKernels kQuantizeAvx512;

}  // namespace mighty::kernels
