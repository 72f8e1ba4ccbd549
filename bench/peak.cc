// The machine's int8 peak, measured: long chains of independent dot-product instructions with no memory
// traffic. AVX-512 VNNI: vpdpbusd on 16 zmm accumulators. AVX2: the exact u8 x s8 sequence our AVX2 path uses
// (vpmaddwd + vpaddd on int16-widened operands), on 8 ymm accumulator pairs. 1 MAC = 2 ops.
#include <immintrin.h>

#include <benchmark/benchmark.h>

#include "kernels/cpu_features.h"

namespace {

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void peak_vnni(benchmark::State& state) {
  if (mighty::kernels::cpu_features().best_supported() < mighty::kernels::Isa::kAvx512Vnni) {
    state.SkipWithError("CPU lacks AVX-512 VNNI");
    return;
  }
  constexpr int kIterations = 1 << 16;
  __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x01010101);
  for (auto _ : state) {
    __m512i acc[16];
    for (auto& x : acc) x = _mm512_setzero_si512();
    for (int i = 0; i < kIterations; ++i) {
      for (auto& x : acc) x = _mm512_dpbusd_epi32(x, a, b);
      __asm__ volatile("" : "+v"(a), "+v"(b));
    }
    for (auto& x : acc) benchmark::DoNotOptimize(x);
  }
  const double macs = 16.0 * 64 * kIterations;
  state.counters["GOPS"] =
      benchmark::Counter(2 * macs * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

__attribute__((target("avx2,fma"))) void peak_avx2(benchmark::State& state) {
  if (mighty::kernels::cpu_features().best_supported() < mighty::kernels::Isa::kAvx2) {
    state.SkipWithError("CPU lacks AVX2");
    return;
  }
  constexpr int kIterations = 1 << 16;
  __m256i a = _mm256_set1_epi32(0x00030004), b = _mm256_set1_epi32(0x00010001);
  for (auto _ : state) {
    __m256i acc[12];
    for (auto& x : acc) x = _mm256_setzero_si256();
    for (int i = 0; i < kIterations; ++i) {
      for (auto& x : acc) x = _mm256_add_epi32(x, _mm256_madd_epi16(a, b));
      __asm__ volatile("" : "+x"(a), "+x"(b));
    }
    for (auto& x : acc) benchmark::DoNotOptimize(x);
  }
  const double macs = 12.0 * 16 * kIterations;
  state.counters["GOPS"] =
      benchmark::Counter(2 * macs * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(peak_vnni)->Name("peak/avx512vnni")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(peak_avx2)->Name("peak/avx2")->Unit(benchmark::kMicrosecond)->UseRealTime();
