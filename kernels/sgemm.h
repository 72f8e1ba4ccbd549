// fp32 GEMM for the runtime's floating-point layers: C[m][n] = init + sum_k A[m][k] * B[k][n], A, B and C
// row-major with their own row strides (or C's columns packed from a grid: SgemmArgs::c_pitch). The sum
// starts from the bias (row_bias[m], or col_bias[n], or 0; or C itself when accumulating) and
// takes the products in k order, one fused multiply-add each, on every path (ref: std::fma), so every path
// gives the same bits and a SIMD path is tested byte for byte against the scalar one, as the int8 kernels
// are. (Against another library the results differ by summation order only: the fp32 tests compare with a
// tolerance.)
//
// No packing: B's rows are read in place (at a stride, or at the offsets of `b_rows`), a few vectors of one
// row per step, each reused by the register tile's rows of A (broadcast). A convolution's patch matrix is B
// (K = patch, N = pixels) with its weights as A, so neither is copied.
#pragma once

#include <cstdint>

#include "kernels/cpu_features.h"

namespace mighty::kernels {

class ThreadPool;

struct SgemmArgs {
  const float* a = nullptr;  // [m][lda]
  const float* b = nullptr;  // [k][ldb]
  float* c = nullptr;        // [m][ldc]
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  const float* row_bias = nullptr;  // [m] (optional; not with col_bias)
  const float* col_bias = nullptr;  // [n] (optional)
  bool accumulate = false;          // the sum starts from C's current values instead (no bias)
  // Implicit im2col: when set, B's row kk starts at b + b_rows[kk] (ldb unused), so a convolution's patch
  // rows are read in place from its (padded) input, one offset per (tap, channel).
  const int64_t* b_rows = nullptr;  // [k]
  bool relu = false;                // each result is max(sum, 0) as the ReLU op computes it (NaN -> 0)
  // Grid columns (a convolution's output over its padded input's row pitch): when c_pitch > 0, the columns
  // are rows of c_pitch of which the first c_keep are stored, the others computed and dropped: column q goes
  // to C column (q / c_pitch) * c_keep + q % c_pitch, so each row of C holds the kept columns packed. Not
  // with accumulate or col_bias.
  int64_t c_pitch = 0, c_keep = 0;
};

// Columns [n_begin, n_end) of C, all rows, on one path.
using SgemmKernel = void (*)(const SgemmArgs& args, int64_t n_begin, int64_t n_end);
void sgemm_ref(const SgemmArgs& args, int64_t n_begin, int64_t n_end);
void sgemm_avx2(const SgemmArgs& args, int64_t n_begin, int64_t n_end);
void sgemm_avx512(const SgemmArgs& args, int64_t n_begin, int64_t n_end);
void sgemm_wasm(const SgemmArgs& args, int64_t n_begin, int64_t n_end);  // WebAssembly SIMD128

// On the selected path (MIGHTY_ISA or the best supported), column ranges split over `pool` when given.
void sgemm(const SgemmArgs& args, ThreadPool* pool = nullptr);
// The same on an explicit path (tests and benchmarks).
void sgemm(const SgemmArgs& args, Isa isa, ThreadPool* pool);

}  // namespace mighty::kernels
