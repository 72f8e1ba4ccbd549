// The scalar definition of the GEMM: a plain triple loop over the packed bytes. Every optimized path must
// produce exactly its results.
#include <vector>

#include "kernels/gemm.h"

namespace mighty::kernels {

namespace {

// Row `row` of A as K contiguous bytes: in place, or gathered from its runs (implicit im2col).
const uint8_t* contiguous_row(const GemmArgs& args, int64_t row, std::vector<uint8_t>& scratch) {
  if (!args.a_rows) return args.a + row * args.lda;
  const int64_t k = args.w->k, run = k / args.a_segments;
  scratch.resize(static_cast<size_t>(k));
  for (int64_t kk = 0; kk < k; ++kk)
    scratch[static_cast<size_t>(kk)] = args.a[args.a_rows[row] + kk / run * args.a_segment_stride + kk % run];
  return scratch.data();
}

// The block-sparse loop: only the listed 4-deep groups of each column's block.
void gemm_ref_sparse(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeights& w = *args.w;
  std::vector<int32_t> acc(static_cast<size_t>(n_end - n_begin));
  std::vector<uint8_t> gathered;
  for (int64_t row = 0; row < args.m; ++row) {
    const uint8_t* a = contiguous_row(args, row, gathered);
    for (int64_t col = n_begin; col < n_end; ++col) {
      const int64_t block = col / kPackColumns;
      const int8_t* b = w.block(block) + (col % kPackColumns) * kPackDepth;
      int32_t sum = 0;
      for (int32_t j = w.nz_begin[block]; j < w.nz_begin[block + 1]; ++j) {
        const int64_t g = w.nz_group[j];
        for (int64_t d = 0; d < kPackDepth && g * kPackDepth + d < w.k; ++d) {
          sum += static_cast<int32_t>(a[g * kPackDepth + d]) * b[g * kPackColumns * kPackDepth + d];
        }
      }
      acc[col - n_begin] = sum;
    }
    apply_epilogue_ref(args, row, n_begin, n_end - n_begin, acc.data());
  }
}

}  // namespace

void gemm_ref(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeights& w = *args.w;
  if (w.sparse) return gemm_ref_sparse(args, n_begin, n_end);
  std::vector<int32_t> acc(static_cast<size_t>(n_end - n_begin));
  std::vector<uint8_t> gathered;
  for (int64_t row = 0; row < args.m; ++row) {
    const uint8_t* a = contiguous_row(args, row, gathered);
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
