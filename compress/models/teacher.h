// Teachers from anywhere: a zoo model (trained by mighty or loaded from a checkpoint) or a TorchScript file.
// A teacher takes a batch exactly as the student sees it (normalized NCHW images or int64 ids [B, T]) and
// returns logits; it is always in eval mode and never records gradients.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"

namespace mighty::compress {

class Teacher {
 public:
  virtual ~Teacher() = default;
  virtual torch::Tensor logits(const torch::Tensor& x) = 0;
  // Logits and the outputs of the graph nodes `nodes` (zoo teachers only).
  virtual std::pair<torch::Tensor, std::vector<torch::Tensor>> logits_and_features(
      const torch::Tensor& x, const std::vector<int>& nodes) = 0;
  virtual const Graph* graph() const = 0;  // nullptr for TorchScript
  virtual int64_t parameter_count() const = 0;
  virtual int64_t fp32_bytes() const = 0;
  virtual std::string describe() const = 0;
  // While on, a teacher may answer an input it has seen before from memory (distillation on data that is not
  // augmented). Off for anything timed. No effect unless the teacher implements it.
  virtual void remember_outputs(bool on) { (void)on; }
};

class ZooTeacher : public Teacher {
 public:
  ZooTeacher(GraphModule model, std::string arch);
  torch::Tensor logits(const torch::Tensor& x) override;
  std::pair<torch::Tensor, std::vector<torch::Tensor>> logits_and_features(
      const torch::Tensor& x, const std::vector<int>& nodes) override;
  const Graph* graph() const override { return &model_->graph(); }
  int64_t parameter_count() const override { return model_->parameter_count(); }
  int64_t fp32_bytes() const override { return model_->fp32_bytes(); }
  std::string describe() const override { return "zoo " + arch_; }
  GraphModule& module() { return model_; }

 private:
  GraphModule model_;
  std::string arch_;
};

// Loads a TorchScript module from a path the user gave. TorchScript is code: it runs with the user's
// privileges, so mighty only loads files a recipe names.
class TorchScriptTeacher : public Teacher {
 public:
  TorchScriptTeacher(const std::string& path, TeacherInputSpec input, const Dataset& data);
  torch::Tensor logits(const torch::Tensor& x) override;
  std::pair<torch::Tensor, std::vector<torch::Tensor>> logits_and_features(
      const torch::Tensor& x, const std::vector<int>& nodes) override;
  const Graph* graph() const override { return nullptr; }
  int64_t parameter_count() const override { return params_; }
  int64_t fp32_bytes() const override { return bytes_; }
  std::string describe() const override { return "TorchScript " + path_; }

 private:
  std::string path_;
  torch::jit::Module module_;
  TeacherInputSpec input_;
  double data_mean_ = 0.0, data_std_ = 1.0;
  int64_t params_ = 0, bytes_ = 0;
};

// A teacher imported to the graph IR from a file (ONNX): its layers have names (feature distillation works),
// and its input normalization may differ from the student's (the recipe's teacher "input" block).
class ImportedTeacher : public Teacher {
 public:
  ImportedTeacher(GraphModule model, std::string path, TeacherInputSpec input, const Dataset& data);
  torch::Tensor logits(const torch::Tensor& x) override;
  std::pair<torch::Tensor, std::vector<torch::Tensor>> logits_and_features(
      const torch::Tensor& x, const std::vector<int>& nodes) override;
  const Graph* graph() const override { return &model_->graph(); }
  int64_t parameter_count() const override { return model_->parameter_count(); }
  int64_t fp32_bytes() const override { return model_->fp32_bytes(); }
  std::string describe() const override { return "ONNX " + path_; }

 private:
  torch::Tensor adapt(const torch::Tensor& x) const;

  GraphModule model_;
  std::string path_;
  TeacherInputSpec input_;
  double data_mean_ = 0.0, data_std_ = 1.0;
};

// Loads zoo weights saved by mighty (teacher.pt, student.pt); errors name the file.
void load_weights(GraphModule& model, const std::string& path);
void save_weights(GraphModule& model, const std::string& path);

// Checks the teacher's output against the task on one batch before any training: [B, classes] for images,
// [B, T, vocab] for text. The error names the teacher and both shapes.
void check_teacher_output(Teacher& teacher, const Dataset& data);

}  // namespace mighty::compress
