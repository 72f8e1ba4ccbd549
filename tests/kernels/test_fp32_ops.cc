// fp32 operations against double-precision references computed in the most direct way.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/fp32_ops.h"
#include "kernels/transpose.h"

using namespace mighty::kernels;

namespace {

std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float scale = 3.0f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool close(double got, double want, double rel = 2e-5, double abs = 2e-6) {
  return std::fabs(got - want) <= abs + rel * std::fabs(want);
}

}  // namespace

TEST_CASE("fp32: layer norm") {
  std::mt19937_64 rng(1);
  for (int64_t dim : {1, 2, 7, 64, 193}) {
    const int64_t rows = 3;
    auto x = random_floats(static_cast<size_t>(rows * dim), rng);
    auto g = random_floats(static_cast<size_t>(dim), rng, 1.0f),
         b = random_floats(static_cast<size_t>(dim), rng, 1.0f);
    std::vector<float> y(x.size());
    layer_norm(x.data(), rows, dim, g.data(), b.data(), 1e-5f, y.data());
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < dim; ++i) mean += x[r * dim + i];
      mean /= dim;
      for (int64_t i = 0; i < dim; ++i) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
      var /= dim;
      for (int64_t i = 0; i < dim; ++i) {
        const double want = (x[r * dim + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
        INFO("dim " << dim << " i " << i);
        REQUIRE(close(y[r * dim + i], want, 1e-4, 1e-4));
      }
    }
  }
}

TEST_CASE("fp32: GELU and softmax") {
  std::mt19937_64 rng(2);
  auto x = random_floats(1001, rng, 8.0f);
  std::vector<float> y(x.size());
  gelu(x.data(), static_cast<int64_t>(x.size()), y.data());
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
    REQUIRE(close(y[i], want, 1e-5, 1e-6));
  }
  const int64_t rows = 7, cols = 143;
  auto s = random_floats(static_cast<size_t>(rows * cols), rng, 20.0f);
  std::vector<float> p(s.size());
  softmax_rows(s.data(), rows, cols, p.data());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e30, total = 0;
    for (int64_t i = 0; i < cols; ++i) mx = std::max<double>(mx, s[r * cols + i]);
    for (int64_t i = 0; i < cols; ++i) total += std::exp(s[r * cols + i] - mx);
    for (int64_t i = 0; i < cols; ++i)
      REQUIRE(close(p[r * cols + i], std::exp(s[r * cols + i] - mx) / total, 1e-5, 1e-9));
  }
}

TEST_CASE("fp32: linear") {
  std::mt19937_64 rng(3);
  const int64_t rows = 5, in = 37, out = 19;
  auto x = random_floats(static_cast<size_t>(rows * in), rng),
       w = random_floats(static_cast<size_t>(out * in), rng);
  auto b = random_floats(static_cast<size_t>(out), rng);
  std::vector<float> y(static_cast<size_t>(rows * out));
  std::vector<float> wt(w.size());
  transpose(w.data(), out, in, wt.data());
  linear_fp32(x.data(), rows, in, wt.data(), b.data(), out, y.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double want = b[o];
      for (int64_t k = 0; k < in; ++k) want += double(x[r * in + k]) * w[o * in + k];
      REQUIRE(close(y[r * out + o], want, 1e-5, 1e-4));
    }
  }
}

TEST_CASE("fp32: softmax gives no denormal probabilities") {
  // Differences from the row's maximum around the underflow of exp (-87.3) and far below it.
  const std::vector<float> s = {0.0f, -50.0f, -86.9f, -87.1f, -87.5f, -88.0f, -100.0f, -1e30f, 3.0f, 2.5f};
  std::vector<float> p(s.size());
  softmax_rows(s.data(), 1, static_cast<int64_t>(s.size()), p.data());
  double total = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    INFO("entry " << i << " = " << p[i]);
    REQUIRE((p[i] == 0.0f || p[i] >= std::numeric_limits<float>::min()));
    total += p[i];
    double want = 0, denominator = 0;
    for (float v : s) denominator += std::exp(double(v) - 3.0);
    want = std::exp(double(s[i]) - 3.0) / denominator;
    REQUIRE(std::fabs(p[i] - want) <= 1e-6 * want + 1.2e-38);
  }
  REQUIRE(std::fabs(total - 1.0) < 1e-6);
}

TEST_CASE("fp32: 2x2 max pooling equals std::max folded over each window, bit for bit") {
  std::mt19937_64 rng(9);
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{2, 2}, {4, 9}, {7, 16}, {28, 28}, {5, 19}}) {
    const int64_t planes = 3, oh = h / 2, ow = w / 2;
    auto x = random_floats(static_cast<size_t>(planes * h * w), rng);
    // NaNs, infinities and signed zeros where the fold's order decides the result.
    x[0] = std::numeric_limits<float>::quiet_NaN();
    x[1] = -0.0f;
    x[static_cast<size_t>(w)] = 0.0f;
    x[x.size() - 1] = std::numeric_limits<float>::infinity();
    x[x.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> y(static_cast<size_t>(planes * oh * ow));
    max_pool2_fp32(x.data(), planes, h, w, y.data());
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          float acc = -std::numeric_limits<float>::infinity();
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx)
              acc = std::max(acc, x[(p * h + 2 * oy + dy) * w + 2 * ox + dx]);
          const float got = y[(p * oh + oy) * ow + ox];
          INFO(h << "x" << w << " plane " << p << " at " << oy << "," << ox);
          REQUIRE(std::memcmp(&got, &acc, sizeof got) == 0);
        }
  }
}
