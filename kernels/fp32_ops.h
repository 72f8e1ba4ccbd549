// fp32 operations for layers kept in floating point (and the runtime's own fp32 path), on Eigen. Unlike the
// int8 kernels these are not bit-identical to a scalar twin: fp32 sums depend on their order, so they are
// tested against double-precision references with a relative tolerance.
#pragma once

#include <cstdint>

namespace mighty::kernels {

// y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over the last dimension (biased variance, as
// LibTorch).
void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps,
                float* y);
// y = 0.5 x (1 + erf(x / sqrt(2))), LibTorch's default GELU. x and y may alias.
void gelu(const float* x, int64_t count, float* y);
// Row-wise softmax, max-subtracted. x and y may alias.
void softmax_rows(const float* x, int64_t rows, int64_t cols, float* y);
// y[rows][out] = x[rows][in] * w[out][in]^T + b (b may be null).
void linear_fp32(const float* x, int64_t rows, int64_t in, const float* w, const float* b, int64_t out,
                 float* y);

}  // namespace mighty::kernels
