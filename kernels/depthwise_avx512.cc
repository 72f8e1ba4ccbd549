// Depthwise convolution on AVX-512 VNNI (depthwise.h): 16 channels per vpdpwssd of interleaved tap pairs,
// exact int32 sums, then the GEMM's AVX-512 epilogue. Bit-identical to depthwise_ref.
#include <immintrin.h>

#include <vector>

#include "kernels/depthwise.h"

namespace mighty::kernels {
namespace {

// 16 channels of two taps as int16 pairs in channel order: [x0[c], x1[c]] for c = 0..15.
inline __m512i interleave16(const uint8_t* p0, const uint8_t* p1) {
  const __m256i x0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0)));
  const __m256i x1 = p1 ? _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)))
                        : _mm256_setzero_si256();
  const __m256i lo = _mm256_unpacklo_epi16(x0, x1);  // channels 0-3 | 8-11
  const __m256i hi = _mm256_unpackhi_epi16(x0, x1);  // channels 4-7 | 12-15
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(lo, hi, 0x20)),
                            _mm256_permute2x128_si256(lo, hi, 0x31), 1);
}

}  // namespace

void depthwise_avx512(const DepthwiseArgs& args, int64_t row_begin, int64_t row_end) {
  const ConvGeometry& g = args.geometry;
  const DepthwiseWeights& w = *args.w;
  const int64_t ow = g.out_width(), k = g.kernel, c = g.channels, taps = k * k;
  const int64_t padded_row = (g.width + 2 * g.padding) * c;
  const GemmArgs epilogue = depthwise_epilogue_args(args);
  thread_local std::vector<int32_t> acc;
  thread_local std::vector<int64_t> offset;  // of each tap from the window's corner
  acc.resize(static_cast<size_t>(w.channels_padded));
  depthwise_offsets(args, offset);
  const int64_t full = c / 16 * 16;
  for (int64_t oy = row_begin; oy < row_end; ++oy)
    for (int64_t ox = 0; ox < ow; ++ox) {
      const uint8_t* corner = args.image + oy * g.stride * padded_row + ox * g.stride * c;
      for (int64_t cb = 0; cb < full; cb += 16) {
        __m512i sum = _mm512_setzero_si512();
        for (int64_t q = 0; q < w.pairs; ++q) {
          const int64_t t0 = 2 * q, t1 = 2 * q + 1;
          const __m512i x = interleave16(corner + offset[static_cast<size_t>(t0)] + cb,
                                         t1 < taps ? corner + offset[static_cast<size_t>(t1)] + cb : nullptr);
          sum = _mm512_dpwssd_epi32(sum, x,
                                    _mm512_loadu_si512(w.taps.data() + (q * w.channels_padded + cb) * 2));
        }
        _mm512_storeu_si512(acc.data() + cb, sum);
      }
      depthwise_channels_ref(args, corner, offset.data(), full, c, acc.data());
      apply_epilogue_avx512(epilogue, oy * ow + ox, 0, c, acc.data());
    }
}

}  // namespace mighty::kernels
