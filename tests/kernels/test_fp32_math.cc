// The fp32 math (kernels/fp32_math.h): the scalar path against double precision (exp within 2 ulp, GELU,
// SiLU, sigmoid, softmax with scale and causal mask, LayerNorm), and every other path the CPU has equal to it
// byte for byte, on lengths around the 16-lane blocks, special values, and inputs that end at a guard page.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "guarded_buffer.h"
#include "kernels/fp32_math.h"

using namespace mighty::kernels;
using mighty::testing::GuardedBuffer;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float scale) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Values where the arithmetic changes form: zeros, the exp limits, the GELU clamp, NaN, infinities,
// denormals.
std::vector<float> special_values() {
  return {0.0f,   -0.0f,  1e-30f, -1e-30f, 1e-40f, -1e-40f, 86.9f,  -86.9f, -87.0f, -87.01f, 88.7f,
          88.72f, 88.73f, 89.5f,  -89.5f,  -1e4f,  1e4f,    14.14f, -14.2f, 7.0f,   -7.0f,   kInf,
          -kInf,  kNaN,   -kNaN,  3e38f,   -3e38f, 0.5f,    -0.5f,  1.0f,   -1.0f,  0.34657f};
}

std::vector<Isa> other_paths() {
  std::vector<Isa> paths;
  for (Isa isa : kAllIsas)
    if (isa != Isa::kRef && cpu_features().supports(isa)) paths.push_back(isa);
  return paths;
}

// Byte for byte; under WebAssembly a NaN matches any NaN: wasm leaves the sign and payload of a NaN that an
// operation produces or passes on unspecified (an engine may return its canonical NaN), so only "is NaN" is
// defined there.
bool same_bits(const float* a, const float* b, size_t n) {
#if defined(__wasm__)
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(a[i]) != std::isnan(b[i]) || (!std::isnan(a[i]) && std::memcmp(a + i, b + i, 4) != 0)) {
      return false;
    }
  return true;
#else
  return std::memcmp(a, b, n * sizeof(float)) == 0;
#endif
}

double ulps(float got, double want) {
  const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
  return std::fabs(got - want) / ulp;
}

}  // namespace

TEST_CASE("fp32 math: exp, read back through softmax, is within 3 ulp of double precision") {
  // exp is internal; a two-column softmax row [0, -d] reads it back: its second probability is
  // e^-d / (1 + e^-d), exp's result after two more roundings (the sum, the quotient).
  const Fp32MathKernels& ref = fp32_math(Isa::kRef);
  double worst = 0;
  for (double d = 0.0; d < 80.0; d += 0.0137) {
    const float row[2] = {0.0f, static_cast<float>(-d)};
    float p[2];
    SoftmaxArgs a;
    a.x = row;
    a.y = p;
    a.rows = 1;
    a.cols = 2;
    ref.softmax(a);
    const double e = std::exp(static_cast<double>(row[1]));
    worst = std::max(worst, ulps(p[1], e / (1.0 + e)));
  }
  INFO("worst " << worst << " ulp");
  REQUIRE(worst <= 3.0);
}

