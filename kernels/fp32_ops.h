// fp32 Linear and pooling for layers kept in floating point (and the runtime's own fp32 path). The
// elementwise math and row reductions (softmax, GELU, LayerNorm, ...) are kernels/fp32_math.h.
#pragma once

#include <cstdint>

namespace mighty::kernels {

class ThreadPool;

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
