// Every optimized GEMM path against the scalar reference with exact (==) comparison, and the reference
// against an independent computation from the unpacked weights.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "guarded_buffer.h"
#include "kernels/gemm.h"
#include "kernels/requantize.h"
#include "kernels/thread_pool.h"

using namespace mighty::kernels;
using mighty::testing::GuardedBuffer;

namespace {

uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("MIGHTY_TEST_SEED");
    const uint64_t s = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::cout << "gemm tests: seed " << s << " (MIGHTY_TEST_SEED=" << s << " repeats this run)\n";
    return s;
  }();
  return seed;
}

std::vector<Isa> optimized_paths() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx, Isa::kNeon, Isa::kDotprod, Isa::kI8mm}) {
    if (cpu_features().supports(isa)) {
      out.push_back(isa);
    } else {
      static bool said[8] = {};
      if (!said[static_cast<int>(isa)]) {
        std::cout << "gemm tests: SKIPPING path " << isa_name(isa) << ": this CPU lacks it\n";
        said[static_cast<int>(isa)] = true;
      }
    }
  }
  return out;
}

enum class Values { kRandom, kMaxPositive, kMaxNegative };

struct Case {
  int64_t m, n, k;
  int32_t zero_point;
  OutputKind kind;
  bool per_channel, per_row, with_bias;
  Values values = Values::kRandom;
  double zero_blocks = 0.0;  // fraction of [16 columns x 4 depths] weight blocks set to zero
};

struct Problem {
  Case c;
  int64_t lda, ldc;
  std::vector<int8_t> w;  // [n][k]
  GuardedBuffer<uint8_t> a;
  std::vector<int32_t> bias, row_zero_points;
  std::vector<float> multiplier, row_scale, fp_bias;
  PackedWeights packed;

  Problem(const Case& cs, std::mt19937_64& rng)
      : c(cs),
        lda(cs.k + (rng() % 3)),
        ldc(cs.n + (rng() % 3)),
        w(cs.n * cs.k),
        a(static_cast<size_t>((cs.m - 1) * lda + cs.k)) {
    for (auto& v : w) {
      v = c.values == Values::kMaxPositive   ? 127
          : c.values == Values::kMaxNegative ? -127
                                             : int8_t(rng() % 255 - 127);
    }
    for (size_t i = 0; i < a.size(); ++i) a[i] = c.values == Values::kRandom ? uint8_t(rng()) : 255;
    if (c.zero_blocks > 0) {
      for (int64_t b = 0; b < (c.n + 15) / 16; ++b) {
        for (int64_t g = 0; g < (c.k + 3) / 4; ++g) {
          if (static_cast<double>(rng() % 1000) >= 1000.0 * c.zero_blocks) continue;
          for (int64_t j = b * 16; j < std::min<int64_t>(c.n, b * 16 + 16); ++j)
            for (int64_t kk = g * 4; kk < std::min<int64_t>(c.k, g * 4 + 4); ++kk) w[j * c.k + kk] = 0;
        }
      }
    }
    packed = pack_weights(w.data(), c.n, c.k, c.k);
    for (int64_t j = 0; j < c.n; ++j) {
      bias.push_back(static_cast<int32_t>(rng() % 20001) - 10000);
      multiplier.push_back(std::ldexp(1.0f + float(rng() % 1000) / 1000.0f, -int(8 + rng() % 8)));
      fp_bias.push_back(float(int(rng() % 2001) - 1000) / 256.0f);
    }
    for (int64_t i = 0; i < c.m; ++i) {
      row_zero_points.push_back(static_cast<int32_t>(rng() % 256));
      row_scale.push_back(0.5f + float(rng() % 1000) / 500.0f);
    }
  }

  GemmArgs args(void* out) const {
    GemmArgs g;
    g.a = a.data();
    g.lda = lda;
    g.m = c.m;
    g.a_zero_point = c.zero_point;
    g.a_zero_points = c.per_row ? row_zero_points.data() : nullptr;
    g.w = &packed;
    g.epilogue.kind = c.kind;
    g.epilogue.bias = c.with_bias ? bias.data() : nullptr;
    g.epilogue.multiplier = multiplier.data();
    g.epilogue.per_channel = c.per_channel;
    g.epilogue.row_scale = c.per_row ? row_scale.data() : nullptr;
    g.epilogue.out_zero_point = 3 + c.zero_point % 100;
    g.epilogue.clamp_lo = c.zero_point % 2 ? g.epilogue.out_zero_point : 0;  // fused ReLU on odd zero points
    g.epilogue.clamp_hi = 255;
    g.epilogue.fp_bias = c.with_bias ? fp_bias.data() : nullptr;
    g.c = out;
    g.ldc = ldc;
    return g;
  }

