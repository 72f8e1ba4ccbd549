// What mighty-run does with a loaded artifact: evaluate it on a dataset, time it, classify inputs.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/input_spec.h"
#include "runtime/session.h"

namespace mighty {

// Accuracy over an IDX image/label pair (plain or gzipped); `limit` > 0 evaluates only the first images.
nlohmann::json evaluate_images(const Session& session, const InputSpec& spec, const std::string& images,
                               const std::string& labels, int64_t limit = 0);
// Bits per character over non-overlapping windows of the context (as the training side evaluates).
nlohmann::json evaluate_text(const Session& session, const InputSpec& spec, const std::string& path,
                             int64_t limit = 0);
// Continues `prompt` by `count` characters with a causal language model, incrementally (key/value cache).
// temperature 0 is greedy; otherwise samples from softmax(logits / temperature) over the top_k most likely
// characters (0 = all), with a generator seeded by `seed`. Fills `tokens_per_s` when given.
std::string generate(const Session& session, const InputSpec& spec, const std::string& prompt, int64_t count,
                     double temperature, int64_t top_k, uint64_t seed, double* tokens_per_s = nullptr);

// Batch-1 latency (median and p99 of `runs`) and throughput at `batch`, on a fixed input.
nlohmann::json benchmark(const Session& session, const InputSpec& spec, int64_t runs, int64_t batch);

}  // namespace mighty
