// The fp32 GEMM's scalar path and its dispatch and threading (compiled without ISA flags).
#include "kernels/sgemm.h"

#include <algorithm>
#include <cmath>

#include "kernels/dispatch.h"
#include "kernels/thread_pool.h"

namespace mighty::kernels {

void sgemm_ref(const SgemmArgs& p, int64_t n_begin, int64_t n_end) {
  for (int64_t r = 0; r < p.m; ++r)
    for (int64_t col = n_begin; col < n_end; ++col) {
      if (p.c_pitch > 0 && col % p.c_pitch >= p.c_keep) continue;  // a grid column that is dropped
      const int64_t at = p.c_pitch > 0 ? col / p.c_pitch * p.c_keep + col % p.c_pitch : col;
      float s = p.accumulate ? p.c[r * p.ldc + col]
                : p.row_bias ? p.row_bias[r]
                : p.col_bias ? p.col_bias[col]
                             : 0.0f;
      for (int64_t kk = 0; kk < p.k; ++kk) {
        const float* brow = p.b + (p.b_rows ? p.b_rows[kk] : kk * p.ldb);
        s = std::fma(p.a[r * p.lda + kk], brow[col], s);
      }
      p.c[r * p.ldc + at] = p.relu ? (s > 0.0f ? s : 0.0f) : s;
    }
}

void sgemm(const SgemmArgs& args, Isa isa, ThreadPool* pool) {
  const SgemmKernel kernel = kernel_table(isa).sgemm;
  const int threads = pool ? pool->threads() : 1;
  // Column ranges in multiples of 16 (every path's vector width divides it); at least 64 columns each.
  const int64_t per_thread = (args.n + threads - 1) / threads;
  const int64_t chunk = std::max<int64_t>(64, (per_thread + 15) / 16 * 16);
  const int64_t tasks = (args.n + chunk - 1) / chunk;
  if (tasks <= 1) {
    kernel(args, 0, args.n);
    return;
  }
  pool->parallel_for(tasks, [&](int64_t t) { kernel(args, t * chunk, std::min(args.n, (t + 1) * chunk)); });
}

void sgemm(const SgemmArgs& args, ThreadPool* pool) {
  static const Isa selected = selected_isa();
  sgemm(args, selected, pool);
}

}  // namespace mighty::kernels