  size_t out_bytes() const {
    const size_t elem = c.kind == OutputKind::kUint8 ? 1 : 4;
    return static_cast<size_t>((c.m - 1) * ldc + c.n) * elem;
  }
};

std::string describe(const Case& c) {
  return "M=" + std::to_string(c.m) + " N=" + std::to_string(c.n) + " K=" + std::to_string(c.k) +
         " za=" + std::to_string(c.zero_point) + " kind=" + std::to_string(static_cast<int>(c.kind)) +
         " per_channel=" + std::to_string(c.per_channel) + " per_row=" + std::to_string(c.per_row) +
         " bias=" + std::to_string(c.with_bias);
}

// The reference's raw int32 results against sums computed here from the unpacked weights.
void check_ref_against_naive(const Problem& p) {
  Case raw = p.c;
  GuardedBuffer<int32_t> out(static_cast<size_t>((p.c.m - 1) * p.ldc + p.c.n));
  GemmArgs g = p.args(out.data());
  g.epilogue.kind = OutputKind::kInt32;
  gemm_u8s8(g, Isa::kRef, nullptr);
  for (int64_t i = 0; i < p.c.m; ++i) {
    const int32_t za = p.c.per_row ? p.row_zero_points[i] : p.c.zero_point;
    for (int64_t j = 0; j < p.c.n; ++j) {
      int64_t sum = 0;
      for (int64_t kk = 0; kk < p.c.k; ++kk) sum += (int64_t(p.a[i * p.lda + kk]) - za) * p.w[j * p.c.k + kk];
      if (p.c.with_bias) sum += p.bias[j];
      if (out[i * p.ldc + j] != sum) {
        FAIL("ref differs from the naive sum at row " << i << " col " << j << ": " << out[i * p.ldc + j]
                                                      << " vs " << sum << " (" << describe(raw) << ")");
      }
    }
  }
}

// Runs every optimized path (1 and 2 threads) and compares the output bytes with the reference's.
void check_paths(const Problem& p, ThreadPool& pool2) {
  const size_t bytes = p.out_bytes();
  GuardedBuffer<uint8_t> expected(bytes);
  std::memset(expected.data(), 0xab, bytes);
  gemm_u8s8(p.args(expected.data()), Isa::kRef, nullptr);
  for (Isa isa : optimized_paths()) {
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &pool2}) {
      GuardedBuffer<uint8_t> got(bytes);
      std::memset(got.data(), 0xab, bytes);  // untouched padding between rows must match too
      gemm_u8s8(p.args(got.data()), isa, pool);
      if (std::memcmp(got.data(), expected.data(), bytes) != 0) {
        size_t first = 0;
        while (got[first] == expected[first]) ++first;
        const size_t elem = p.c.kind == OutputKind::kUint8 ? 1 : 4;
        const int64_t index = static_cast<int64_t>(first / elem);
        FAIL("path " << isa_name(isa) << " (" << (pool ? 2 : 1) << " threads) differs from ref at row "
                     << index / p.ldc << " col " << index % p.ldc << " (" << describe(p.c) << ")");
      }
    }
  }
  // The AMX blocking over the scalar tile model, on every machine: all columns at once, and in two column
  // ranges split at a multiple of 16 as two threads would run them.
  for (int split : {0, 1}) {
    GuardedBuffer<uint8_t> got(bytes);
    std::memset(got.data(), 0xab, bytes);
    const GemmArgs args = p.args(got.data());
    const int64_t half = (p.c.n / 2 + 15) / 16 * 16;
    if (split && half > 0 && half < p.c.n) {
      gemm_amx_model(args, 0, half);
      gemm_amx_model(args, half, p.c.n);
    } else {
      gemm_amx_model(args, 0, p.c.n);
    }
    if (std::memcmp(got.data(), expected.data(), bytes) != 0)
      FAIL("the AMX tile model (" << (split ? "two column ranges" : "one range") << ") differs from ref ("
                                  << describe(p.c) << ")");
  }
}

Case random_case(std::mt19937_64& rng) {
  static const int32_t zps[] = {0, 1, 127, 128, 255};
  Case c;
  c.m = 1 + rng() % (rng() % 4 == 0 ? 70 : 9);
  c.n = 1 + rng() % (rng() % 3 == 0 ? 300 : 40);
  c.k = 1 + rng() % (rng() % 3 == 0 ? 600 : 70);
  c.zero_point = zps[rng() % 5];
  c.kind = static_cast<OutputKind>(rng() % 3);
  c.per_channel = rng() & 1;
  c.per_row = rng() % 4 == 0;
  c.with_bias = rng() & 1;
  return c;
}

}  // namespace

