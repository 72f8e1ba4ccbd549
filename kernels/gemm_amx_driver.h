// The AMX GEMM's blocking, written once over a tile back end: gemm_amx.cc instantiates it with the real tile
// instructions, gemm_amx_model.cc with a scalar model of them, so the packing and tiling logic is tested on
// every machine and the hardware path runs the very same loops.
//
// Tiles: 8 registers of up to 16 rows x 64 bytes. TDPBUSD C[16][16] += A[16][64 u8] x B[16][64 s8], where row
// g of B holds depths 4g..4g+3 of 16 columns, 4 bytes per column: exactly one 1 KB run of 16 groups of the
// packed layout in gemm.h ([N/16][K/4][16][4]), so B tiles load straight from the packed weights with a
// 64-byte stride (pack_weights pads every block's depth to a multiple of kAmxDepth with zeros for that). A
// tile: 16 rows of A, 64 bytes of depth each, read in place when A is a plain matrix with K a multiple of 64,
// otherwise from a strip of rows packed here (implicit im2col runs gathered, the depth padded with zeros,
// missing rows zero).
//
// Blocking: 2 x 2 accumulator tiles (32 rows x 32 columns: tiles 0-3), A in tiles 4-5, B in tiles 6-7; per
// 64-deep step 2 A loads, 2 B loads, 4 TDPBUSD. The accumulators go through an int32 buffer (a column pair's,
// or the strip's when the depth takes several passes) into the shared epilogue, so every output kind is the
// one the other paths compute.
//
// Internal linkage throughout: this header is compiled with AMX flags in one unit and without in another.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"

namespace mighty::kernels {
namespace {

inline constexpr int64_t kTileRows = kAmxTileRows;
inline constexpr int64_t kTileBytes = 64;

// The tile configuration (palette 1): every tile 64 bytes wide; the B tiles (6, 7) 16 rows; the first row
// tile's accumulators and A (0, 1, 4) rows0 rows, the second's (2, 3, 5) rows1. A block of fewer than 16
// rows per row tile gets shorter tiles rather than tiles padded with rows that are thrown away: a TDPBUSD
// and a TILELOADD take time in proportion to their rows (measured on a Xeon with AMX, 1 x 2 blocks of 8
// rows with A and B in L1: 2.0 -> 2.8 useful TOPS).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};