TEST_CASE("fp32 math: GELU, SiLU and sigmoid against double precision") {
  std::mt19937_64 rng(2);
  auto x = random_floats(4001, rng, 12.0f);
  for (float v = -12.0f; v <= 12.0f; v += 0.001f) x.push_back(v);
  const Fp32MathKernels& ref = fp32_math(Isa::kRef);
  std::vector<float> g(x.size()), s(x.size()), sg(x.size());
  ref.gelu(x.data(), static_cast<int64_t>(x.size()), g.data());
  ref.silu(x.data(), static_cast<int64_t>(x.size()), s.data());
  ref.sigmoid(x.data(), static_cast<int64_t>(x.size()), sg.data());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double phi = 0.5 * std::erfc(-v / std::sqrt(2.0));
    // Phi within (4e-7 + 3e-7 z^2) of the smaller of Phi and 1 - Phi (relative accuracy in the negative
    // tail; z^2 = x^2 / 2 carries the roundings of z = x / sqrt 2 and of its square into exp's argument).
    const double phi_tol = (4e-7 + 1.5e-7 * v * v) * std::min(phi, 1.0 - phi) + 1e-7 * phi + 1e-30;
    INFO("x " << x[i] << " gelu " << g[i] << " want " << v * phi);
    REQUIRE(std::fabs(g[i] - v * phi) <= std::fabs(v) * phi_tol + 1e-38);
    const double sig = 1.0 / (1.0 + std::exp(-v));
    REQUIRE(std::fabs(sg[i] - sig) <= 5e-7 * sig);
    REQUIRE(std::fabs(s[i] - v * sig) <= 5e-7 * std::fabs(v * sig) + 1e-38);
  }
  // Limits: GELU(+inf) = +inf, GELU far below 0 is -0 or a tiny negative, NaN stays NaN.
  const float lim[] = {kInf, -30.0f, kNaN, 0.0f};
  float out[4];
  ref.gelu(lim, 4, out);
  REQUIRE(out[0] == kInf);
  REQUIRE((out[1] <= 0.0f && out[1] > -1e-30f));
  REQUIRE(std::isnan(out[2]));
  REQUIRE(out[3] == 0.0f);
}

TEST_CASE("fp32 math: softmax with scale and causal mask against double precision, no denormals") {
  std::mt19937_64 rng(3);
  const Fp32MathKernels& ref = fp32_math(Isa::kRef);
  for (int64_t cols : {1, 2, 15, 16, 17, 143}) {
    for (int64_t causal : {-1, 0, 5}) {
      const int64_t rows = 7;
      auto x = random_floats(static_cast<size_t>(rows * cols), rng, 40.0f);
      std::vector<float> p(x.size(), -1.0f);
      SoftmaxArgs a;
      a.x = x.data();
      a.y = p.data();
      a.rows = rows;
      a.cols = cols;
      a.scale = 0.35f;
      a.causal_offset = causal;
      ref.softmax(a);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = causal < 0 ? cols : std::min(cols, causal + r + 1);
        double mx = -1e300, total = 0;
        for (int64_t i = 0; i < n; ++i) mx = std::max<double>(mx, x[r * cols + i] * 0.35f);
        for (int64_t i = 0; i < n; ++i) total += std::exp(double(x[r * cols + i] * 0.35f) - mx);
        for (int64_t i = 0; i < cols; ++i) {
          const float got = p[r * cols + i];
          const double want = i < n ? std::exp(double(x[r * cols + i] * 0.35f) - mx) / total : 0.0;
          INFO("cols " << cols << " causal " << causal << " row " << r << " col " << i);
          REQUIRE((got == 0.0f || got >= std::numeric_limits<float>::min()));
          REQUIRE(std::fabs(got - want) <= 2e-6 * want + 1.2e-38);
        }
      }
    }
  }
}

