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
  void configure() {
    static const TileConfig config;
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
};

}  // namespace

void gemm_amx(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  const int64_t min_depth = args.a_rows ? kAmxMinGatherDepth : kAmxMinDepth;
  if (args.w->sparse || args.m < kAmxMinRows || args.w->k_padded < min_depth)
    return gemm_avx512vnni(args, n_begin, n_end);
  HardwareTiles tiles;
  amx_gemm(tiles, args, n_begin, n_end);
}

}  // namespace mighty::kernels
