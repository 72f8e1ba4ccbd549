// The machine's int8 peak, measured: long runs of independent dot-product instructions with no memory
// traffic, written in inline assembly so no compiler can shorten them. AMX: TDPBUSD on 4 independent
// accumulator tiles (16 x 16 x 64 MACs each). AVX-512 VNNI: vpdpbusd on 12 zmm accumulators. AVX2: the exact
// u8 x s8 sequence our AVX2 path needs (vpmaddwd + vpaddd on int16-widened operands) on 8 accumulators;
// vpmaddwd alone runs ~20% faster, but the vpaddd it needs shares its pipes. 1 MAC = 2 ops. Also the batch-1
// roofline: how fast one core reads a buffer of a layer's weight bytes (a GEMV at M = 1 uses each weight byte
// once, so it cannot run faster than 2 ops per byte read).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"

namespace {

constexpr long kLoops = 1 << 16;

// False (and the benchmark skipped, naming the path) when this CPU cannot run `isa`.
bool runs_here(benchmark::State& state, mighty::kernels::Isa isa) {
  if (mighty::kernels::cpu_features().supports(isa)) return true;
  state.SkipWithError(("CPU lacks " + std::string(mighty::kernels::isa_name(isa))).c_str());
  return false;
}

// GOPS of a loop doing `macs` multiply-accumulates per iteration of the benchmark (1 MAC = 2 ops).
void set_gops(benchmark::State& state, double macs) {
  state.counters["GOPS"] = benchmark::Counter(2 * macs * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void peak_vnni(benchmark::State& state) {
  if (!runs_here(state, mighty::kernels::Isa::kAvx512Vnni)) return;
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
  set_gops(state, 12.0 * 64 * kLoops);
}

void peak_amx(benchmark::State& state) {
  if (!runs_here(state, mighty::kernels::Isa::kAmx)) return;
  // Palette 1, tiles 0-7 of 16 rows x 64 bytes (cpu_features() has obtained Linux's tile-data permission).
  alignas(64) uint8_t config[64] = {1};
  for (int t = 0; t < 8; ++t) {
    config[16 + 2 * t] = 64;
    config[48 + t] = 16;
  }
  for (auto _ : state) {
    __asm__ volatile(
        "ldtilecfg (%1)\n"
        "tilezero %%tmm0\n tilezero %%tmm1\n tilezero %%tmm2\n tilezero %%tmm3\n"
        "tilezero %%tmm4\n tilezero %%tmm5\n tilezero %%tmm6\n tilezero %%tmm7\n"
        "mov %0, %%rcx\n"
        "1:\n"
        "tdpbusd %%tmm6, %%tmm4, %%tmm0\n tdpbusd %%tmm7, %%tmm4, %%tmm1\n"
        "tdpbusd %%tmm6, %%tmm5, %%tmm2\n tdpbusd %%tmm7, %%tmm5, %%tmm3\n"
        "dec %%rcx\n"
        "jnz 1b\n"
        "tilerelease\n"
        :
        : "r"(kLoops / 16), "r"(config)
        : "rcx", "memory");
  }
  set_gops(state, 4.0 * 16 * 16 * 64 * (kLoops / 16));
}

void peak_avx2(benchmark::State& state) {
  if (!runs_here(state, mighty::kernels::Isa::kAvx2)) return;
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
  set_gops(state, 8.0 * 16 * kLoops);
}

// The AVX2 path's 6 x 8 tile loop itself (kernels/gemm_avx2.cc, from 16 rows) with every operand in L1: per
// group 2 weight loads, 6 activation broadcasts, 12 vpmaddwd + 12 vpaddd. The loads and broadcasts take issue
// slots the peak loop above does not have, so this is the ceiling of that path's GEMM, below peak/avx2.
void tile_loop_avx2(benchmark::State& state) {
  if (!runs_here(state, mighty::kernels::Isa::kAvx2)) return;
  alignas(64) static int16_t operands[4096];  // 4 KB of weights, then 4 KB of activations: both stay in L1
  for (auto _ : state) {
    __asm__ volatile(
        "xor %%rdx, %%rdx\n"
        "1:\n"
        "mov %%rdx, %%rsi\n and $63, %%rsi\n shl $6, %%rsi\n add %1, %%rsi\n"
        "vmovdqa (%%rsi), %%ymm12\n vmovdqa 32(%%rsi), %%ymm13\n"
#define MIGHTY_ROW(offset, lo, hi)                                               \
  "vpbroadcastq " #offset                                                        \
  "(%%rsi), %%ymm14\n"                                                           \
  "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n vpaddd %%ymm15, %%ymm" #lo ", %%ymm" #lo \
  "\n"                                                                           \
  "vpmaddwd %%ymm13, %%ymm14, %%ymm14\n vpaddd %%ymm14, %%ymm" #hi ", %%ymm" #hi "\n"
        MIGHTY_ROW(4096, 0, 1) MIGHTY_ROW(4104, 2, 3) MIGHTY_ROW(4112, 4, 5) MIGHTY_ROW(4120, 6, 7)
            MIGHTY_ROW(4128, 8, 9) MIGHTY_ROW(4136, 10, 11)
#undef MIGHTY_ROW
                "inc %%rdx\n cmp %0, %%rdx\n jne 1b\n"
        :
        : "r"(kLoops), "r"(operands)
        : "rdx", "rsi", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
  }
  set_gops(state, 12.0 * 16 * kLoops);
}

// Sums `bytes` (a multiple of 512) with 8 independent 512-bit accumulators, the loads folded into vpaddd.
void read_bandwidth(benchmark::State& state, int64_t bytes) {
  if (!runs_here(state, mighty::kernels::Isa::kAvx512Vnni)) return;
  const mighty::kernels::AlignedBytes buffer = mighty::kernels::aligned_bytes(static_cast<size_t>(bytes));
  std::memset(buffer.get(), 1, static_cast<size_t>(bytes));
  const uint8_t* begin = buffer.get();
  const uint8_t* end = begin + bytes;
  for (auto _ : state) {
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n vpxord %%zmm1, %%zmm1, %%zmm1\n"
        "vpxord %%zmm2, %%zmm2, %%zmm2\n vpxord %%zmm3, %%zmm3, %%zmm3\n"
        "vpxord %%zmm4, %%zmm4, %%zmm4\n vpxord %%zmm5, %%zmm5, %%zmm5\n"
        "vpxord %%zmm6, %%zmm6, %%zmm6\n vpxord %%zmm7, %%zmm7, %%zmm7\n"
        "mov %0, %%rsi\n"
        "1:\n"
        "vpaddd (%%rsi), %%zmm0, %%zmm0\n vpaddd 64(%%rsi), %%zmm1, %%zmm1\n"
        "vpaddd 128(%%rsi), %%zmm2, %%zmm2\n vpaddd 192(%%rsi), %%zmm3, %%zmm3\n"
        "vpaddd 256(%%rsi), %%zmm4, %%zmm4\n vpaddd 320(%%rsi), %%zmm5, %%zmm5\n"
        "vpaddd 384(%%rsi), %%zmm6, %%zmm6\n vpaddd 448(%%rsi), %%zmm7, %%zmm7\n"
        "add $512, %%rsi\n"
        "cmp %1, %%rsi\n"
        "jb 1b\n"
        :
        : "r"(begin), "r"(end)
        : "rsi", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "memory");
  }
  state.counters["GBps"] =
      benchmark::Counter(static_cast<double>(bytes) * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

}  // namespace

// The batch-1 roofline of an N x K layer (its packed weights, rounded up to 512 bytes).
void register_read_bandwidth(int64_t n, int64_t k) {
  const int64_t bytes = (n * k + 511) / 512 * 512;
  benchmark::RegisterBenchmark(("peak/read/N" + std::to_string(n) + "/K" + std::to_string(k)).c_str(),
                               read_bandwidth, bytes)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

BENCHMARK(peak_amx)->Name("peak/amx")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(peak_vnni)->Name("peak/avx512vnni")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(peak_avx2)->Name("peak/avx2")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(tile_loop_avx2)->Name("peak/avx2_tile_loop")->Unit(benchmark::kMicrosecond)->UseRealTime();
