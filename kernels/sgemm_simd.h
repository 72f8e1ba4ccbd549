// The fp32 GEMM's SIMD body (sgemm.h), shared by the AVX2 and AVX-512 translation units: each instantiates it
// with its own vector traits. Include it only from a file compiled for AVX2 + FMA or better.
//
// Register tiles of MR rows x NV vectors of columns: per k, NV loads of B's row k, MR broadcasts of A[r][k]
// and MR x NV fused multiply-adds into the accumulators, which start from the bias. Only the last vector of a
// row's columns is masked. Rows past the last whole tile take a tile of their own height.
//
// V: kLanes, kRows (MR), kVectors (NV), Reg, Mask, zero(), set1(float), load(const float*),
// load(const float*, Mask), fma(a, b, c) = a * b + c rounded once, max0(v) = v > 0 ? v : 0 per lane (NaN
// -> 0), store(float*, Reg),
// store(float*, Reg, Mask), mask(int64_t valid lanes), store_kept(float* p, Reg v, uint32_t keep) = the lanes
// of v whose bit is set in keep, in order, to p[0], p[1], ... (nothing else written).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/sgemm.h"

namespace mighty::kernels::sgemm_simd {

// For grid columns (SgemmArgs::c_pitch): which lanes of each of NV vectors from grid column col0 are kept
// (the last vector has last_lanes lanes) and the C column the first kept one goes to. The kept columns of a
// run of grid columns are consecutive in C, so each vector's kept lanes are stored packed from there.
template <class V, int NV>
inline void kept_lanes(const SgemmArgs& p, int64_t col0, int last_lanes, uint32_t (&keep)[NV],
                       int64_t (&at)[NV]) {
  int64_t y = col0 / p.c_pitch, x = col0 % p.c_pitch;
  for (int v = 0; v < NV; ++v) {
    const int lanes = v + 1 == NV ? last_lanes : static_cast<int>(V::kLanes);
    at[v] = y * p.c_keep + std::min(x, p.c_keep);
    uint32_t bits = 0;
    for (int i = 0; i < lanes;) {
      const int run = static_cast<int>(std::min<int64_t>(lanes - i, p.c_pitch - x));
      const int kept = static_cast<int>(std::clamp<int64_t>(p.c_keep - x, 0, run));
      bits |= ((1u << kept) - 1) << i;
      i += run;
      x += run;
      if (x == p.c_pitch) x = 0, ++y;
    }
    keep[v] = bits;
  }
}

// acc += the products of rows [row0, row0 + R) of A and the tile's columns of B, in k order. The sums are
// kept in a local array for the loop: with `acc` itself (an array whose address the caller's stores take),
// clang kept the accumulators in registers but also stored all of them to the stack on every k step.
template <class V, int R, int NV, bool kRowOffsets>
inline void products_loop(const SgemmArgs& p, int64_t row0, int64_t col0, typename V::Mask last,
                          typename V::Reg (&acc)[R][NV]) {
  using Reg = typename V::Reg;
  Reg sum[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) sum[r][v] = acc[r][v];
  const float* a = p.a + row0 * p.lda;
  const float* b = p.b + col0;
  for (int64_t kk = 0; kk < p.k; ++kk) {
    const float* brow = kRowOffsets ? p.b + p.b_rows[kk] + col0 : b + kk * p.ldb;
    Reg bv[NV];
    for (int v = 0; v + 1 < NV; ++v) bv[v] = V::load(brow + v * V::kLanes);
    bv[NV - 1] = V::load(brow + (NV - 1) * V::kLanes, last);
    for (int r = 0; r < R; ++r) {
      const Reg av = V::set1(a[r * p.lda + kk]);
      for (int v = 0; v < NV; ++v) sum[r][v] = V::fma(av, bv[v], sum[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = sum[r][v];
}

template <class V, int R, int NV>
inline void products(const SgemmArgs& p, int64_t row0, int64_t col0, typename V::Mask last,
                     typename V::Reg (&acc)[R][NV]) {
  if (p.b_rows)
    products_loop<V, R, NV, true>(p, row0, col0, last, acc);
  else
    products_loop<V, R, NV, false>(p, row0, col0, last, acc);
}

// Rows [row0, row0 + R) x columns [col0, col0 + NV * kLanes), the last vector holding the lanes of `last`
// (last_lanes of them).
template <class V, int R, int NV>
inline void tile(const SgemmArgs& p, int64_t row0, int64_t col0, typename V::Mask last, int last_lanes) {
  using Reg = typename V::Reg;
  Reg acc[R][NV];
  if (p.accumulate) {
    for (int r = 0; r < R; ++r) {
      const float* c = p.c + (row0 + r) * p.ldc + col0;
      for (int v = 0; v + 1 < NV; ++v) acc[r][v] = V::load(c + v * V::kLanes);
      acc[r][NV - 1] = V::load(c + (NV - 1) * V::kLanes, last);
    }
  } else {
    for (int v = 0; v < NV; ++v) {
      const Reg cb = !p.col_bias   ? V::zero()
                     : v + 1 == NV ? V::load(p.col_bias + col0 + v * V::kLanes, last)
                                   : V::load(p.col_bias + col0 + v * V::kLanes);
      for (int r = 0; r < R; ++r) acc[r][v] = p.row_bias ? V::set1(p.row_bias[row0 + r]) : cb;
    }
  }
  products<V, R, NV>(p, row0, col0, last, acc);
  if (p.relu)
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = V::max0(acc[r][v]);
  if (p.c_pitch > 0) {
    uint32_t keep[NV];
    int64_t at[NV];
    kept_lanes<V, NV>(p, col0, last_lanes, keep, at);
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) V::store_kept(p.c + (row0 + r) * p.ldc + at[v], acc[r][v], keep[v]);
    return;
  }
  for (int r = 0; r < R; ++r) {
    float* c = p.c + (row0 + r) * p.ldc + col0;
    for (int v = 0; v + 1 < NV; ++v) V::store(c + v * V::kLanes, acc[r][v]);
    V::store(c + (NV - 1) * V::kLanes, acc[r][NV - 1], last);
  }
}

// tile<V, R, nv> for a run-time nv in [1, NV].
template <class V, int R, int NV>
inline void tile_nv(int nv, const SgemmArgs& p, int64_t row0, int64_t col0, typename V::Mask last,
                    int last_lanes) {
  if constexpr (NV > 1) {
    if (nv < NV) return tile_nv<V, R, NV - 1>(nv, p, row0, col0, last, last_lanes);
  }
  tile<V, R, NV>(p, row0, col0, last, last_lanes);
}

template <class V, int R>
inline void strip(const SgemmArgs& p, int64_t row0, int64_t n_begin, int64_t n_end) {
  constexpr int64_t kBlock = V::kVectors * V::kLanes;
  for (int64_t col = n_begin; col < n_end; col += kBlock) {
    const int64_t cols = n_end - col < kBlock ? n_end - col : kBlock;
    const int nv = static_cast<int>((cols + V::kLanes - 1) / V::kLanes);
    const int last_lanes = static_cast<int>(cols - (nv - 1) * V::kLanes);
    tile_nv<V, R, V::kVectors>(nv, p, row0, col, V::mask(last_lanes), last_lanes);
  }
}

// The rows after the whole tiles: a tile of exactly their height.
template <class V, int R>
inline void rest_rows(const SgemmArgs& p, int64_t row0, int rows, int64_t n_begin, int64_t n_end) {
  if constexpr (R > 0) {
    if (rows == R) return strip<V, R>(p, row0, n_begin, n_end);
    rest_rows<V, R - 1>(p, row0, rows, n_begin, n_end);
  }
}

template <class V>
void run(const SgemmArgs& p, int64_t n_begin, int64_t n_end) {
  int64_t row = 0;
  for (; row + V::kRows <= p.m; row += V::kRows) strip<V, V::kRows>(p, row, n_begin, n_end);
  if (row < p.m) rest_rows<V, V::kRows - 1>(p, row, static_cast<int>(p.m - row), n_begin, n_end);
}

}  // namespace mighty::kernels::sgemm_simd
