// The fp32 GEMM: every path the CPU has equals the scalar path bit for bit (one fused multiply-add per
// product, in k order, from the bias), and the scalar path equals a double-precision sum within fp32
// rounding. Shapes with rows and columns that are and are not multiples of the register tiles, strides wider
// than the matrices, each bias kind, with and without the fused ReLU and B's rows at given offsets (implicit
// im2col); A, B and C end at a guard page.
#include <algorithm>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "guarded_buffer.h"
#include "kernels/sgemm.h"
#include "kernels/thread_pool.h"

using namespace mighty::kernels;
using mighty::testing::GuardedBuffer;

namespace {

// C = A x B of m x n over k, A and B row-major at their row strides (the rest of the arguments as given
// later).
SgemmArgs product(const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb) {
  SgemmArgs p;
  p.a = a;
  p.b = b;
  p.m = m;
  p.n = n;
  p.k = k;
  p.lda = lda;
  p.ldb = ldb;
  return p;
}

}  // namespace

TEST_CASE("sgemm: every path equals the scalar path, bit for bit") {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  ThreadPool pool2(2);
  const int64_t shapes[][3] = {{1, 1, 1},    {1, 17, 9},     {3, 5, 40},     {6, 48, 12},
                               {7, 49, 33},  {8, 16, 144},   {16, 784, 144}, {9, 100, 1},
                               {13, 31, 64}, {32, 200, 288}, {2, 1000, 7}};
  for (const auto& s : shapes) {
    // none, per row, per column, accumulating into C; the same with B's rows at shuffled offsets and ReLU
    for (int mode = 0; mode < 8; ++mode) {
      const int bias = mode % 4;
      const bool offsets = mode >= 4;
      const int64_t m = s[0], n = s[1], k = s[2];
      const int64_t lda = k + static_cast<int64_t>(rng() % 3), ldb = n + static_cast<int64_t>(rng() % 5);
      const int64_t ldc = n + static_cast<int64_t>(rng() % 4);
      // Each buffer ends right after the last element a kernel may touch.
      GuardedBuffer<float> a(static_cast<size_t>((m - 1) * lda + k)),
          b(static_cast<size_t>((k - 1) * ldb + n));
      for (size_t i = 0; i < a.size(); ++i) a[i] = u(rng);
      for (size_t i = 0; i < b.size(); ++i) b[i] = u(rng);
      std::vector<float> row_bias(static_cast<size_t>(m)), col_bias(static_cast<size_t>(n));
      for (auto& v : row_bias) v = u(rng);
      for (auto& v : col_bias) v = u(rng);
      SgemmArgs p = product(a.data(), b.data(), m, n, k, lda, ldb);
      p.ldc = ldc;
      if (bias == 1) p.row_bias = row_bias.data();
      if (bias == 2) p.col_bias = col_bias.data();
      p.accumulate = bias == 3;
      std::vector<int64_t> rows(static_cast<size_t>(k));
      for (int64_t i = 0; i < k; ++i) rows[static_cast<size_t>(i)] = i * ldb;
      if (offsets) {
        std::shuffle(rows.begin(), rows.end(), rng);
        p.b_rows = rows.data();
        p.relu = true;
      }
      GuardedBuffer<float> expected(static_cast<size_t>((m - 1) * ldc + n)), start(expected.size());
      for (size_t i = 0; i < start.size(); ++i) start[i] = u(rng);
      std::memcpy(expected.data(), start.data(), start.size() * 4);
      p.c = expected.data();
      sgemm(p, Isa::kRef, nullptr);
      // Against a double-precision sum: within the rounding of k fused steps.
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = 0; c < n; ++c) {
          double sum = bias == 1   ? row_bias[r]
                       : bias == 2 ? col_bias[c]
                       : bias == 3 ? start[r * ldc + c]
                                   : 0.0;
          double mag = std::fabs(sum);
          for (int64_t i = 0; i < k; ++i) {
            const double prod = static_cast<double>(a[r * lda + i]) * b[rows[static_cast<size_t>(i)] + c];
            sum += prod;
            mag += std::fabs(prod);
          }
          if (p.relu) sum = std::max(sum, 0.0);
          REQUIRE(std::fabs(expected[r * ldc + c] - sum) <= 1e-6 * (k + 1) * mag + 1e-30);
        }
      for (Isa isa : kAllIsas) {
        if (isa == Isa::kRef || !cpu_features().supports(isa)) continue;
        for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
          GuardedBuffer<float> c(expected.size());
          for (size_t i = 0; i < c.size(); ++i) c[i] = -7.0f;  // the gaps between rows stay as they are
          if (bias == 3)
            for (int64_t r = 0; r < m; ++r)
              std::memcpy(c.data() + r * ldc, start.data() + r * ldc, static_cast<size_t>(n) * 4);
          p.c = c.data();
          sgemm(p, isa, pool);
          INFO("path " << isa_name(isa) << " m " << m << " n " << n << " k " << k << " bias " << bias
                       << " offsets and relu " << offsets);
          for (int64_t r = 0; r < m; ++r) {
            REQUIRE(std::memcmp(c.data() + r * ldc, expected.data() + r * ldc, static_cast<size_t>(n) * 4) ==
                    0);
            for (int64_t col = n; col < ldc && r + 1 < m; ++col) REQUIRE(c[r * ldc + col] == -7.0f);
          }
        }
      }
    }
  }
}

