// Calibration observers: ranges of activations from min/max, a percentile, the least squared error, or the
// least KL divergence over a histogram.
#include <algorithm>
#include <cmath>
#include <limits>

#include "compress/passes/quantize.h"
#include "runtime/error.h"

namespace mighty::compress {

void RangeObserver::observe_range(const torch::Tensor& x) {
  const float lo = x.min().item<float>(), hi = x.max().item<float>();
  if (!std::isfinite(lo) || !std::isfinite(hi))
    throw Error("quantize: calibration met a non-finite activation");
  lo_ = std::min(seen_ ? lo_ : 0.0f, lo);
  hi_ = std::max(seen_ ? hi_ : 0.0f, hi);
  seen_ = true;
}

void RangeObserver::observe_histogram(const torch::Tensor& x) {
  if (hist_.empty()) hist_.assign(kBins, 0.0);
  if (hi_ <= lo_) {
    hist_[0] += static_cast<double>(x.numel());
    return;
  }
  const auto h =
      torch::histc(x.to(torch::kFloat32).flatten(), kBins, lo_, hi_).to(torch::kFloat64).contiguous();
  const double* d = h.data_ptr<double>();
  for (int64_t b = 0; b < kBins; ++b) hist_[b] += d[b];
}

double RangeObserver::bin_center(int64_t b) const {
  return lo_ + (static_cast<double>(b) + 0.5) * (static_cast<double>(hi_) - lo_) / kBins;
}

std::pair<float, float> RangeObserver::range(const std::string& method, double percentile) const {
  if (method == "minmax" || hi_ <= lo_ || hist_.empty()) return {lo_, hi_};
  const double width = (static_cast<double>(hi_) - lo_) / kBins;
  double total = 0.0;
  for (double v : hist_) total += v;
  if (method == "percentile") {
    // The value below which `percentile`% of the mass lies (and its mirror for the low end when negative).
    const double tail = total * (100.0 - percentile) / 100.0;
    double acc = 0.0;
    int64_t hi_bin = kBins - 1;
    for (; hi_bin > 0 && acc + hist_[hi_bin] <= tail; --hi_bin) acc += hist_[hi_bin];
    acc = 0.0;
    int64_t lo_bin = 0;
    for (; lo_bin < hi_bin && acc + hist_[lo_bin] <= tail; ++lo_bin) acc += hist_[lo_bin];
    const float lo = lo_ < 0 ? static_cast<float>(lo_ + lo_bin * width) : lo_;
    const float hi = static_cast<float>(lo_ + (hi_bin + 1) * width);
    return {std::min(lo, 0.0f), std::max(hi, 0.0f)};
  }
  // mse and entropy search the same candidates: the full range shrunk by a factor.
  double best = std::numeric_limits<double>::infinity();
  std::pair<float, float> best_range = {lo_, hi_};
  for (int step = 0; step <= 80; ++step) {
    const double f = 1.0 - step * 0.01;
    const double lo = lo_ * f, hi = hi_ * f;
    const double scale = (hi - lo) / 255.0;
    if (scale <= 0) continue;
    double cost = 0.0;
    if (method == "mse") {
      for (int64_t b = 0; b < kBins; ++b) {
        if (hist_[b] == 0) continue;
        const double x = bin_center(b);
        const double c = std::clamp(x, lo, hi);
        const double q = lo + std::nearbyint((c - lo) / scale) * scale;
        cost += hist_[b] * (x - q) * (x - q);
      }
    } else {
      // KL(P || Q): P is the histogram with the clipped mass moved to the edge bins of the range; Q spreads
      // each of the 256 levels' mass evenly over that level's non-empty bins.
      std::vector<double> p(kBins, 0.0);
      int64_t first = kBins, last = -1;
      for (int64_t b = 0; b < kBins; ++b) {
        const double x = bin_center(b);
        if (x >= lo && x <= hi) {
          first = std::min(first, b);
          last = std::max(last, b);
        }
      }
      if (last < first) continue;
      for (int64_t b = 0; b < kBins; ++b) p[std::clamp(b, first, last)] += hist_[b];
      std::vector<double> level_mass(256, 0.0), level_bins(256, 0.0);
      auto level = [&](int64_t b) {
        return std::clamp<int64_t>(static_cast<int64_t>((bin_center(b) - lo) / scale), 0, 255);
      };
      for (int64_t b = first; b <= last; ++b) {
        if (p[b] == 0) continue;
        level_mass[level(b)] += p[b];
        level_bins[level(b)] += 1;
      }
      for (int64_t b = first; b <= last; ++b) {
        if (p[b] == 0) continue;
        const double q = level_mass[level(b)] / level_bins[level(b)];
        cost += p[b] / total * std::log(p[b] / q);
      }
    }
    if (cost < best) {
      best = cost;
      best_range = {static_cast<float>(lo), static_cast<float>(hi)};
    }
  }
  return best_range;
}

}  // namespace mighty::compress
