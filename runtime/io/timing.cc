#include "runtime/io/timing.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace mighty {

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const auto last = static_cast<double>(values.size() - 1);
  return values[static_cast<size_t>(std::min(last, std::floor(q * last + 0.5)))];
}

nlohmann::json measure_latency(const std::function<void()>& run_one, const std::function<void()>& run_batch,
                               int64_t runs, int64_t batch, int warmup) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) run_one();
  std::vector<double> ms;
  for (int64_t i = 0; i < runs; ++i) {
    const auto t0 = clock::now();
    run_one();
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
  run_batch();
  std::vector<double> batch_s;
  double total = 0.0;
  while (batch_s.size() < 5 || (total < kThroughputSeconds && batch_s.size() < 10000)) {
    const auto t0 = clock::now();
    run_batch();
    batch_s.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    total += batch_s.back();
  }
  return {{"latency_ms_b1", percentile(ms, 0.5)},
          {"latency_ms_b1_p99", percentile(ms, 0.99)},
          {"throughput_per_s", static_cast<double>(batch) / percentile(batch_s, 0.5)},
          {"throughput_batch", batch},
          {"throughput_batches", batch_s.size()},
          {"latency_runs", runs}};
}

}  // namespace mighty
