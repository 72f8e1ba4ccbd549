// fp32 GEMM on AVX2 + FMA (sgemm.h, sgemm_simd.h): 8 lanes, tiles of 6 rows x 2 vectors (12 accumulators of
// the 16 ymm registers). Bit-identical to sgemm_ref.
#include <immintrin.h>

#include "kernels/sgemm.h"
#include "kernels/sgemm_simd.h"

namespace mighty::kernels {
namespace {

struct Avx2 {
  using Reg = __m256;
  using Mask = __m256i;  // lanes to load and store: all bits set
  static constexpr int64_t kLanes = 8;
  static constexpr int kRows = 6, kVectors = 2;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg max0(Reg v) { return _mm256_max_ps(v, _mm256_setzero_ps()); }  // NaN, -0 -> +0
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, Reg v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static void store_kept(float* p, Reg v, uint32_t keep) {
    if (keep == 0xffu) return _mm256_storeu_ps(p, v);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    for (int i = 0; i < 8; ++i)
      if (keep >> i & 1u) *p++ = lanes[i];
  }
  static Mask mask(int64_t valid) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
};

}  // namespace

void sgemm_avx2(const SgemmArgs& args, int64_t n_begin, int64_t n_end) {
  sgemm_simd::run<Avx2>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
