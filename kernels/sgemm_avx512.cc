// fp32 GEMM on AVX-512 (sgemm.h, sgemm_simd.h): 16 lanes, tiles of 8 rows x 3 vectors (24 accumulators).
// Bit-identical to sgemm_ref.
#include <immintrin.h>

#include "kernels/sgemm.h"
#include "kernels/sgemm_simd.h"

namespace mighty::kernels {
namespace {

struct Avx512 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int64_t kLanes = 16;
  static constexpr int kRows = 8, kVectors = 3;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg max0(Reg v) { return _mm512_max_ps(v, _mm512_setzero_ps()); }  // NaN, -0 -> +0
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, Reg v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static void store_kept(float* p, Reg v, uint32_t keep) {
    const int n = __builtin_popcount(keep);
    _mm512_mask_storeu_ps(p, static_cast<Mask>((1u << n) - 1),
                          _mm512_maskz_compress_ps(static_cast<Mask>(keep), v));
  }
  static Mask mask(int64_t valid) {
    return valid >= 16 ? static_cast<Mask>(0xffff) : static_cast<Mask>((1u << valid) - 1);
  }
};

}  // namespace

void sgemm_avx512(const SgemmArgs& args, int64_t n_begin, int64_t n_end) {
  sgemm_simd::run<Avx512>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