  TileConfig(int64_t rows0, int64_t rows1) {
    static constexpr int kRowTile[8] = {0, 0, 1, 1, 0, 1, 2, 2};  // which rows each tile has
    for (int t = 0; t < 8; ++t) {
      colsb[t] = kTileBytes;
      rows[t] = static_cast<uint8_t>(kRowTile[t] == 0 ? rows0 : kRowTile[t] == 1 ? rows1 : kTileRows);
    }
  }
};

// The configuration for blocks of rows0 + rows1 rows, loaded only when it changes (LDTILECFG also zeroes
// every tile, so it runs between blocks only). rows1 = 0: a block of one row tile.
template <class Tiles>
struct TileShape {
  Tiles& t;
  int64_t rows0 = 0, rows1 = 0;
  void set(int64_t r0, int64_t r1) {
    if (r1 == 0) r1 = r0;  // tiles 2, 3, 5 unused: any valid shape
    if (r0 == rows0 && r1 == rows1) return;
    t.configure(r0, r1);
    rows0 = r0;
    rows1 = r1;
  }
  // A strip of `rows` rows (at most 32).
  void strip(int64_t rows) {
    set(rows < kTileRows ? rows : kTileRows, rows > kTileRows ? rows - kTileRows : 0);
  }
};
static_assert(sizeof(TileConfig) == 64);

// Rows [row0, row0 + rows) of A as a strip of 32 rows of kp bytes (kp = K rounded up to 64): runs gathered,
// depth and missing rows zero. The model's packer; the hardware back end writes the same bytes with AVX-512
// masked moves (Tiles::pack).
inline void pack_a_strip(const GemmArgs& args, int64_t row0, int64_t rows, int64_t kp, uint8_t* strip) {
  const int64_t k = args.w->k;
  for (int64_t r = 0; r < 2 * kTileRows; ++r) {
    uint8_t* dst = strip + r * kp;
    if (r >= rows) {
      std::memset(dst, 0, static_cast<size_t>(kp));
      continue;
    }
    const int64_t m = row0 + r;
    if (args.a_rows) {
      const int64_t run = k / args.a_segments;
      for (int64_t s = 0; s < args.a_segments; ++s)
        std::memcpy(dst + s * run, args.a + args.a_rows[m] + s * args.a_segment_stride,
                    static_cast<size_t>(run));
    } else {
      std::memcpy(dst, args.a + m * args.lda, static_cast<size_t>(k));
    }
    std::memset(dst + k, 0, static_cast<size_t>(kp - k));
  }
}

// A strip whose whole depth fits in this many bytes (32 rows x 512, 16 rows x 1024) stays in L1 while the B
// tiles of every column pair stream past it, and each pair's accumulators go straight to the epilogue. A
// deeper strip is taken in passes of kAmxKBlock bytes, the accumulators spilled to the strip's int32 buffer
// between passes. (Measured on a Xeon with AMX, docs/kernels.md: a 32 KB strip beside the streaming B runs
// at 0.7x a 16 KB one.)
inline constexpr int64_t kAmxStripBytes = 16 * 1024;
inline constexpr int64_t kAmxKBlock = 512;

// Where the two A tiles of a block read depth step s: tile 0 at a0 + offset(s) with row stride stride0, tile
// 1 at a1 + offset(s) with stride1; offset(s) = 64 s, or step_offsets[s] for the direct convolution.
struct ASource {
  const uint8_t* a0 = nullptr;
  int64_t stride0 = 0;
  const uint8_t* a1 = nullptr;
  int64_t stride1 = 0;
  const int64_t* step_offsets = nullptr;
  int64_t offset(int64_t s) const { return step_offsets ? step_offsets[s] : s * kTileBytes; }
};

// Rows [row0, row0 + rows) (rows <= 32) x columns [col0, col0 + cols) (cols <= 32, col0 a multiple of 16) of
// weights w, depth steps [s0, s1) of 64: accumulators from zero (first) or from `acc` (row stride acc_stride
// int32 values), back into `acc`.
template <class Tiles>
inline void amx_block(Tiles& t, const PackedWeights& w, int64_t rows, int64_t col0, int64_t cols,
                      const ASource& a, int64_t s0, int64_t s1, bool first, int32_t* acc,
                      int64_t acc_stride) {
  const bool two_m = rows > kTileRows, two_n = cols > kPackColumns;
  const int8_t* b0 = w.block(col0 / kPackColumns);
  const int8_t* b1 = two_n ? w.block(col0 / kPackColumns + 1) : b0;
  const int64_t acc_bytes = acc_stride * 4;
  int32_t* acc1 = acc + kTileRows * acc_stride;
  if (first) {
    t.template zero<0>();
    t.template zero<1>();
    t.template zero<2>();
    t.template zero<3>();
  } else {
    t.template load<0>(acc, acc_bytes);
    if (two_n) t.template load<1>(acc + kPackColumns, acc_bytes);
    if (two_m) t.template load<2>(acc1, acc_bytes);
    if (two_m && two_n) t.template load<3>(acc1 + kPackColumns, acc_bytes);
  }
  constexpr int64_t kBStep = kTileRows * kTileBytes;  // 16 groups of 16 columns x 4 depths
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t off = a.offset(s);
    t.template load<4>(a.a0 + off, a.stride0);
    t.template load<6>(b0 + s * kBStep, kTileBytes);
    t.template dpbusd<0, 4, 6>();
    if (two_n) {
      t.template load<7>(b1 + s * kBStep, kTileBytes);
      t.template dpbusd<1, 4, 7>();
    }
    if (two_m) {
      t.template load<5>(a.a1 + off, a.stride1);
      t.template dpbusd<2, 5, 6>();
      if (two_n) t.template dpbusd<3, 5, 7>();
    }
  }
  t.template store<0>(acc, acc_bytes);
  if (two_n) t.template store<1>(acc + kPackColumns, acc_bytes);
  if (two_m) t.template store<2>(acc1, acc_bytes);
  if (two_m && two_n) t.template store<3>(acc1 + kPackColumns, acc_bytes);
}

// The direct convolution: with implicit im2col rows, consecutive output pixels of one output row sit at one
// pixel stride in the padded image, so a TILELOADD at that stride reads 16 patches' runs in place (rows
// overlapping in memory), 64 bytes of a run per step; the weights' runs are padded to whole steps
// (args.w_runs64), so the bytes a step reads past its run meet zero weights. A tile starts at an output row
// and covers the rows after it at the same stride (at most 16); its other rows read whatever follows (within
// args.a_readable) and are never written out. No strip is packed: for 3x3 convolutions over 16-32 channels
// the packing took longer than the tiles (measured in docs/kernels.md).
struct DirectTile {
  int64_t row = 0, valid = 0, stride = 0;  // first output row, rows that are output rows, pixel stride
};

