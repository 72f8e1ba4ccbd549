// A scalar model of the AMX tile instructions (Intel SDM: LDTILECFG, TILELOADD, TILEZERO, TDPBUSD,
// TILESTORED) run by the same blocking as the hardware path, compiled without ISA flags: the tests run it on
// every machine, so the tile layout of the packed weights, the A strips and the accumulator buffer are proven
// where AMX is absent.
#include <cstring>
#include <stdexcept>

#include "kernels/gemm.h"
#include "kernels/gemm_amx_driver.h"

namespace mighty::kernels {
namespace {

struct ModelTiles {
  struct Tile {
    int rows = 0, colsb = 0;
    uint8_t bytes[kTileRows][kTileBytes] = {};
  };
  Tile tile[8];
  bool configured = false;

  void configure(int64_t rows0, int64_t rows1) {
    const TileConfig config(rows0, rows1);
    for (int t = 0; t < 8; ++t) {
      tile[t].rows = config.rows[t];
      tile[t].colsb = config.colsb[t];
      std::memset(tile[t].bytes, 0, sizeof tile[t].bytes);
    }
    configured = true;
  }
  void release() { configured = false; }
  void check() const {
    if (!configured) throw std::logic_error("amx model: tile instruction before LDTILECFG");
  }
  template <int T>
  void zero() {
    check();
    std::memset(tile[T].bytes, 0, sizeof tile[T].bytes);
  }
  // TILELOADD: rows of colsb bytes at base + r * stride; the bytes beyond colsb are zeroed.
  template <int T>
  void load(const void* base, int64_t stride) {
    check();
    Tile& d = tile[T];
    std::memset(d.bytes, 0, sizeof d.bytes);
    for (int r = 0; r < d.rows; ++r)
      std::memcpy(d.bytes[r], static_cast<const uint8_t*>(base) + r * stride, static_cast<size_t>(d.colsb));
  }
  // TDPBUSD: C[m][n] += sum over k < A.colsb / 4 of the four products A[m][4k + i] (u8) x B[k][4n + i] (s8),
  // 32-bit wrapping; C is rows x colsb / 4 int32 values.
  template <int C, int A, int B>
  void dpbusd() {
    check();
    Tile& c = tile[C];
    const Tile& a = tile[A];
    const Tile& b = tile[B];
    if (a.colsb / 4 != b.rows || c.rows != a.rows || c.colsb != b.colsb)
      throw std::logic_error("amx model: TDPBUSD tile shapes do not match");
    for (int m = 0; m < c.rows; ++m) {
      for (int n = 0; n < c.colsb / 4; ++n) {
        int32_t sum;
        std::memcpy(&sum, &c.bytes[m][4 * n], 4);
        uint32_t wrapped = static_cast<uint32_t>(sum);
        for (int k = 0; k < a.colsb / 4; ++k) {
          int32_t dot = 0;
          for (int i = 0; i < 4; ++i)
            dot += static_cast<int32_t>(a.bytes[m][4 * k + i]) * static_cast<int8_t>(b.bytes[k][4 * n + i]);
          wrapped += static_cast<uint32_t>(dot);
        }
        sum = static_cast<int32_t>(wrapped);
        std::memcpy(&c.bytes[m][4 * n], &sum, 4);
      }
    }
  }
  template <int T>
  void store(int32_t* base, int64_t stride) {
    check();
    const Tile& s = tile[T];
    for (int r = 0; r < s.rows; ++r)
      std::memcpy(reinterpret_cast<uint8_t*>(base) + r * stride, s.bytes[r], static_cast<size_t>(s.colsb));
  }
  void pack(const GemmArgs& args, int64_t row0, int64_t rows, int64_t kp, uint8_t* strip) {
    pack_a_strip(args, row0, rows, kp, strip);
  }
  void epilogue(const GemmArgs& args, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
                const int32_t* acc, int64_t acc_stride) {
    for (int64_t r = 0; r < rows; ++r) apply_epilogue_ref(args, row0 + r, col0, cols, acc + r * acc_stride);
  }
};

}  // namespace

void gemm_amx_model(const GemmArgs& args, int64_t n_begin, int64_t n_end) {
  if (args.w->sparse) return gemm_ref(args, n_begin, n_end);
  ModelTiles tiles;
  std::vector<DirectTile> direct;
  const bool use_direct = direct_tiles(args, direct);
  amx_gemm(tiles, args, n_begin, n_end, use_direct ? &direct : nullptr);
}

}  // namespace mighty::kernels
