// The one definition of requantization, shared by every kernel path and mirrored by compress/'s fake-quant
// simulation. Written so that scalar and SIMD code compute bit-identical results:
//   v = float(acc) * multiplier          (one IEEE single-precision multiply; no FMA contraction)
//   v = min(max(v, lo - zp), hi - zp)    (clamp before rounding, so out-of-range values never reach the cast)
//   q = round_half_to_even(v) + zp       (the default MXCSR rounding mode, as cvtps2dq does)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mighty::kernels {

inline int32_t requantize_value(int32_t acc, float multiplier, int32_t zero_point, int32_t lo, int32_t hi) {
  float v = static_cast<float>(acc) * multiplier;
  v = std::min(std::max(v, static_cast<float>(lo - zero_point)), static_cast<float>(hi - zero_point));
  return static_cast<int32_t>(std::nearbyint(v)) + zero_point;
}

// Dequantization of an accumulator to fp32: float(acc) * scale, then + bias (two separate roundings).
inline float dequantize_value(int32_t acc, float scale, float bias) {
  return static_cast<float>(acc) * scale + bias;
}

}  // namespace mighty::kernels