TEST_CASE("gemm: packing and column sums") {
  const int8_t w[3 * 5] = {1, -2, 3, -4, 5, 6, 7, 8, 9, 10, -127, 127, 0, 0, 1};
  const PackedWeights p = pack_weights(w, 3, 5, 5);
  REQUIRE(p.n_padded == 16);
  REQUIRE(p.k_padded == 8);
  REQUIRE(p.column_sums[0] == 3);
  REQUIRE(p.column_sums[2] == 1);
  REQUIRE(p.column_sums[3] == 0);
  REQUIRE(reinterpret_cast<uintptr_t>(p.data.get()) % 64 == 0);
  const int8_t* b = p.block(0);
  REQUIRE(b[1 * 4 + 2] == 8);           // column 1, k = 2
  REQUIRE(b[16 * 4 + 0 * 4 + 0] == 5);  // column 0, k = 4 (second group)
  REQUIRE(b[16 * 4 + 0 * 4 + 1] == 0);  // padding
  REQUIRE(p.block_stride == 16 * 64);   // depth padded to one AMX tile step
  for (int64_t i = 16 * 8; i < p.block_stride; ++i) REQUIRE(b[i] == 0);

  // Blocks 4 KiB apart would alias in L1: the stride gets 64 bytes of padding.
  std::vector<int8_t> w2(32 * 256);
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<int8_t>(i % 101);
  const PackedWeights q = pack_weights(w2.data(), 32, 256, 256);
  REQUIRE(q.block_stride == 16 * 256 + 64);
  REQUIRE(q.block(1) - q.block(0) == 16 * 256 + 64);
  REQUIRE(pack_weights(w2.data(), 32, 65, 256).block_stride == 16 * 128);
  REQUIRE(q.block(1)[0] == w2[16 * 256]);  // column 16, k = 0
}

TEST_CASE("gemm: requantization rounds half to even and clamps") {
  REQUIRE(requantize_value(5, 0.5f, 0, 0, 255) == 2);  // 2.5 -> 2
  REQUIRE(requantize_value(7, 0.5f, 0, 0, 255) == 4);  // 3.5 -> 4
  REQUIRE(requantize_value(-7, 0.5f, 10, 0, 255) == 6);
  REQUIRE(requantize_value(1 << 30, 1.0f, 3, 0, 255) == 255);
  REQUIRE(requantize_value(-(1 << 30), 1.0f, 3, 3, 255) == 3);  // fused ReLU
}

TEST_CASE("gemm: edge shapes: every path equals ref") {
  const uint64_t seed = test_seed();
  std::mt19937_64 rng(seed);
  ThreadPool pool2(2);
  const int64_t small_k[] = {1, 2, 3, 4, 5, 63, 64, 65};
  const int64_t large_k[] = {255, 256, 257, 4099};
  const int64_t some[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33};
  static const int32_t zps[] = {0, 1, 127, 128, 255};
  int cases = 0;
  for (int64_t k : small_k) {
    for (int64_t m = 1; m <= 33; ++m) {
      for (int64_t n = 1; n <= 33; ++n) {
        Case c{m,
               n,
               k,
               zps[(m + n + k) % 5],
               static_cast<OutputKind>((m * 7 + n) % 3),
               bool(n & 1),
               (m + n) % 5 == 0,
               bool(m & 1)};
        Problem p(c, rng);
        if ((m * 33 + n) % 7 == 0) check_ref_against_naive(p);
        check_paths(p, pool2);
        ++cases;
      }
    }
  }
  for (int64_t k : large_k) {
    for (int64_t m : some) {
      for (int64_t n : some) {
        Case c{
            m,           n,          k,          zps[(m + n) % 5], static_cast<OutputKind>((m + n * 3) % 3),
            bool(m & 1), n % 4 == 0, bool(n & 1)};
        Problem p(c, rng);
        if (m <= 3 && n <= 5) check_ref_against_naive(p);
        check_paths(p, pool2);
        ++cases;
      }
    }
  }
  INFO(cases << " edge cases");
  REQUIRE(cases > 8000);
}

TEST_CASE("gemm: 1000 random shapes: every path equals ref") {
  std::mt19937_64 rng(test_seed() + 1);
  ThreadPool pool2(2);
  for (int i = 0; i < 1000; ++i) {
    Problem p(random_case(rng), rng);
    if (i % 50 == 0) check_ref_against_naive(p);
    check_paths(p, pool2);
  }
}

TEST_CASE("gemm: many rows and few columns split by rows over threads: every path equals ref") {
  std::mt19937_64 rng(test_seed() + 4);
  ThreadPool pool2(2);
  int cases = 0;
  for (int64_t m : {64, 65, 100, 257}) {
    for (int64_t n : {1, 16, 17, 63, 127}) {
      for (int64_t k : {12, 64, 200}) {
        Case c{m,
               n,
               k,
               static_cast<int32_t>(rng() % 256),
               static_cast<OutputKind>(cases % 3),
               bool(n & 1),
               cases % 4 == 0,
               bool(cases & 1)};
        Problem p(c, rng);
        check_paths(p, pool2);
        ++cases;
      }
    }
  }
  REQUIRE(cases == 60);
}

