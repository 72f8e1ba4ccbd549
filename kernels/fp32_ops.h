// fp32 operations for layers kept in floating point (and the runtime's own fp32 path), on Eigen, except
// linear_fp32 (kernels/sgemm.h). The Eigen ones are not bit-identical to a scalar twin: fp32 sums depend on
// their order, so they are tested against double-precision references with a relative tolerance.
#pragma once

#include <cstdint>

namespace mighty::kernels {

class ThreadPool;

// y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over the last dimension (biased variance, as
// LibTorch).
void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps,
                float* y);
// y = 0.5 x (1 + erf(x / sqrt(2))), LibTorch's default GELU. x and y may alias.
void gelu(const float* x, int64_t count, float* y);
// Row-wise softmax, max-subtracted. x and y may alias.
void softmax_rows(const float* x, int64_t rows, int64_t cols, float* y);
// y[rows][out] = x[rows][in] * wt[in][out] + b (b may be null): a Linear layer with its weights [out][in]
// transposed once (kernels/transpose.h), on the fp32 GEMM of kernels/sgemm.h (bit-identical across paths),
// columns split over `pool` when given.
void linear_fp32(const float* x, int64_t rows, int64_t in, const float* wt, const float* b, int64_t out,
                 float* y, ThreadPool* pool = nullptr);
// Max pooling of `planes` fp32 planes [h][w] with a 2x2 window at stride 2, no padding: y [planes][h/2][w/2].
// Each output is std::max folded from -inf over its window in row order (NaN inputs give what that fold
// gives), four outputs at a time on SSE2.
void max_pool2_fp32(const float* x, int64_t planes, int64_t h, int64_t w, float* y);

}  // namespace mighty::kernels