// Values where computing fma(a, b, c) as double then float rounds twice wrongly: a * b + c = 1 + 2^-24 +
// 2^-60 exactly, which rounds to the float midpoint 1 + 2^-24 in double and then to 1.0 (ties to even), while
// one rounding gives 1 + 2^-23. The WebAssembly path computes in double and must catch this case; subnormal
// results and infinities as well.
TEST_CASE("sgemm: the double-rounding traps of an fma computed in double") {
  const float a_mid = 1.0f + 0x1p-12f, b_mid = (1.0f - 4095 * 0x1p-24f) * 0x1p-24f;
  REQUIRE(std::fma(a_mid, b_mid, 1.0f) == 0x1.000002p+0f);
  REQUIRE(static_cast<float>(static_cast<double>(a_mid) * b_mid + 1.0) == 1.0f);  // the trap
  // Row r: bias[r] + a[r] * b[j] for the columns j: a midpoint, subnormal results, overflow to infinity.
  const std::vector<float> a = {a_mid, 0x1p-100f, 0x1p100f, -1.5f};
  const std::vector<float> b = {b_mid, 0x1.8p-30f, 0x1p30f, 3.0f, -0x1p-149f};
  const std::vector<float> bias = {1.0f, 0x1p-127f, 0x1.fffffep127f, -0.0f};
  const int64_t m = 4, n = 5;
  std::vector<float> want(static_cast<size_t>(m * n)), got(want.size());
  SgemmArgs p;
  p.a = a.data();
  p.b = b.data();
  p.m = m;
  p.n = n;
  p.k = 1;
  p.lda = 1;
  p.ldb = p.ldc = n;
  p.row_bias = bias.data();
  p.c = want.data();
  sgemm(p, Isa::kRef, nullptr);
  REQUIRE(want[0] == 0x1.000002p+0f);
  for (Isa isa : kAllIsas) {
    if (isa == Isa::kRef || !cpu_features().supports(isa)) continue;
    p.c = got.data();
    sgemm(p, isa, nullptr);
    INFO("path " << isa_name(isa));
    REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
  }
}

// Grid columns (SgemmArgs::c_pitch, a convolution's output over its padded rows): of each run of c_pitch
// columns the first c_keep are stored packed in C, the others dropped. Every path equals the scalar one bit
// for bit, the scalar path equals the plain GEMM's kept columns, and nothing past a row's kept columns or
// between C's rows is written; pitches narrower and wider than a vector, one kept column or all but one.
TEST_CASE("sgemm: grid columns stored packed, every path equal to the scalar one") {
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  ThreadPool pool2(2);
  const int64_t cases[][5] = {// m, grid rows, pitch, keep, k
                              {16, 28, 29, 28, 144}, {32, 14, 15, 14, 288}, {7, 5, 3, 1, 9},
                              {9, 4, 17, 16, 5},     {8, 3, 40, 33, 12},    {5, 11, 16, 15, 1},
                              {13, 2, 6, 6, 30},     {3, 20, 31, 2, 7}};
  for (const auto& cs : cases) {
    const int64_t m = cs[0], grid_rows = cs[1], pitch = cs[2], keep = cs[3], k = cs[4];
    const int64_t n = (grid_rows - 1) * pitch + keep, kept = grid_rows * keep;
    const int64_t lda = k + 1, ldb = n + 3, ldc = kept + static_cast<int64_t>(rng() % 4);
    GuardedBuffer<float> a(static_cast<size_t>((m - 1) * lda + k)), b(static_cast<size_t>((k - 1) * ldb + n));
    for (size_t i = 0; i < a.size(); ++i) a[i] = u(rng);
    for (size_t i = 0; i < b.size(); ++i) b[i] = u(rng);
    std::vector<float> bias(static_cast<size_t>(m));
    for (auto& v : bias) v = u(rng);
    SgemmArgs p = product(a.data(), b.data(), m, n, k, lda, ldb);
    p.row_bias = bias.data();
    p.relu = pitch % 2 == 1;
    // The plain GEMM of every grid column, for the kept ones.
    std::vector<float> full(static_cast<size_t>(m * n));
    p.c = full.data();
    p.ldc = n;
    sgemm(p, Isa::kRef, nullptr);
    p.c_pitch = pitch;
    p.c_keep = keep;
    p.ldc = ldc;
    GuardedBuffer<float> expected(static_cast<size_t>((m - 1) * ldc + kept));
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = -7.0f;
    p.c = expected.data();
    sgemm(p, Isa::kRef, nullptr);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t q = 0; q < n; ++q)
        if (q % pitch < keep) REQUIRE(expected[r * ldc + q / pitch * keep + q % pitch] == full[r * n + q]);
      for (int64_t col = kept; col < ldc && r + 1 < m; ++col) REQUIRE(expected[r * ldc + col] == -7.0f);
    }
    for (Isa isa : kAllIsas) {
      if (isa == Isa::kRef || !cpu_features().supports(isa)) continue;
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
        GuardedBuffer<float> c(expected.size());
        for (size_t i = 0; i < c.size(); ++i) c[i] = -7.0f;
        p.c = c.data();
        sgemm(p, isa, pool);
        INFO("path " << isa_name(isa) << " m " << m << " pitch " << pitch << " keep " << keep << " k " << k);
        REQUIRE(std::memcmp(c.data(), expected.data(), c.size() * sizeof(float)) == 0);
      }
    }
  }
}
