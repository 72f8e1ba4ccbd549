// AMX path: TDPBUSD on 16 x 64-byte tiles (u8 x s8 -> s32), the blocking of gemm_amx_driver.h over the real
// tile instructions. The epilogue is the AVX-512 one (every AMX CPU has AVX-512). Shapes where tiles do not
// pay go to the AVX-512 VNNI loops: fewer than kAmxMinRows rows (a tile of 16 rows would mostly compute
// padding; measured in docs/kernels.md), a depth under kAmxMinDepth (a 64-byte tile row would mostly
// multiply padding: a 3x3 convolution of one channel ran at 0.37x the VNNI loops), a convolution whose
// gathered patches are shallower than kAmxMinGatherDepth (gathering each row into the strip costs more than
// the tiles save there: 3x3 over 16 channels ran at 0.7-0.9x end to end) and block-sparse weights (the sparse
// loops skip [16 x 4] blocks, a tile step is [16 x 64]).
#include <immintrin.h>

#include "kernels/depthwise.h"
#include "kernels/gemm.h"
#include "kernels/gemm_amx_driver.h"

namespace mighty::kernels {
namespace {

struct HardwareTiles {
  void configure(int64_t rows0, int64_t rows1) {
    const TileConfig config(rows0, rows1);
    _tile_loadconfig(&config);
  }
  void release() { _tile_release(); }
  template <int T>
  void zero() {
    _tile_zero(T);
  }
  template <int T>
  void load(const void* base, int64_t stride) {
    _tile_loadd(T, base, stride);
  }
  template <int C, int A, int B>
  void dpbusd() {
    _tile_dpbusd(C, A, B);
  }
  template <int T>
  void store(int32_t* base, int64_t stride) {
    _tile_stored(T, base, stride);
  }
  void epilogue(const GemmArgs& args, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
                const int32_t* acc, int64_t acc_stride) {
    apply_epilogue_rows_avx512(args, row0, rows, col0, cols, acc, acc_stride);
  }
  // pack_a_strip's bytes in masked moves of up to 64 bytes (a run's bytes only: nothing past it is read).
  // The generic one copies with a library call per run; measured on a 3x3 convolution over 32 channels at
  // 14x14 (runs of 96 bytes), 1 thread: the layer 4.4 -> 3.9 us, packing 2.2 -> 1.6 us of it.
  void pack(const GemmArgs& args, int64_t row0, int64_t rows, int64_t kp, uint8_t* strip) {
    const int64_t k = args.w->k;
    const int64_t runs = args.a_rows ? args.a_segments : 1, run = k / runs;
    const int64_t step = args.a_rows ? args.a_segment_stride : 0;
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t r = 0; r < 2 * kTileRows; ++r) {
      uint8_t* dst = strip + r * kp;
      int64_t filled = 0;
      if (r < rows) {
        const int64_t m = row0 + r;
        const uint8_t* src = args.a_rows ? args.a + args.a_rows[m] : args.a + m * args.lda;
        for (int64_t s = 0; s < runs; ++s)
          for (int64_t off = 0; off < run; off += 64) {
            const __mmask64 mask = first_bytes(run - off);
            _mm512_mask_storeu_epi8(dst + s * run + off, mask,
                                    _mm512_maskz_loadu_epi8(mask, src + s * step + off));
          }
        filled = k;
      }
      for (int64_t off = filled; off < kp; off += 64)
        _mm512_mask_storeu_epi8(dst + off, first_bytes(kp - off), zero);
    }
  }

 private:
  static __mmask64 first_bytes(int64_t n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }
};

}  // namespace

void gemm_amx(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  if (args.w->sparse || args.m < kAmxMinRows) return gemm_avx512vnni(args, n_begin, n_end);
  thread_local std::vector<DirectTile> direct_list;
  const bool direct = direct_tiles(args, direct_list);
  const int64_t min_depth = args.a_rows ? kAmxMinGatherDepth : kAmxMinDepth;
  if (!direct && args.w->k_padded < min_depth) return gemm_avx512vnni(args, n_begin, n_end);
  HardwareTiles tiles;
  amx_gemm(tiles, args, n_begin, n_end, direct ? &direct_list : nullptr);
}

}  // namespace mighty::kernels
