// The int8 depthwise convolution against the runtime's fp32 depthwise path on MobileNet-sized layers, batch
// 1, one thread, alternated round by round, median of the rounds:
// - fp32: the layer as the runtime runs it (a one-node graph, NCHW float in and out, bias added);
// - int8 chain: the layer as it runs inside a uint8 chain (the previous int8 layer hands it channels-last
//   uint8): padding the image with the zero point (pad_hwc) and the kernel requantizing to uint8 with a
//   fused ReLU6 clamp, as conv_static does; "speedup" is fp32 / int8 chain;
// - int8 alone: a one-node int8 graph, which also quantizes the float input, transposes it to channels-last
//   and writes float NCHW back (what a depthwise layer between two fp32 layers costs);
// - the kernel's GMAC/s (useful MACs: 9 per output) and its share of this CPU's measured int8 peak (the
//   best unit of the selected path: vpdpbusd on AVX-512 VNNI, vpmaddwd + vpaddd on AVX2; 1 MAC = 2 ops). On
//   the AMX path the depthwise kernel is the AVX-512 one (a depthwise convolution has no reduction over
//   channels for a tile to run), so its share is of the vpdpbusd peak, and the table says so.
// Usage: [MIGHTY_ISA=ref|avx2|avx512vnni|amx] build/bench/bench_depthwise [--rounds N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cpu_features.h"
#include "kernels/depthwise.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"

using namespace mighty;
using namespace mighty::kernels;

