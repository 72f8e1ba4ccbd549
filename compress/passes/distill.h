// Knowledge distillation: the loss, feature terms with learned projections, an on-disk cache of teacher
// logits, and the `distill` stage (distilled student, optional scratch baseline, several seeds).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compress/data/data.h"
#include "compress/models/teacher.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

// T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over rows (examples, or tokens for a
// language model: logits are flattened to [-1, classes]).
torch::Tensor soft_target_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                               double temperature);

// Cross-entropy with label smoothing over rows (examples, or tokens).
torch::Tensor hard_loss(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing);

struct DistillLoss {
  torch::Tensor total, soft, hard;
};
// alpha * soft_target_loss + (1 - alpha) * cross-entropy(labels, label_smoothing).
DistillLoss distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                              const torch::Tensor& labels, double alpha, double temperature,
                              double label_smoothing);

// The feature terms of a stage: node indices in both graphs and, where widths differ, a learned linear map
// from the student's channels to the teacher's (registered as proj<i>, trained with the student).
class FeatureTermsImpl : public torch::nn::Module {
 public:
  // `student_features` / `teacher_features`: one sample batch's outputs of the named layers (shapes decide
  // the projections). Errors name the recipe path of the offending term.
  FeatureTermsImpl(std::vector<FeatureSpec> specs, const std::vector<torch::Tensor>& student_features,
                   const std::vector<torch::Tensor>& teacher_features, const std::string& json_path);
  // Weighted sum of the terms.
  torch::Tensor loss(const std::vector<torch::Tensor>& student_features,
                     const std::vector<torch::Tensor>& teacher_features);

 private:
  std::vector<FeatureSpec> specs_;
  std::vector<torch::nn::Linear> projections_;  // null where the widths match
};
TORCH_MODULE(FeatureTerms);

// Index of the node called `name`, or an error naming the recipe path, the model and a few valid names.
int find_node(const Graph& graph, const std::string& name, const std::string& model,
              const std::string& json_path);

// Teacher logits by training step on disk: one append-only file of checksummed records. Only the index of
// records is held in memory; a torn or corrupt tail (an interrupted run) is cut off when the file is opened.
class TeacherLogitCache {
 public:
  // `key` identifies the teacher and the batches (teacher, data, seed, batch size); a file with another key
  // is replaced.
  TeacherLogitCache(std::string path, std::string key);
  ~TeacherLogitCache();
  TeacherLogitCache(const TeacherLogitCache&) = delete;
  TeacherLogitCache& operator=(const TeacherLogitCache&) = delete;

  std::optional<torch::Tensor> get(int64_t step);
  void put(int64_t step, const torch::Tensor& logits);
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  int64_t records() const { return static_cast<int64_t>(index_.size()); }

 private:
  struct Entry {
    int64_t offset;  // of the record's payload
    std::vector<int64_t> shape;
  };
  std::string path_;
  std::FILE* file_ = nullptr;
  std::map<int64_t, Entry> index_;
  int64_t end_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

// A logits cache in `dir` that runs with an equal `key` share (mighty tune's trials):
// <dir>/teacher_logits.<key>.bin.
std::unique_ptr<TeacherLogitCache> shared_logit_cache(const std::string& dir, const std::string& key);

// The teacher's logits of step `step`'s batch `x`: read from `cache` when it holds that step at this batch
// size, else computed (and stored in `cache`; null: no cache).
torch::Tensor teacher_logits(Teacher& teacher, const torch::Tensor& x, int64_t step,
                             TeacherLogitCache* cache);

// Mixup of a batch, deterministic in (seed, step): x = lambda x + (1 - lambda) x[perm] with lambda ~
// Beta(beta, beta); y2 = y[perm].
struct MixedBatch {
  torch::Tensor x, y2;
  double lambda = 1.0;
};
MixedBatch mix_batch(const torch::Tensor& x, const torch::Tensor& y, double beta, uint64_t seed,
                     int64_t step);

struct StageOptions {
  std::string dir;  // the stage's directory (created)
  bool resume = false;
  int64_t stop_after_steps = 0;  // stop the current training run after this many steps (tests)
  std::string identity;          // the recipe hash: checkpoints of another recipe are refused
  // Where a distilled run's teacher logits cache lives (teacher_cache): the stage's directory when empty;
  // runs that share the directory share the batches of equal keys (mighty tune's trials).
  std::string teacher_cache_dir;
};

// Runs a distill stage on the graph of `student`. For each seed: the distilled student (starting from
// `student`'s weights when `from_student`, else from the seed's initialization) and, with `baseline`, the
// same architecture trained from scratch, evaluated on the test split and compared with the teacher.
// `student` is left holding the first seed's distilled weights. Returns the stage report, or "completed":
// false when stopped.
nlohmann::json run_distill_stage(const Recipe& recipe, size_t stage_index, Teacher& teacher,
                                 const std::string& teacher_key, const Dataset& data, GraphModule& student,
                                 bool from_student, const StageOptions& options);

// The distill stage's section of report.md.
std::string distill_markdown(const nlohmann::json& stage);

}  // namespace mighty::compress
