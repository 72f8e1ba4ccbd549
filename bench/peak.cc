// The machine's int8 peak, measured: long runs of independent dot-product instructions with no memory
// traffic, written in inline assembly so no compiler can shorten them. AVX-512 VNNI: vpdpbusd on 12 zmm
// accumulators. AVX2: the exact u8 x s8 sequence our AVX2 path needs (vpmaddwd + vpaddd on int16-widened
// operands) on 8 accumulators; vpmaddwd alone runs ~20% faster, but the vpaddd it needs shares its pipes.
// 1 MAC = 2 ops.
#include <benchmark/benchmark.h>

#include "kernels/cpu_features.h"

namespace {

constexpr long kLoops = 1 << 16;

void peak_vnni(benchmark::State& state) {
  if (mighty::kernels::cpu_features().best_supported() < mighty::kernels::Isa::kAvx512Vnni) {
    state.SkipWithError("CPU lacks AVX-512 VNNI");
    return;
  }
  for (auto _ : state) {
    __asm__ volatile(
        "vpxord %%zmm14, %%zmm14, %%zmm14\n"
        "vpxord %%zmm15, %%zmm15, %%zmm15\n"
        "mov %0, %%rcx\n"
        "1:\n"
        "vpdpbusd %%zmm14, %%zmm15, %%zmm0\n vpdpbusd %%zmm14, %%zmm15, %%zmm1\n"
        "vpdpbusd %%zmm14, %%zmm15, %%zmm2\n vpdpbusd %%zmm14, %%zmm15, %%zmm3\n"
        "vpdpbusd %%zmm14, %%zmm15, %%zmm4\n vpdpbusd %%zmm14, %%zmm15, %%zmm5\n"
        "vpdpbusd %%zmm14, %%zmm15, %%zmm6\n vpdpbusd %%zmm14, %%zmm15, %%zmm7\n"
        "vpdpbusd %%zmm14, %%zmm15, %%zmm8\n vpdpbusd %%zmm14, %%zmm15, %%zmm9\n"
        "vpdpbusd %%zmm14, %%zmm15, %%zmm10\n vpdpbusd %%zmm14, %%zmm15, %%zmm11\n"
        "dec %%rcx\n"
        "jnz 1b\n"
        :
        : "r"(kLoops)
        : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm14", "xmm15");
  }
  const double macs = 12.0 * 64 * kLoops;
  state.counters["GOPS"] =
      benchmark::Counter(2 * macs * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void peak_avx2(benchmark::State& state) {
  if (mighty::kernels::cpu_features().best_supported() < mighty::kernels::Isa::kAvx2) {
    state.SkipWithError("CPU lacks AVX2");
    return;
  }
  for (auto _ : state) {
    __asm__ volatile(
        "vpxor %%ymm14, %%ymm14, %%ymm14\n"
        "vpxor %%ymm15, %%ymm15, %%ymm15\n"
        "mov %0, %%rcx\n"
        "1:\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n vpaddd %%ymm8, %%ymm0, %%ymm0\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n vpaddd %%ymm9, %%ymm1, %%ymm1\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n vpaddd %%ymm10, %%ymm2, %%ymm2\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n vpaddd %%ymm11, %%ymm3, %%ymm3\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n vpaddd %%ymm8, %%ymm4, %%ymm4\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n vpaddd %%ymm9, %%ymm5, %%ymm5\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n vpaddd %%ymm10, %%ymm6, %%ymm6\n"
        "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n vpaddd %%ymm11, %%ymm7, %%ymm7\n"
        "dec %%rcx\n"
        "jnz 1b\n"
        :
        : "r"(kLoops)
        : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm14", "xmm15");
  }
  const double macs = 8.0 * 16 * kLoops;
  state.counters["GOPS"] =
      benchmark::Counter(2 * macs * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(peak_vnni)->Name("peak/avx512vnni")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(peak_avx2)->Name("peak/avx2")->Unit(benchmark::kMicrosecond)->UseRealTime();