namespace {

struct Layer {
  int64_t channels, size, stride;
};

// Mean time of one call in microseconds over a run of about 20 ms (calls calibrated once per function).
double time_us(const std::function<void()>& f, int64_t& inner) {
  using clock = std::chrono::steady_clock;
  if (inner == 0) {
    inner = 1;
    for (;;) {
      const auto t0 = clock::now();
      for (int64_t i = 0; i < inner; ++i) f();
      if (std::chrono::duration<double>(clock::now() - t0).count() > 0.02 || inner > (1 << 22)) break;
      inner *= 2;
    }
  }
  const auto t0 = clock::now();
  for (int64_t i = 0; i < inner; ++i) f();
  return std::chrono::duration<double, std::micro>(clock::now() - t0).count() / static_cast<double>(inner);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// GMAC/s of the selected path's best int8 unit with independent accumulators and no memory traffic.
double peak_gmacs(Isa isa) {
  constexpr long kLoops = 1 << 22;
  using clock = std::chrono::steady_clock;
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = clock::now();
    double macs = 0;
    if (isa == Isa::kAvx512Vnni || isa == Isa::kAmx) {
      __asm__ volatile(
          "vpxord %%zmm14, %%zmm14, %%zmm14\n vpxord %%zmm15, %%zmm15, %%zmm15\n mov %0, %%rcx\n"
          "1:\n"
          "vpdpbusd %%zmm14, %%zmm15, %%zmm0\n vpdpbusd %%zmm14, %%zmm15, %%zmm1\n"
          "vpdpbusd %%zmm14, %%zmm15, %%zmm2\n vpdpbusd %%zmm14, %%zmm15, %%zmm3\n"
          "vpdpbusd %%zmm14, %%zmm15, %%zmm4\n vpdpbusd %%zmm14, %%zmm15, %%zmm5\n"
          "vpdpbusd %%zmm14, %%zmm15, %%zmm6\n vpdpbusd %%zmm14, %%zmm15, %%zmm7\n"
          "vpdpbusd %%zmm14, %%zmm15, %%zmm8\n vpdpbusd %%zmm14, %%zmm15, %%zmm9\n"
          "vpdpbusd %%zmm14, %%zmm15, %%zmm10\n vpdpbusd %%zmm14, %%zmm15, %%zmm11\n"
          "dec %%rcx\n jnz 1b\n"
          :
          : "r"(kLoops)
          : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
            "xmm11", "xmm14", "xmm15");
      macs = 12.0 * 64 * kLoops;
    } else if (isa == Isa::kAvx2) {
      __asm__ volatile(
          "vpxor %%ymm14, %%ymm14, %%ymm14\n vpxor %%ymm15, %%ymm15, %%ymm15\n mov %0, %%rcx\n"
          "1:\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n vpaddd %%ymm8, %%ymm0, %%ymm0\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n vpaddd %%ymm9, %%ymm1, %%ymm1\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n vpaddd %%ymm10, %%ymm2, %%ymm2\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n vpaddd %%ymm11, %%ymm3, %%ymm3\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n vpaddd %%ymm8, %%ymm4, %%ymm4\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n vpaddd %%ymm9, %%ymm5, %%ymm5\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n vpaddd %%ymm10, %%ymm6, %%ymm6\n"
          "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n vpaddd %%ymm11, %%ymm7, %%ymm7\n"
          "dec %%rcx\n jnz 1b\n"
          :
          : "r"(kLoops)
          : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
            "xmm11", "xmm14", "xmm15");
      macs = 8.0 * 16 * kLoops;
    } else {
      return 0.0;
    }
    runs.push_back(macs / std::chrono::duration<double>(clock::now() - t0).count() / 1e9);
  }
  return median(runs);
}

// A one-node artifact: Input [C, H, W] -> depthwise Conv2d 3x3 (padding 1, bias), fp32 or int8 (static
// activations with the given input parameters, per-channel weight scales).
std::string layer_artifact(const Layer& l, bool int8) {
  Graph g;
  const int x = g.add("in", OpKind::kInput, {}, {{"shape", {l.channels, l.size, l.size}}});
  nlohmann::json attrs = {{"in_channels", l.channels},
                          {"out_channels", l.channels},
                          {"kernel", 3},
                          {"stride", l.stride},
                          {"padding", 1},
                          {"groups", l.channels}};
  if (int8) {
    attrs["quant"] = {{"weight", "int8"},
                      {"activation", "static"},
                      {"input_scale", 4.0 / 255.0},
                      {"input_zero_point", 128}};
  }
  g.add("dw", OpKind::kConv2d, {x}, attrs);
  g.infer_shapes();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> q(-127, 127);
  ArtifactWriter w;
  w.set_metadata({{"graph", g.to_json()}, {"producer", "bench_depthwise"}});
  const int64_t c = l.channels;
  std::vector<float> bias(static_cast<size_t>(c)), scales(static_cast<size_t>(c), 0.01f);
  for (auto& b : bias) b = u(rng);
  if (int8) {
    std::vector<int8_t> wq(static_cast<size_t>(c * 9));
    for (auto& v : wq) v = static_cast<int8_t>(q(rng));
    w.add_tensor("dw.weight", TensorType::kInt8, {c, 1, 3, 3}, wq.data());
    w.add_tensor("dw.weight_scale", TensorType::kFloat32, {c}, scales.data());
  } else {
    std::vector<float> wf(static_cast<size_t>(c * 9));
    for (auto& v : wf) v = u(rng);
    w.add_tensor("dw.weight", TensorType::kFloat32, {c, 1, 3, 3}, wf.data());
  }
  w.add_tensor("dw.bias", TensorType::kFloat32, {c}, bias.data());
  return w.serialize();
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_depthwise [--rounds N]\n");
      return 2;
    }
  }
  Isa isa;
  try {
    isa = selected_isa();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_depthwise: %s\n", e.what());
    return 1;
  }
  const double peak = peak_gmacs(isa);
  const char* unit = isa == Isa::kAvx2 ? "vpmaddwd + vpaddd" : isa == Isa::kRef ? "none" : "vpdpbusd";
  std::printf(
      "depthwise 3x3, padding 1, batch 1, 1 thread, path %s%s; int8 peak of this CPU's %s: %.1f GMAC/s "
      "(%.1f GOPS)\n\n",
      isa_name(isa), isa == Isa::kAmx ? " (depthwise runs the AVX-512 kernel)" : "", unit, peak, 2 * peak);
  std::printf("%-16s %9s %14s %8s %14s %8s %8s\n", "layer", "fp32 us", "int8 chain us", "speedup",
              "int8 alone us", "GMAC/s", "of peak");
  const Layer layers[] = {{32, 56, 1},  {96, 56, 2},  {144, 28, 1}, {96, 14, 1},
                          {192, 14, 1}, {384, 14, 2}, {576, 7, 1},  {960, 7, 1}};
  for (const Layer& l : layers) {
    const Session fp32(Artifact::from_bytes(layer_artifact(l, false), "fp32.mighty"), 1);
    const Session int8(Artifact::from_bytes(layer_artifact(l, true), "int8.mighty"), 1);
    std::vector<float> x(static_cast<size_t>(l.channels * l.size * l.size));
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    for (auto& v : x) v = u(rng);
    // The kernel alone, on the same geometry.
    ConvGeometry g;
    g.height = g.width = l.size;
    g.channels = l.channels;
    g.kernel = 3;
    g.stride = l.stride;
    g.padding = 1;
    std::vector<uint8_t> image(static_cast<size_t>(padded_image_bytes(g)), 128);
    for (auto& v : image) v = static_cast<uint8_t>(rng() & 255);
    std::vector<int8_t> wq(static_cast<size_t>(l.channels * 9), 3);
    const DepthwiseWeights packed = pack_depthwise(wq.data(), l.channels, 3);
    std::vector<uint8_t> hwc(static_cast<size_t>(l.size * l.size * l.channels)),
        out(static_cast<size_t>(g.out_height() * g.out_width() * l.channels));
    for (auto& v : hwc) v = static_cast<uint8_t>(rng() & 255);
    std::vector<int32_t> bias(static_cast<size_t>(l.channels), 100);
    std::vector<float> mult(static_cast<size_t>(l.channels), 0.001f);
    DepthwiseArgs a;
    a.image = image.data();
    a.geometry = g;
    a.zero_point = 128;
    a.w = &packed;
    a.epilogue.kind = OutputKind::kUint8;
    a.epilogue.per_channel = true;
    a.epilogue.bias = bias.data();
    a.epilogue.multiplier = mult.data();
    a.epilogue.out_zero_point = 0;
    a.epilogue.clamp_lo = 0;
    a.epilogue.clamp_hi = 200;  // ReLU6 at a scale of 6 / 200
    a.c = out.data();
    a.ldc = l.channels;
    std::vector<double> tf, ti, tc, tk;
    int64_t nf = 0, ni = 0, nc = 0, nk = 0;
    for (int r = 0; r < rounds; ++r) {  // alternated, so drift in the machine's speed hits all alike
      tf.push_back(time_us([&] { fp32.run(x.data(), 1); }, nf));
      tc.push_back(time_us(
          [&] {
            pad_hwc(hwc.data(), g, 128, image.data());
            depthwise_u8s8(a, isa, nullptr);
          },
          nc));
      ti.push_back(time_us([&] { int8.run(x.data(), 1); }, ni));
      tk.push_back(time_us([&] { depthwise_u8s8(a, isa, nullptr); }, nk));
    }
    const double f = median(tf), i8 = median(ti), chain = median(tc), k = median(tk);
    const double macs = static_cast<double>(l.channels * g.out_height() * g.out_width() * 9);
    const double gmacs = macs / k / 1e3;
    std::printf("%4lld@%3lldx%-3lld s%lld  %9.2f %14.2f %7.2fx %14.2f %8.2f %7.1f%%\n",
                static_cast<long long>(l.channels), static_cast<long long>(l.size),
                static_cast<long long>(l.size), static_cast<long long>(l.stride), f, chain, f / chain, i8,
                gmacs, peak > 0 ? 100.0 * gmacs / peak : 0.0);
  }
  return 0;
}