TEST_CASE("gemm: worst-case values at the largest K do not saturate") {
  std::mt19937_64 rng(test_seed() + 2);
  ThreadPool pool2(2);
  for (Values v : {Values::kMaxPositive, Values::kMaxNegative}) {
    for (OutputKind kind : {OutputKind::kInt32, OutputKind::kFloat32, OutputKind::kUint8}) {
      for (int32_t za : {0, 255}) {
        for (int64_t m : {5, 20}) {  // 20: the AVX2 path's widened panels and 6-row strips
          Case c{m, 37, 4099, za, kind, true, false, false, v};
          Problem p(c, rng);
          check_ref_against_naive(p);
          check_paths(p, pool2);
        }
      }
    }
  }
  // The exact value: 4099 * 255 * 127 with a zero point of 0.
  Case c{1, 16, 4099, 0, OutputKind::kInt32, false, false, false, Values::kMaxPositive};
  Problem p(c, rng);
  for (Isa isa : optimized_paths()) {
    std::vector<int32_t> out(16);
    gemm_u8s8(p.args(out.data()), isa, nullptr);
    REQUIRE(out[0] == 4099 * 255 * 127);
    REQUIRE(out[15] == 4099 * 255 * 127);
  }
}

TEST_CASE("gemm: block-sparse loops equal the dense reference on every path") {
  std::mt19937_64 rng(test_seed() + 3);
  ThreadPool pool2(2);
  int sparse_cases = 0;
  for (int i = 0; i < 400; ++i) {
    Case c = random_case(rng);
    c.zero_blocks = (i % 5) * 0.24;  // 0 .. 0.96, including all-zero columns blocks
    Problem p(c, rng);
    const size_t bytes = p.out_bytes();
    GuardedBuffer<uint8_t> dense(bytes);
    std::memset(dense.data(), 0xab, bytes);
    index_zero_blocks(p.packed, false);
    gemm_u8s8(p.args(dense.data()), Isa::kRef, nullptr);
    const double zero = index_zero_blocks(p.packed, true);
    // The index against a count from the unpacked weights (padding counts as zero).
    int64_t zero_count = 0, blocks = 0;
    for (int64_t b = 0; b < (c.n + 15) / 16; ++b) {
      for (int64_t g = 0; g < (c.k + 3) / 4; ++g, ++blocks) {
        bool all = true;
        for (int64_t j = b * 16; j < std::min<int64_t>(c.n, b * 16 + 16); ++j)
          for (int64_t kk = g * 4; kk < std::min<int64_t>(c.k, g * 4 + 4); ++kk)
            all = all && p.w[j * c.k + kk] == 0;
        zero_count += all ? 1 : 0;
      }
    }
    REQUIRE(zero == Approx(static_cast<double>(zero_count) / static_cast<double>(blocks)));
    GuardedBuffer<uint8_t> sparse(bytes);
    std::memset(sparse.data(), 0xab, bytes);
    gemm_u8s8(p.args(sparse.data()), Isa::kRef, nullptr);
    INFO(describe(c) << " zero blocks " << zero);
    REQUIRE(std::memcmp(sparse.data(), dense.data(), bytes) == 0);
    if (i % 40 == 0) check_ref_against_naive(p);
    check_paths(p, pool2);  // every path's sparse loop against the sparse ref (== the dense ref)
    ++sparse_cases;
  }
  // pack_weights switches to the sparse loops by itself above the crossover.
  Case c{1, 64, 256, 0, OutputKind::kInt32, false, false, false};
  c.zero_blocks = 0.9;
  Problem p(c, rng);
  REQUIRE(p.packed.sparse);
  REQUIRE(p.packed.zero_block_fraction > kSparseCrossover);
  c.zero_blocks = 0.0;
  REQUIRE_FALSE(Problem(c, rng).packed.sparse);
  REQUIRE(sparse_cases == 400);
}

TEST_CASE("thread pool runs every task once") {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    // Task counts below, at and above the thread count, growing and shrinking between calls; task 0 (the
    // caller's first) is slow in some rounds, so the other threads take the caller's remaining tasks.
    const int64_t counts[] = {37, 2, 1, 3, 100, 5};
    for (int round = 0; round < 60; ++round) {
      const int64_t tasks = counts[round % 6];
      const bool slow_first = round % 4 == 0;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
      pool.parallel_for(tasks, [&](int64_t i) {
        if (slow_first && i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (auto& h : hits) REQUIRE(h.load() == 1);
    }
  }
}
