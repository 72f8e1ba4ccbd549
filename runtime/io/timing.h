// Latency and throughput measurement shared by the LibTorch side (mighty eval) and the runtime (mighty-run
// bench), so both report the same statistics the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

namespace mighty {

// The q-quantile (0..1) of `values`, nearest rank.
double percentile(std::vector<double> values, double q);

// After `warmup` calls of run_one, times `runs` calls of it (batch-1 latency: median and p99 in ms), then
// after one untimed call of run_batch times it for at least kThroughputSeconds and at least 5 calls (at most
// 10,000; throughput: `batch` examples over the median call). Inputs are prepared by the caller, outside the
// timed calls. Returns {latency_ms_b1, latency_ms_b1_p99, throughput_per_s, throughput_batch,
// throughput_batches, latency_runs}.
// How long throughput is timed at the least: a median over a few milliseconds of batches swung by a quarter
// between runs minutes apart on a shared machine.
inline constexpr double kThroughputSeconds = 0.2;
nlohmann::json measure_latency(const std::function<void()>& run_one, const std::function<void()>& run_batch,
                               int64_t runs, int64_t batch, int warmup = 10);

}  // namespace mighty
