// Depthwise convolution on AVX2 (depthwise.h): 8 channels per vpmaddwd of interleaved tap pairs, exact
// int32 sums, then the GEMM's AVX2 epilogue. Bit-identical to depthwise_ref.
#include <immintrin.h>

#include <vector>

#include "kernels/depthwise.h"

namespace mighty::kernels {

void depthwise_avx2(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  const ConvGeometry& g = args.geometry;
  const DepthwiseWeights& w = *args.w;
  const int64_t ow = g.out_width(), k = g.kernel, c = g.channels, taps = k * k;
  const int64_t padded_row = (g.width + 2 * g.padding) * c;
  const GemmArgs epilogue = depthwise_epilogue_args(args);
  thread_local std::vector<int32_t> acc;
  thread_local std::vector<int64_t> offset;  // of each tap from the window's corner
  acc.resize(static_cast<size_t>(w.channels_padded));
  depthwise_offsets(args, offset);
  const int64_t full = c / 8 * 8;
  for (int64_t oy = row_begin; oy < row_end; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const uint8_t* corner = args.image + oy * g.stride * padded_row + ox * g.stride * c;
      for (int64_t cb = 0; cb < full; cb += 8) {
        __m256i sum = _mm256_setzero_si256();
        for (int64_t q = 0; q < w.pairs; ++q) {
          const int64_t t0 = 2 * q, t1 = 2 * q + 1;
          const __m128i x0 = _mm_cvtepu8_epi16(_mm_loadl_epi64(
              reinterpret_cast<const __m128i*>(corner + offset[static_cast<size_t>(t0)] + cb)));
          const __m128i x1 = t1 < taps ? _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(
                                             corner + offset[static_cast<size_t>(t1)] + cb)))
                                       : _mm_setzero_si128();
          const __m256i x = _mm256_set_m128i(_mm_unpackhi_epi16(x0, x1), _mm_unpacklo_epi16(x0, x1));
          const __m256i wv = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(w.taps.data() + (q * w.channels_padded + cb) * 2));
          sum = _mm256_add_epi32(sum, _mm256_madd_epi16(x, wv));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc.data() + cb), sum);
      }
      depthwise_channels_ref(args, corner, offset.data(), full, c, acc.data());
      apply_epilogue_avx2(epilogue, oy * ow + ox, 0, c, acc.data());
    }
}

}  // namespace mighty::kernels
