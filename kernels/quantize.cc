// Dispatch and the scalar definition of activation (de)quantization. Compiled without ISA flags.
#include "kernels/quantize.h"

#include <stdexcept>

#include "kernels/dispatch.h"

namespace mighty::kernels {
namespace {

void quantize_ref(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = quantize_value(x[i], inv_scale, zero_point);
}

void range_ref(const float* x, int64_t n, float* lo, float* hi) {
  float mn = x[0], mx = x[0];
  for (int64_t i = 1; i < n; ++i) {
    mn = x[i] < mn ? x[i] : mn;
    mx = x[i] > mx ? x[i] : mx;
  }
  *lo = mn;
  *hi = mx;
}

void dequantize_ref(const uint8_t* q, int64_t n, float scale, int32_t zero_point, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zero_point) * scale;
}

const QuantizeKernels& kernels_for(Isa isa) { return *kernel_table(isa).quantize; }

Isa default_isa() {
  static const Isa isa = selected_isa();
  return isa;
}

}  // namespace

const QuantizeKernels kQuantizeRef = {quantize_ref, range_ref, dequantize_ref};

QuantParams choose_quant_params(float lo, float hi) {
  lo = lo < 0.0f ? lo : 0.0f;
  hi = hi > 0.0f ? hi : 0.0f;
  QuantParams p;
  p.scale = (hi - lo) / 255.0f;
  if (!(p.scale > 0.0f)) p.scale = 1.0f;  // constant zero row (or non-finite input)
  const float z = __builtin_nearbyintf(-lo / p.scale);
  p.zero_point = z < 0.0f ? 0 : z > 255.0f ? 255 : static_cast<int32_t>(z);
  return p;
}

void quantize_rows(const float* x, int64_t rows, int64_t cols, int64_t ldx, QuantParams p, uint8_t* q,
                   int64_t ldq, Isa isa) {
  const auto& k = kernels_for(isa);
  const float inv = 1.0f / p.scale;
  for (int64_t r = 0; r < rows; ++r) k.quantize(x + r * ldx, cols, inv, p.zero_point, q + r * ldq);
}

void quantize_rows_dynamic(const float* x, int64_t rows, int64_t cols, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scales, int32_t* zero_points, Isa isa) {
  const auto& k = kernels_for(isa);
  for (int64_t r = 0; r < rows; ++r) {
    float lo = 0.0f, hi = 0.0f;
    if (cols > 0) k.range(x + r * ldx, cols, &lo, &hi);
    const QuantParams p = choose_quant_params(lo, hi);
    scales[r] = p.scale;
    zero_points[r] = p.zero_point;
    k.quantize(x + r * ldx, cols, 1.0f / p.scale, p.zero_point, q + r * ldq);
  }
}

void dequantize(const uint8_t* q, int64_t count, QuantParams p, float* x, Isa isa) {
  kernels_for(isa).dequantize(q, count, p.scale, p.zero_point, x);
}

void quantize_rows(const float* x, int64_t rows, int64_t cols, int64_t ldx, QuantParams p, uint8_t* q,
                   int64_t ldq) {
  quantize_rows(x, rows, cols, ldx, p, q, ldq, default_isa());
}

void quantize_rows_dynamic(const float* x, int64_t rows, int64_t cols, int64_t ldx, uint8_t* q, int64_t ldq,
                           float* scales, int32_t* zero_points) {
  quantize_rows_dynamic(x, rows, cols, ldx, q, ldq, scales, zero_points, default_isa());
}

void dequantize(const uint8_t* q, int64_t count, QuantParams p, float* x) {
  dequantize(q, count, p, x, default_isa());
}

}  // namespace mighty::kernels