// The tiles of rows [0, m), or false when the GEMM is no implicit im2col with run-padded weights, a tile
// would read past a_readable, the tiles average fewer than kAmxMinDirectRows output rows (narrow images: each
// tile would mostly compute rows that are thrown away) or the runs are shorter than kAmxMinDirectRun bytes (a
// 64-byte step would mostly multiply zeros). Measured on 3x3 convolutions at 28x28, 16 output channels, 1
// thread, against the VNNI loops: runs of 12 bytes (3-4 channels) 0.7x, 24 bytes (8 channels) 0.98-1.17x, 48
// bytes (16 channels) 1.6-1.9x.
inline constexpr int64_t kAmxMinDirectRows = 8;
inline constexpr int64_t kAmxMinDirectRun = 24;
inline bool direct_tiles(const GemmArgs& args, std::vector<DirectTile>& tiles) {
  const int64_t* r = args.a_rows;
  if (!r || !args.w_runs64 || args.w->k / args.a_segments < kAmxMinDirectRun) return false;
  const int64_t steps_per_run = runs64_bytes(args.w->k / args.a_segments) / kTileBytes;
  const int64_t reach = (args.a_segments - 1) * args.a_segment_stride + steps_per_run * kTileBytes;
  tiles.clear();
  for (int64_t m = 0; m < args.m;) {
    DirectTile t;
    t.row = m;
    t.valid = 1;
    t.stride = m + 1 < args.m && r[m + 1] > r[m] ? r[m + 1] - r[m] : kTileBytes;
    while (t.valid < kTileRows && m + t.valid < args.m && r[m + t.valid] - r[m + t.valid - 1] == t.stride)
      ++t.valid;
    if (r[m] + (kTileRows - 1) * t.stride + reach > args.a_readable) return false;
    tiles.push_back(t);
    m += t.valid;
  }
  return static_cast<int64_t>(tiles.size()) * kAmxMinDirectRows <= args.m;
}

// Output columns [n_begin, n_end) over the direct tiles, two tiles (32 rows) x a column pair per block, the
// whole depth at once; each block's valid rows go to the epilogue.
template <class Tiles>
void amx_direct(Tiles& t, const GemmArgs& args, const std::vector<DirectTile>& tiles, int64_t n_begin,
                int64_t n_end) {
  const PackedWeights& w = *args.w_runs64;
  const int64_t steps_per_run = runs64_bytes(w.k / args.a_segments) / kTileBytes;
  const int64_t steps = args.a_segments * steps_per_run;
  thread_local std::vector<int64_t> offsets;
  offsets.resize(static_cast<size_t>(steps));
  for (int64_t s = 0; s < steps; ++s)
    offsets[static_cast<size_t>(s)] =
        s / steps_per_run * args.a_segment_stride + s % steps_per_run * kTileBytes;
  constexpr int64_t kAccStride = 2 * kPackColumns, kAccValues = 2 * kTileRows * kAccStride;
  // Two accumulator buffers: a block's epilogue runs after the next block's tiles are issued, so its loads
  // do not wait right behind the TILESTOREDs that wrote them.
  auto* accs = reinterpret_cast<int32_t*>(scratch_int16(static_cast<size_t>(2 * kAccValues * 2)));
  struct Pending {
    const DirectTile* t0 = nullptr;
    const DirectTile* t1 = nullptr;
    int64_t col0 = 0, cols = 0;
    const int32_t* acc = nullptr;
  } pending;
  auto finish = [&](const Pending& p) {
    if (!p.t0) return;
    t.epilogue(args, p.t0->row, p.t0->valid, p.col0, p.cols, p.acc, kAccStride);
    if (p.t1)
      t.epilogue(args, p.t1->row, p.t1->valid, p.col0, p.cols, p.acc + kTileRows * kAccStride, kAccStride);
  };
  int64_t block = 0;
  const int64_t panel = kAmxPanelBytes / (steps * kTileBytes) / (2 * kPackColumns) * (2 * kPackColumns);
  const int64_t panel_cols = panel < 2 * kPackColumns ? 2 * kPackColumns : panel;
  TileShape<Tiles> shape{t};
  for (int64_t p0 = n_begin; p0 < n_end; p0 += panel_cols) {
    const int64_t p1 = n_end - p0 < panel_cols ? n_end : p0 + panel_cols;
    for (size_t i = 0; i < tiles.size(); i += 2) {
      const DirectTile& t0 = tiles[i];
      const DirectTile* t1 = i + 1 < tiles.size() ? &tiles[i + 1] : nullptr;
      ASource a;
      a.a0 = args.a + args.a_rows[t0.row];
      a.stride0 = t0.stride;
      a.a1 = t1 ? args.a + args.a_rows[t1->row] : a.a0;
      a.stride1 = t1 ? t1->stride : t0.stride;
      a.step_offsets = offsets.data();
      for (int64_t col0 = p0; col0 < p1; col0 += 2 * kPackColumns) {
        const int64_t cols = p1 - col0 < 2 * kPackColumns ? p1 - col0 : 2 * kPackColumns;
        int32_t* acc = accs + (block++ & 1) * kAccValues;
        shape.set(t0.valid, t1 ? t1->valid : 0);
        amx_block(t, w, t1 ? 2 * kTileRows : kTileRows, col0, cols, a, 0, steps, true, acc, kAccStride);
        finish(pending);
        pending = {&t0, t1, col0, cols, acc};
      }
    }
  }
  finish(pending);
  t.release();
}

