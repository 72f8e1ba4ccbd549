// Block-sparse against dense int8 GEMM on the same packed weights: for each shape and fraction of zero
// [16 x 4] blocks, the median time of the dense loops and of the sparse loops on one path, one thread, and
// their ratio; the crossover is the lowest fraction from which the sparse loops stay faster.
// Usage: [MIGHTY_ISA=ref|avx2|avx512vnni] build/bench/bench_sparse [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"

using namespace mighty::kernels;

namespace {

struct Shape {
  int64_t m, n, k;
  const char* what;
};

// Median over `reps` of the mean time of one call, each rep running for about 20 ms.
double median_us(const GemmArgs& args, Isa isa, int reps) {
  using clock = std::chrono::steady_clock;
  int64_t inner = 1;
  for (;;) {  // calibrate
    const auto t0 = clock::now();
    for (int64_t i = 0; i < inner; ++i) gemm_u8s8(args, isa, nullptr);
    if (std::chrono::duration<double>(clock::now() - t0).count() > 0.02 || inner > (1 << 24)) break;
    inner *= 2;
  }
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock::now();
    for (int64_t i = 0; i < inner; ++i) gemm_u8s8(args, isa, nullptr);
    times.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count() /
                    static_cast<double>(inner));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Isa isa;
  try {
    isa = selected_isa();  // MIGHTY_ISA, or the best this CPU runs
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_sparse: %s\n", e.what());
    return 1;
  }
  int reps = 7;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: [MIGHTY_ISA=ref|avx2|avx512vnni] bench_sparse [--reps N]\n");
      return 2;
    }
  }
  const Shape shapes[] = {{1, 32, 1568, "Fashion-MNIST student fc.0"},
                          {1, 256, 1024, ""},
                          {1, 1024, 1024, ""},
                          {1, 4096, 1024, ""},
                          {1, 1024, 4096, ""},
                          {8, 1024, 1024, ""},
                          {64, 1024, 1024, ""}};
  const double fractions[] = {0.0, 0.2, 0.35, 0.5, 0.7, 0.8, 0.9, 0.95};
  std::printf("path %s, 1 thread, median of %d; times in microseconds per call\n\n", isa_name(isa), reps);
  std::printf(
      "| M | N | K | zero blocks | dense | sparse | dense / sparse "
      "|\n|---:|---:|---:|---:|---:|---:|---:|\n");
  std::mt19937_64 rng(42);
  for (const Shape& s : shapes) {
    std::vector<uint8_t> a(static_cast<size_t>(s.m * s.k));
    for (auto& v : a) v = static_cast<uint8_t>(rng());
    std::vector<float> out(static_cast<size_t>(s.m * s.n));
    const float scale = 0.001f;
    double crossover = -1.0;
    for (double f : fractions) {
      std::vector<int8_t> w(static_cast<size_t>(s.n * s.k));
      for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      // Zero whole [16 x 4] blocks, as block-sparse pruning leaves them.
      for (int64_t b = 0; b < s.n / 16; ++b) {
        for (int64_t g = 0; g < s.k / 4; ++g) {
          if (static_cast<double>(rng() % 10000) >= 10000.0 * f) continue;
          for (int64_t j = b * 16; j < b * 16 + 16; ++j)
            std::memset(&w[static_cast<size_t>(j * s.k + g * 4)], 0, 4);
        }
      }
      PackedWeights p = pack_weights(w.data(), s.n, s.k, s.k);
      GemmArgs g;
      g.a = a.data();
      g.lda = s.k;
      g.m = s.m;
      g.a_zero_point = 128;
      g.w = &p;
      g.epilogue.kind = OutputKind::kFloat32;
      g.epilogue.multiplier = &scale;
      g.c = out.data();
      g.ldc = s.n;
      const double zero = index_zero_blocks(p, false);
      const double dense = median_us(g, isa, reps);
      index_zero_blocks(p, true);
      const double sparse = median_us(g, isa, reps);
      if (dense > sparse && crossover < 0) crossover = zero;
      if (dense <= sparse) crossover = -1.0;  // must stay faster from the crossover on
      std::printf("| %lld | %lld | %lld | %.2f | %.2f | %.2f | %.2fx |\n", static_cast<long long>(s.m),
                  static_cast<long long>(s.n), static_cast<long long>(s.k), zero, dense, sparse,
                  dense / sparse);
    }
    if (crossover >= 0) {
      std::printf("| | | | crossover %.2f%s%s | | | |\n", crossover, s.what[0] ? ": " : "", s.what);
    } else {
      std::printf("| | | | no crossover%s%s | | | |\n", s.what[0] ? ": " : "", s.what);
    }
  }
  return 0;
}
