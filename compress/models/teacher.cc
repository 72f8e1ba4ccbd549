#include "compress/models/teacher.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compress/train/distributed.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace mighty::compress {

void save_weights(GraphModule& model, const std::string& path) {
  if (!dist::writes()) return;  // rank 0 writes the run's files
  torch::serialize::OutputArchive archive;
  model->save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

void load_weights(GraphModule& model, const std::string& path) {
  if (!dist::exists(path)) throw Error(fmt::format("{}: no trained weights", path));
  try {
    torch::serialize::InputArchive archive;
    std::istringstream bytes(dist::read_file(path));  // every rank loads rank 0's file
    archive.load_from(bytes);
    model->load(archive);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: weights do not load into this recipe's model: {}", path,
                            e.what_without_backtrace()));
  }
}

ZooTeacher::ZooTeacher(GraphModule model, std::string arch)
    : model_(std::move(model)), arch_(std::move(arch)) {
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
}

torch::Tensor ZooTeacher::logits(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return model_->forward(x);
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> ZooTeacher::logits_and_features(
    const torch::Tensor& x, const std::vector<int>& nodes) {
  torch::NoGradGuard no_grad;
  return model_->forward_capture(x, nodes);
}

namespace {

// A batch as the student sees it, as a teacher given as a file expects it: the student's normalization
// undone, the teacher's applied, the teacher's layout.
torch::Tensor teacher_input(const torch::Tensor& x, const TeacherInputSpec& input, double data_mean,
                            double data_std) {
  torch::Tensor in = ((x * data_std + data_mean) - input.mean) / input.std;
  if (input.layout == "nhwc") in = in.permute({0, 2, 3, 1}).contiguous();
  if (input.layout == "flat") in = in.flatten(1);
  return in;
}

}  // namespace

ImportedTeacher::ImportedTeacher(GraphModule model, std::string path, TeacherInputSpec input,
                                 const Dataset& data)
    : model_(std::move(model)), path_(std::move(path)), input_(std::move(input)) {
  model_->eval();
  if (data.kind == "images") {
    data_mean_ = data.images.mean;
    data_std_ = data.images.std;
  }
}

torch::Tensor ImportedTeacher::adapt(const torch::Tensor& x) const {
  return teacher_input(x, input_, data_mean_, data_std_);
}

torch::Tensor ImportedTeacher::logits(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return model_->forward(adapt(x));
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> ImportedTeacher::logits_and_features(
    const torch::Tensor& x, const std::vector<int>& nodes) {
  torch::NoGradGuard no_grad;
  return model_->forward_capture(adapt(x), nodes);
}

TorchScriptTeacher::TorchScriptTeacher(const std::string& path, TeacherInputSpec input, const Dataset& data)
    : path_(path), input_(std::move(input)) {
  if (!std::filesystem::exists(path))
    throw Error(fmt::format("{}: TorchScript teacher file not found", path));
  try {
    module_ = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: not a loadable TorchScript module: {}", path, e.what_without_backtrace()));
  }
  module_.eval();
  for (const auto& p : module_.parameters()) {
    params_ += p.numel();
    bytes_ += p.numel() * static_cast<int64_t>(p.element_size());
  }
  for (const auto& b : module_.buffers()) bytes_ += b.numel() * static_cast<int64_t>(b.element_size());
  if (data.kind == "images") {
    data_mean_ = data.images.mean;
    data_std_ = data.images.std;
  }
}

torch::Tensor TorchScriptTeacher::logits(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const torch::Tensor in = input_.layout == "ids" ? x : teacher_input(x, input_, data_mean_, data_std_);
  c10::IValue out;
  try {
    out = module_.forward({in});
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: forward failed on input [{}] ({}): {}", path_, fmt::join(in.sizes(), ", "),
                            input_.layout, e.what()));
  }
  if (!out.isTensor()) {
    throw Error(fmt::format("{}: forward returned {}, expected a tensor of logits", path_, out.tagKind()));
  }
  return out.toTensor().to(torch::kFloat32);
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> TorchScriptTeacher::logits_and_features(
    const torch::Tensor& x, const std::vector<int>& nodes) {
  if (!nodes.empty()) throw Error(fmt::format("{}: a TorchScript teacher has no named layers", path_));
  return {logits(x), {}};
}

void check_teacher_output(Teacher& teacher, const Dataset& data) {
  torch::Tensor x;
  std::vector<int64_t> expected;
  if (data.classifies()) {
    x = normalize_images(data.images.train_x.slice(0, 0, 2), data.images.mean, data.images.std);
    expected = {x.size(0), data.classes()};
  } else {
    const int64_t ctx = data.text.context;
    x = data.text.train.slice(0, 0, 2 * ctx).view({2, ctx});
    expected = {2, ctx, data.classes()};
  }
  const auto out = teacher.logits(x);
  if (out.sizes().vec() != expected) {
    throw Error(fmt::format("teacher ({}): output has shape [{}] for a batch of {}, the task needs [{}] ({})",
                            teacher.describe(), fmt::join(out.sizes(), ", "), x.size(0),
                            fmt::join(expected, ", "),
                            data.classifies() ? "batch x classes" : "batch x context x vocabulary"));
  }
  if (!torch::isfinite(out).all().item<bool>()) {
    throw Error(fmt::format("teacher ({}): output is not finite", teacher.describe()));
  }
}

}  // namespace mighty::compress
