// int8 GEMM side by side: mighty's paths (AMX, AVX-512 VNNI, AVX2), oneDNN's u8 x s8 matmul (-> s32 and ->
// f32 with per-channel scales), LibTorch fp32 linear (on OpenBLAS) and Eigen fp32, on the shapes, 1
// and 2 threads. GOPS = 2*M*N*K / s. Run through scripts/bench-kernels, which prints one table.
#include <omp.h>
#include <torch/torch.h>

#include <benchmark/benchmark.h>
#include <Eigen/Core>
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/thread_pool.h"

using namespace mighty::kernels;

namespace {

struct Shape {
  int64_t m, n, k;
};

std::vector<uint8_t> random_u8(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

std::vector<int8_t> random_s8(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  return v;
}

void set_gops(benchmark::State& state, const Shape& s, int threads) {
  state.counters["GOPS"] =
      benchmark::Counter(2.0 * s.m * s.n * s.k * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
}

void mighty_gemm(benchmark::State& state, Shape s, Isa isa, int threads, OutputKind kind) {
  if (!cpu_features().supports(isa)) {
    state.SkipWithError("CPU lacks this path");
    return;
  }
  const auto a = random_u8(static_cast<size_t>(s.m * s.k), 1);
  const auto w = random_s8(static_cast<size_t>(s.n * s.k), 2);
  const PackedWeights packed = pack_weights(w.data(), s.n, s.k, s.k);
  std::vector<float> scales(static_cast<size_t>(s.n), 0.001f);
  std::vector<float> out(static_cast<size_t>(s.m * s.n));
  GemmArgs g;
  g.a = a.data();
  g.lda = s.k;
  g.m = s.m;
  g.a_zero_point = 128;
  g.w = &packed;
  g.epilogue.kind = kind;
  g.epilogue.multiplier = scales.data();
  g.epilogue.per_channel = true;
  g.c = out.data();
  g.ldc = s.n;
  ThreadPool pool(threads);
  for (auto _ : state) {
    gemm_u8s8(g, isa, &pool);
    benchmark::ClobberMemory();
  }
  set_gops(state, s, threads);
}

void onednn_matmul(benchmark::State& state, Shape s, int threads, bool f32_out) {
  omp_set_num_threads(threads);
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  memory::desc a_md({s.m, s.k}, memory::data_type::u8, memory::format_tag::ab);
  memory::desc w_any({s.k, s.n}, memory::data_type::s8, memory::format_tag::any);
  memory::desc w_plain({s.k, s.n}, memory::data_type::s8, memory::format_tag::ba);  // W[n][k], as ours
  memory::desc c_md({s.m, s.n}, f32_out ? memory::data_type::f32 : memory::data_type::s32,
                    memory::format_tag::ab);
  primitive_attr attr;
  attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
  if (f32_out) attr.set_output_scales(1 << 1, std::vector<float>(static_cast<size_t>(s.n), 0.001f));
  matmul::primitive_desc pd(matmul::desc(a_md, w_any, c_md), attr, eng);
  auto a = random_u8(static_cast<size_t>(s.m * s.k), 1);
  auto w = random_s8(static_cast<size_t>(s.n * s.k), 2);
  memory a_mem(a_md, eng, a.data()), w_src(w_plain, eng, w.data()), w_mem(pd.weights_desc(), eng),
      c_mem(c_md, eng);
  reorder(w_src, w_mem).execute(strm, w_src, w_mem);  // packed once, like ours at model load
  matmul prim(pd);
  for (auto _ : state) {
    prim.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, c_mem}});
    strm.wait();
  }
  set_gops(state, s, threads);
}

void torch_linear(benchmark::State& state, Shape s, int threads) {
  torch::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({s.m, s.k});
  auto w = torch::randn({s.n, s.k});
  auto b = torch::randn({s.n});
  for (auto _ : state) benchmark::DoNotOptimize(torch::linear(x, w, b));
  set_gops(state, s, threads);
}

void eigen_fp32(benchmark::State& state, Shape s) {
  Eigen::setNbThreads(1);
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(s.m, s.k);
  Eigen::MatrixXf w = Eigen::MatrixXf::Random(s.k, s.n);
  Eigen::MatrixXf c(s.m, s.n);
  for (auto _ : state) {
    c.noalias() = a * w;
    benchmark::DoNotOptimize(c.data());
  }
  set_gops(state, s, 1);
}

}  // namespace

void register_read_bandwidth(int64_t n, int64_t k);  // peak.cc

int main(int argc, char** argv) {
  const int64_t ms[] = {1, 8, 64, 256};
  const std::pair<int64_t, int64_t> nks[] = {
      {256, 784}, {512, 512}, {1024, 1024}, {4096, 1024}, {1024, 4096}};
  for (auto [n, k] : nks) register_read_bandwidth(n, k);
  for (int64_t m : ms) {
    for (auto [n, k] : nks) {
      const Shape s{m, n, k};
      const std::string shape = "M" + std::to_string(m) + "/N" + std::to_string(n) + "/K" + std::to_string(k);
      for (int t : {1, 2}) {
        const std::string tt = "/t" + std::to_string(t);
        for (Isa isa : {Isa::kAmx, Isa::kAvx512Vnni, Isa::kAvx2}) {
          benchmark::RegisterBenchmark(
              ("mighty_" + std::string(isa_name(isa)) + "_s32/" + shape + tt).c_str(), mighty_gemm, s, isa, t,
              OutputKind::kInt32)
              ->UseRealTime();
          benchmark::RegisterBenchmark(
              ("mighty_" + std::string(isa_name(isa)) + "_f32/" + shape + tt).c_str(), mighty_gemm, s, isa, t,
              OutputKind::kFloat32)
              ->UseRealTime();
        }
        benchmark::RegisterBenchmark(("onednn_s32/" + shape + tt).c_str(), onednn_matmul, s, t, false)
            ->UseRealTime();
        benchmark::RegisterBenchmark(("onednn_f32/" + shape + tt).c_str(), onednn_matmul, s, t, true)
            ->UseRealTime();
        benchmark::RegisterBenchmark(("torch_fp32/" + shape + tt).c_str(), torch_linear, s, t)->UseRealTime();
      }
      benchmark::RegisterBenchmark(("eigen_fp32/" + shape + "/t1").c_str(), eigen_fp32, s)->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
