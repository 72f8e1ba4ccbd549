// Evaluation of a LibTorch model on a split of its dataset, and its fp32 speed on this machine.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"
#include "runtime/exec/session.h"

namespace mighty::compress {

enum class Split { kTrain, kValidation, kTest, kCalibration };
const char* split_name(Split split);

// Classifiers: accuracy, loss (and with `detailed`, per-class accuracy and the confusion matrix).
// Language models: loss per character and bits per character, over non-overlapping windows of the context.
nlohmann::json evaluate_split(GraphModule& model, const Dataset& data, Split split, bool detailed = false);

// A model as a function from a batch (normalized NCHW images or ids [B, T]) to logits, called without
// gradients.
using Forward = std::function<torch::Tensor(const torch::Tensor&)>;
nlohmann::json evaluate_forward(const Forward& forward, const Dataset& data, Split split,
                                bool detailed = false);

// `forward` with its results remembered in call order: when the same inputs come again in the same order (the
// same split evaluated against several models), the remembered outputs are returned instead of recomputed.
Forward remembered(Forward forward);

// A runtime session as a Forward over LibTorch tensors (normalized NCHW floats, or int64 ids [B, T]); the
// session must outlive it.
Forward session_forward(const Session& s);

// How closely `student` follows `teacher` on a split: top-1 agreement and the mean KL(teacher || student) at
// temperature 1 (per example, or per character for language models).
nlohmann::json compare_models(const Forward& teacher, const Forward& student, const Dataset& data,
                              Split split);

// "accuracy 91.23%, loss 0.2451" or "bits/char 1.876, loss 1.3003".
std::string summarize_metrics(const nlohmann::json& metrics);

// The first `batch` test examples as a model takes them (normalized images, repeated when the split is
// shorter), or the test text's first context window repeated `batch` times.
torch::Tensor example_input(const Dataset& data, int64_t batch);

// Batch-1 latency (median and p99 of `latency_runs` timed forward passes after warm-up) and throughput at
// `throughput_batch`, in LibTorch fp32 with the current thread count.
nlohmann::json measure_speed(GraphModule& model, const Dataset& data, const EvalSpec& spec);
nlohmann::json measure_speed(const Forward& forward, const Dataset& data, const EvalSpec& spec);

// Batch-1 latency of two models timed alternately (a, b, a, b, ...), so both medians come from the same
// stretch of a shared, noisy machine: {a_ms, b_ms, ratio = a_ms / b_ms, runs}.
nlohmann::json paired_latency(const Forward& a, const Forward& b, const Dataset& data, int64_t runs);

// A test metrics object as one report cell: "92.43%" or "1.9613 bits/char".
std::string quality_cell(const nlohmann::json& metrics);

}  // namespace mighty::compress
