// Activation (de)quantization: every path equals the scalar definition, byte for byte.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "guarded_buffer.h"
#include "kernels/quantize.h"

using namespace mighty::kernels;
using mighty::testing::GuardedBuffer;

namespace {

std::vector<Isa> paths() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni}) {
    if (cpu_features().supports(isa))
      out.push_back(isa);
    else
      WARN("SKIPPING path " << isa_name(isa) << ": this CPU lacks it");
  }
  return out;
}

// Values that stress rounding: exact halves, integers, large magnitudes and plain random ones.
float tricky(std::mt19937_64& rng, float inv_scale) {
  switch (rng() % 5) {
    case 0:
      return (static_cast<float>(static_cast<int>(rng() % 600) - 300) + 0.5f) / inv_scale;
    case 1:
      return static_cast<float>(static_cast<int>(rng() % 600) - 300) / inv_scale;
    case 2:
      return (rng() & 1 ? 1e30f : -1e30f);
    default:
      return std::ldexp(static_cast<float>(static_cast<int>(rng() % 20001) - 10000), -8);
  }
}

}  // namespace

TEST_CASE("quantize: the scalar definition") {
  REQUIRE(quantize_value(2.5f, 1.0f, 0) == 2);  // half to even
  REQUIRE(quantize_value(3.5f, 1.0f, 0) == 4);
  REQUIRE(quantize_value(-1.0f, 1.0f, 10) == 9);
  REQUIRE(quantize_value(1e30f, 1.0f, 10) == 255);
  REQUIRE(quantize_value(-1e30f, 1.0f, 10) == 0);
  REQUIRE(quantize_value(std::numeric_limits<float>::quiet_NaN(), 1.0f, 10) == 0);
  const QuantParams p = choose_quant_params(-1.0f, 3.0f);
  REQUIRE(p.scale == Approx(4.0f / 255.0f));
  REQUIRE(p.zero_point == 64);                               // round(1 / (4/255)) = round(63.75)
  REQUIRE(choose_quant_params(2.0f, 5.0f).zero_point == 0);  // range extended to include 0
  REQUIRE(choose_quant_params(-5.0f, -2.0f).zero_point == 255);
  REQUIRE(choose_quant_params(0.0f, 0.0f).scale == 1.0f);
  // Zero is exactly representable.
  REQUIRE(quantize_value(0.0f, 1.0f / p.scale, p.zero_point) == p.zero_point);
}

TEST_CASE("quantize: every path equals ref on every length") {
  std::mt19937_64 rng(12345);
  for (int64_t n = 0; n <= 100; ++n) {
    for (int32_t zp : {0, 1, 127, 128, 255}) {
      const float inv = 1.0f / std::ldexp(1.0f + static_cast<float>(rng() % 100) / 100.0f, -3);
      GuardedBuffer<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = tricky(rng, inv);
      if (n > 3) x[n / 2] = std::numeric_limits<float>::quiet_NaN();
      for (Isa isa : paths()) {
        GuardedBuffer<uint8_t> got(static_cast<size_t>(n));
        const QuantParams p{1.0f / inv, zp};
        quantize_rows(x.data(), 1, n, n, QuantParams{p.scale, zp}, got.data(), n, isa);
        // quantize_rows recomputes 1/scale; compare with the ref on the same inverse.
        GuardedBuffer<uint8_t> ref_same(static_cast<size_t>(n));
        quantize_rows(x.data(), 1, n, n, QuantParams{p.scale, zp}, ref_same.data(), n, Isa::kRef);
        INFO("n=" << n << " zp=" << zp << " path " << isa_name(isa));
        REQUIRE(std::memcmp(got.data(), ref_same.data(), static_cast<size_t>(n)) == 0);
      }
    }
  }
}

TEST_CASE("dequantize and dynamic rows: every path equals ref") {
  std::mt19937_64 rng(777);
  for (int64_t cols = 1; cols <= 70; cols += 3) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 4), ld = cols + static_cast<int64_t>(rng() % 3);
    GuardedBuffer<float> x(static_cast<size_t>((rows - 1) * ld + cols));
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = std::ldexp(static_cast<float>(static_cast<int>(rng() % 2001) - 700), -6);
    std::vector<uint8_t> q_ref(static_cast<size_t>(rows * ld), 0);
    std::vector<float> s_ref(static_cast<size_t>(rows));
    std::vector<int32_t> z_ref(static_cast<size_t>(rows));
    quantize_rows_dynamic(x.data(), rows, cols, ld, q_ref.data(), ld, s_ref.data(), z_ref.data(), Isa::kRef);
    GuardedBuffer<float> back_ref(static_cast<size_t>(cols));
    dequantize(q_ref.data(), cols, QuantParams{s_ref[0], z_ref[0]}, back_ref.data(), Isa::kRef);
    // Round trip within half a step.
    for (int64_t i = 0; i < cols; ++i) REQUIRE(std::fabs(back_ref[i] - x[i]) <= s_ref[0] * 0.5f + 1e-6f);
    for (Isa isa : paths()) {
      std::vector<uint8_t> q(static_cast<size_t>(rows * ld), 0);
      std::vector<float> s(static_cast<size_t>(rows));
      std::vector<int32_t> z(static_cast<size_t>(rows));
      quantize_rows_dynamic(x.data(), rows, cols, ld, q.data(), ld, s.data(), z.data(), isa);
      REQUIRE(q == q_ref);
      REQUIRE(s == s_ref);
      REQUIRE(z == z_ref);
      GuardedBuffer<float> back(static_cast<size_t>(cols));
      dequantize(q.data(), cols, QuantParams{s[0], z[0]}, back.data(), isa);
      REQUIRE(std::memcmp(back.data(), back_ref.data(), static_cast<size_t>(cols) * sizeof(float)) == 0);
    }
  }
}