// Output columns [n_begin, n_end) (n_begin a multiple of 16) for all rows, dense packed weights: column
// panels (kAmxPanelBytes of weights), row strips of 32 within a panel, depth passes within a strip (one
// unless the strip is deeper than kAmxStripBytes), column pairs within a pass, each pair's epilogue after
// its last pass.
// `direct`: the direct convolution's tiles when it runs (direct_tiles said yes), else null.
template <class Tiles>
void amx_gemm(Tiles& t, const GemmArgs& args, int64_t n_begin, int64_t n_end,
              const std::vector<DirectTile>* direct) {
  if (direct) return amx_direct(t, args, *direct, n_begin, n_end);
  const PackedWeights& w = *args.w;
  const int64_t kp = (w.k + kTileBytes - 1) / kTileBytes * kTileBytes, steps = kp / kTileBytes;
  int64_t panel = kAmxPanelBytes / kp / (2 * kPackColumns) * (2 * kPackColumns);
  if (panel < 2 * kPackColumns) panel = 2 * kPackColumns;
  if (panel > n_end - n_begin)
    panel = (n_end - n_begin + 2 * kPackColumns - 1) / (2 * kPackColumns) * 2 * kPackColumns;
  const int64_t strip_rows = args.m > kTileRows ? 2 * kTileRows : kTileRows;
  const int64_t step_block = strip_rows * kp <= kAmxStripBytes ? steps : kAmxKBlock / kTileBytes;
  const bool passes = step_block < steps;
  // One pass: each pair's 32 x 32 accumulators; several: the strip's accumulators over the panel. Both
  // buffers in the thread's scratch, the A strip first (a multiple of 64 bytes, so acc stays aligned).
  const int64_t acc_stride = passes ? panel : 2 * kPackColumns;
  const int64_t strip_bytes = 2 * kTileRows * kp, acc_bytes = 2 * kTileRows * acc_stride * 4;
  auto* strip = reinterpret_cast<uint8_t*>(scratch_int16(static_cast<size_t>((strip_bytes + acc_bytes) / 2)));
  auto* acc = reinterpret_cast<int32_t*>(strip + strip_bytes);
  // In place: a plain A whose rows are whole 64-byte steps.
  const bool in_place = !args.a_rows && w.k == kp;
  TileShape<Tiles> shape{t};
  for (int64_t p0 = n_begin; p0 < n_end; p0 += panel) {
    const int64_t p1 = n_end - p0 < panel ? n_end : p0 + panel;
    for (int64_t row0 = 0; row0 < args.m; row0 += 2 * kTileRows) {
      const int64_t rows = args.m - row0 < 2 * kTileRows ? args.m - row0 : 2 * kTileRows;
      shape.strip(rows);
      const uint8_t* a = strip;
      int64_t a_stride = kp;
      if (in_place) {  // the tiles read the strip's rows only
        a = args.a + row0 * args.lda;
        a_stride = args.lda;
      } else {
        t.pack(args, row0, rows, kp, strip);
      }
      for (int64_t s0 = 0; s0 < steps; s0 += step_block) {
        const int64_t s1 = steps - s0 < step_block ? steps : s0 + step_block;
        for (int64_t col0 = p0; col0 < p1; col0 += 2 * kPackColumns) {
          const int64_t cols = p1 - col0 < 2 * kPackColumns ? p1 - col0 : 2 * kPackColumns;
          int32_t* pair_acc = passes ? acc + (col0 - p0) : acc;
          ASource source;
          source.a0 = a;
          source.stride0 = source.stride1 = a_stride;
          source.a1 = a + kTileRows * a_stride;
          amx_block(t, w, rows, col0, cols, source, s0, s1, s0 == 0, pair_acc, acc_stride);
          if (s1 == steps) t.epilogue(args, row0, rows, col0, cols, pair_acc, acc_stride);
        }
      }
    }
  }
  t.release();
}

}  // namespace
}  // namespace mighty::kernels
