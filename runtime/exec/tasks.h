// What mighty-run does with a loaded artifact: evaluate it on a dataset, time it, classify inputs.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/exec/session.h"
#include "runtime/format/input_spec.h"

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

// Document classifiers over a corpus: every file below `dir` whose folder names one of the model's labels
// (the folder name contains it); a .json file is read as {"text": raw}, anything else as raw bytes. Accuracy,
// and for two classes the second class's precision and recall, end to end from the raw text.
nlohmann::json evaluate_documents(const Session& session, const std::string& dir, int64_t limit = 0);

// Softmax of one row of scores, in double precision. The confidence a cascade compares with its threshold is
// the top entry: verify chooses the threshold with it and mighty-run serve applies it, so both use this.
std::vector<double> softmax_probabilities(const float* scores, int64_t n);

// A cascade's answer for an example its student left (n classes each): with `blend` 0 the teacher's scores as
// they are; else scores whose softmax is blend * p_student + (1 - blend) * p_teacher (log-probabilities; a
// probability of 0 becomes the lowest float). Verify measures the cascade with it and mighty-run serve
// answers with it, so both use this.
std::vector<float> cascade_fallback_scores(const float* student, const float* teacher, int64_t n,
                                           double blend);

// What benchmark runs on: real examples, or (all empty) a synthetic input, labelled as such in the result.
struct BenchInputs {
  std::string images;    // IDX images (image models): run i takes image i mod N, a batch the first ones
  std::string text;      // a UTF-8 text file (language models): windows of the context, as for images
  std::string document;  // raw text of one document (document classifiers), timed end to end
};

// Batch-1 latency (median and p99 of `runs`) and throughput at `batch`. Document classifiers are timed end to
// end (email_text, tokenizer, model). Without inputs: constant 0.5 pixels, token ids 0, 1, 2, ... or a
// built-in sample email. The result's "input" says which.
nlohmann::json benchmark(const Session& session, const InputSpec& spec, int64_t runs, int64_t batch,
                         const BenchInputs& inputs = {});

}  // namespace mighty
