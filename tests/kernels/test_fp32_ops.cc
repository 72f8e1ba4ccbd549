// fp32 Linear and pooling against double-precision references computed in the most direct way (the
// elementwise math: test_fp32_math.cc).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/fp32_math.h"
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

TEST_CASE("fp32: 2x2 max pooling equals std::max folded over each window, bit for bit, on every path") {
  std::mt19937_64 rng(9);
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{2, 2},
                             {4, 9},
                             {7, 16},
                             {28, 28},
                             {5, 19},
                             {14, 14},
                             {3, 13},
                             {2, 34},
                             {2, 64},
                             {4, 70}}) {
    const int64_t planes = 3, oh = h / 2, ow = w / 2;
    auto x = random_floats(static_cast<size_t>(planes * h * w), rng);
    // NaNs, infinities and signed zeros where the fold's order decides the result.
    x[0] = std::numeric_limits<float>::quiet_NaN();
    x[1] = -0.0f;
    x[static_cast<size_t>(w)] = 0.0f;
    x[x.size() - 1] = std::numeric_limits<float>::infinity();
    x[x.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    for (Isa isa : kAllIsas) {
      if (!cpu_features().supports(isa)) continue;
      // One float of slack after the outputs, which no path may write.
      std::vector<float> y(static_cast<size_t>(planes * oh * ow + 1), 7.0f);
      fp32_math(isa).max_pool2(x.data(), planes, h, w, y.data());
      REQUIRE(y.back() == 7.0f);
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            float acc = -std::numeric_limits<float>::infinity();
            for (int64_t dy = 0; dy < 2; ++dy)
              for (int64_t dx = 0; dx < 2; ++dx)
                acc = std::max(acc, x[(p * h + 2 * oy + dy) * w + 2 * ox + dx]);
            const float got = y[(p * oh + oy) * ow + ox];
            INFO(isa_name(isa) << " " << h << "x" << w << " plane " << p << " at " << oy << "," << ox);
            REQUIRE(std::memcmp(&got, &acc, sizeof got) == 0);
          }
    }
  }
}
