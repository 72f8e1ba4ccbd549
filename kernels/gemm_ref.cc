// The scalar definition of the GEMM: a plain triple loop over the packed bytes. Every optimized path must
// produce exactly its results.
#include <vector>

#include "kernels/gemm.h"

namespace mighty::kernels {

void gemm_ref(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeights& w = *args.w;
  std::vector<int32_t> acc(static_cast<size_t>(n_end - n_begin));
  for (int64_t row = 0; row < args.m; ++row) {
    const uint8_t* a = args.a + row * args.lda;
    for (int64_t col = n_begin; col < n_end; ++col) {
      const int8_t* b = w.block(col / kPackColumns) + (col % kPackColumns) * kPackDepth;
      int32_t sum = 0;
      for (int64_t kk = 0; kk < w.k; ++kk) {
        sum +=
            static_cast<int32_t>(a[kk]) * b[(kk / kPackDepth) * kPackColumns * kPackDepth + kk % kPackDepth];
      }
      acc[col - n_begin] = sum;
    }
    apply_epilogue_ref(args, row, n_begin, n_end - n_begin, acc.data());
  }
}

}  // namespace mighty::kernels
