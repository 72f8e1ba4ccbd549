// fp32 GEMM on WebAssembly SIMD128 (sgemm.h, sgemm_simd.h), bit-identical to sgemm_ref. wasm has no fused
// multiply-add, and ref's std::fma is a software fmaf there (about 600x slower than x86's FMA). Here each
// lane's fma(a, b, c) is computed in double: a * b is exact in double (24 + 24 bits of significand), s = a *
// b
// + c is rounded once to double, and converting s to float is then the correctly rounded fma except where
// that second rounding can differ from one rounding of the exact sum: when s lies exactly halfway between two
// floats (its 29 bits below float precision are 1000...0), when s is in float's subnormal range (rounded at a
// coarser bit), and for NaN. Vectors with such a lane (rare) take std::fma for their four lanes. Accumulators
// hold float values as doubles (exact), 4 lanes in two f64x2 halves; tiles of 2 rows x 2 vectors.
#include <wasm_simd128.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/sgemm.h"
#include "kernels/sgemm_simd.h"

namespace mighty::kernels {
namespace {

struct Quad {
  v128_t lo, hi;  // lanes 0-1 and 2-3 as doubles
};

inline Quad widen(v128_t f) {
  return {wasm_f64x2_promote_low_f32x4(f),
          wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(f, f, 2, 3, 0, 1))};
}

inline v128_t narrow(const Quad& q) {
  return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(q.lo), wasm_f32x4_demote_f64x2_zero(q.hi), 0, 1, 4,
                            5);
}

// Lanes of s (doubles) whose rounding to float may differ from a single rounding of the exact value: a float
// midpoint, the float subnormal range (nonzero, below 2^-126) or NaN.
inline v128_t unsafe(v128_t s) {
  const v128_t midpoint =
      wasm_i64x2_eq(wasm_v128_and(s, wasm_i64x2_splat(0x1fffffff)), wasm_i64x2_splat(0x10000000));
  const v128_t a = wasm_f64x2_abs(s);
  const v128_t tiny =
      wasm_v128_and(wasm_f64x2_lt(a, wasm_f64x2_splat(0x1p-126)), wasm_f64x2_ne(s, wasm_f64x2_splat(0)));
  return wasm_v128_or(wasm_v128_or(midpoint, tiny), wasm_f64x2_ne(s, s));
}

struct Simd128 {
  using Reg = Quad;
  using Mask = int64_t;  // valid lanes
  static constexpr int64_t kLanes = 4;
  static constexpr int kRows = 2, kVectors = 2;
  static Reg zero() { return {wasm_f64x2_splat(0.0), wasm_f64x2_splat(0.0)}; }
  static Reg set1(float v) { return {wasm_f64x2_splat(v), wasm_f64x2_splat(v)}; }
  static Reg load(const float* p) { return widen(wasm_v128_load(p)); }
  static Reg load(const float* p, Mask n) {
    float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(float));
    return load(buf);
  }
  static Reg fma(Reg a, Reg b, Reg c) {
    const v128_t lo = wasm_f64x2_add(wasm_f64x2_mul(a.lo, b.lo), c.lo);
    const v128_t hi = wasm_f64x2_add(wasm_f64x2_mul(a.hi, b.hi), c.hi);
    if (!wasm_v128_any_true(wasm_v128_or(unsafe(lo), unsafe(hi)))) return widen(narrow({lo, hi}));
    float fa[4], fb[4], fc[4], out[4];
    wasm_v128_store(fa, narrow(a));
    wasm_v128_store(fb, narrow(b));
    wasm_v128_store(fc, narrow(c));
    for (int i = 0; i < 4; ++i) out[i] = std::fma(fa[i], fb[i], fc[i]);
    return load(out);
  }
  static Reg max0(Reg v) {  // v > 0 ? v : +0, so NaN and -0 give +0 (as the ReLU op)
    const v128_t z = wasm_f64x2_splat(0.0);
    return {wasm_v128_bitselect(v.lo, z, wasm_f64x2_gt(v.lo, z)),
            wasm_v128_bitselect(v.hi, z, wasm_f64x2_gt(v.hi, z))};
  }
  static void store(float* p, Reg v) { wasm_v128_store(p, narrow(v)); }
  static void store(float* p, Reg v, Mask n) {
    float buf[4];
    store(buf, v);
    std::memcpy(p, buf, static_cast<size_t>(n) * sizeof(float));
  }
  static void store_kept(float* p, Reg v, uint32_t keep) {
    float buf[4];
    store(buf, v);
    for (int i = 0; i < 4; ++i)
      if (keep >> i & 1u) *p++ = buf[i];
  }
  static Mask mask(int64_t valid) { return valid; }
};

}  // namespace

void sgemm_wasm(const SgemmArgs& args, int64_t n_begin, int64_t n_end) {
  sgemm_simd::run<Simd128>(args, n_begin, n_end);
}

}  // namespace mighty::kernels