TEST_CASE("fp32 math: layer norm against double precision") {
  std::mt19937_64 rng(1);
  for (int64_t dim : {1, 2, 7, 16, 64, 193}) {
    const int64_t rows = 3;
    auto x = random_floats(static_cast<size_t>(rows * dim), rng, 3.0f);
    auto g = random_floats(static_cast<size_t>(dim), rng, 1.0f),
         b = random_floats(static_cast<size_t>(dim), rng, 1.0f);
    std::vector<float> y(x.size());
    fp32_math(Isa::kRef).layer_norm(x.data(), rows, dim, g.data(), b.data(), 1e-5f, y.data());
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
      mean /= dim;
      for (int64_t i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
      var /= dim;
      for (int64_t i = 0; i < dim; ++i) {
        const double want = (x[r * dim + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
        INFO("dim " << dim << " i " << i);
        REQUIRE(std::fabs(y[r * dim + i] - want) <= 1e-4 + 1e-4 * std::fabs(want));
      }
    }
  }
}

TEST_CASE("fp32 math: every path equals the scalar path, bit for bit") {
  std::mt19937_64 rng(4);
  const Fp32MathKernels& ref = fp32_math(Isa::kRef);
  for (Isa isa : other_paths()) {
    const Fp32MathKernels& k = fp32_math(isa);
    for (int64_t n : {1, 3, 15, 16, 17, 31, 32, 33, 100, 1000}) {
      // Elementwise: random values of three magnitudes and the special values, ending at a guard page.
      auto v = random_floats(static_cast<size_t>(n), rng, n % 3 == 0 ? 0.5f : n % 3 == 1 ? 8.0f : 100.0f);
      const auto special = special_values();
      for (size_t i = 0; i < v.size() && i < special.size(); i += 2)
        v[i] = special[(i + static_cast<size_t>(n)) % special.size()];
      GuardedBuffer<float> x(v.size()), want(v.size()), got(v.size());
      std::memcpy(x.data(), v.data(), v.size() * 4);
      for (auto f : {&Fp32MathKernels::gelu, &Fp32MathKernels::silu, &Fp32MathKernels::sigmoid}) {
        (ref.*f)(x.data(), n, want.data());
        (k.*f)(x.data(), n, got.data());
        INFO("path " << isa_name(isa) << " n " << n);
        REQUIRE(same_bits(want.data(), got.data(), v.size()));
        std::memcpy(got.data(), x.data(), v.size() * 4);  // in place
        (k.*f)(got.data(), n, got.data());
        REQUIRE(same_bits(want.data(), got.data(), v.size()));
      }
      // Softmax rows of n columns with and without the causal mask, including rows holding -inf, NaN,
      // and values far apart (exp flushing to 0).
      for (int64_t causal : {-1, 0, 9}) {
        const int64_t rows = 5;
        auto s = random_floats(static_cast<size_t>(rows * n), rng, 60.0f);
        if (n > 2) {
          s[1] = -kInf;
          s[static_cast<size_t>(n + 1)] = -1e30f;
          s[static_cast<size_t>(4 * n)] = kNaN;
        }
        GuardedBuffer<float> sx(s.size()), sw(s.size()), sg(s.size());
        std::memcpy(sx.data(), s.data(), s.size() * 4);
        SoftmaxArgs a;
        a.x = sx.data();
        a.rows = rows;
        a.cols = n;
        a.scale = 0.125f;
        a.causal_offset = causal;
        a.y = sw.data();
        ref.softmax(a);
        a.y = sg.data();
        k.softmax(a);
        INFO("path " << isa_name(isa) << " softmax cols " << n << " causal " << causal);
        REQUIRE(same_bits(sw.data(), sg.data(), s.size()));
      }
      // LayerNorm over n, three rows (one of them constant: variance 0).
      const int64_t rows = 3;
      auto l = random_floats(static_cast<size_t>(rows * n), rng, 5.0f);
      for (int64_t i = 0; i < n; ++i) l[static_cast<size_t>(n + i)] = 1.5f;
      auto g = random_floats(static_cast<size_t>(n), rng, 2.0f),
           b = random_floats(static_cast<size_t>(n), rng, 2.0f);
      GuardedBuffer<float> lx(l.size()), lg(g.size()), lb(b.size()), lw(l.size()), lo(l.size());
      std::memcpy(lx.data(), l.data(), l.size() * 4);
      std::memcpy(lg.data(), g.data(), g.size() * 4);
      std::memcpy(lb.data(), b.data(), b.size() * 4);
      ref.layer_norm(lx.data(), rows, n, lg.data(), lb.data(), 1e-5f, lw.data());
      k.layer_norm(lx.data(), rows, n, lg.data(), lb.data(), 1e-5f, lo.data());
      INFO("path " << isa_name(isa) << " layer norm dim " << n);
      REQUIRE(same_bits(lw.data(), lo.data(), l.size()));
    }
  }
}
