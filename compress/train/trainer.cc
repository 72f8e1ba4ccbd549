#include "compress/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <array>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/progress.h"

namespace mighty::compress {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr uint64_t kAugmentStream = 2, kOrderStream = 3, kTextStream = 4;

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> params,
                                                        const TrainSpec& s) {
  if (s.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(s.lr)
                                                           .momentum(s.momentum)
                                                           .nesterov(s.nesterov)
                                                           .weight_decay(s.weight_decay));
  }
  return std::make_unique<torch::optim::AdamW>(
      params, torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).weight_decay(s.weight_decay));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

torch::Tensor string_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

std::string tensor_string(const torch::Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), static_cast<size_t>(t.numel()));
}

void save_checkpoint(const std::string& path, GraphModule& model, torch::nn::Module* extra,
                     torch::optim::Optimizer& opt, int64_t step, const TrainResult& result,
                     const std::string& identity) {
  if (!dist::writes()) return;
  torch::serialize::OutputArchive archive, model_archive, opt_archive, extra_archive;
  model->save(model_archive);
  if (extra) {
    extra->save(extra_archive);
    archive.write("extra", extra_archive);
  }
  opt.save(opt_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", opt_archive);
  archive.write("step", torch::tensor(step, torch::kInt64));
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state());
  archive.write("history", string_tensor(result.history.dump()));
  archive.write("identity", string_tensor(identity));
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

int64_t load_checkpoint(const std::string& path, GraphModule& model, torch::nn::Module* extra,
                        torch::optim::Optimizer& opt, TrainResult& result, const std::string& identity) {
  torch::serialize::InputArchive archive, model_archive, opt_archive, extra_archive;
  try {
    std::istringstream bytes(dist::read_file(path));  // every rank resumes from rank 0's file
    archive.load_from(bytes);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: not a readable checkpoint: {}", path, e.what_without_backtrace()));
  }
  torch::Tensor step, rng, history, stored_identity;
  try {
    archive.read("identity", stored_identity);
    if (tensor_string(stored_identity) != identity) {
      throw Error(fmt::format("{}: checkpoint belongs to another recipe (hash {}, this recipe {})", path,
                              tensor_string(stored_identity), identity));
    }
    archive.read("model", model_archive);
    archive.read("optimizer", opt_archive);
    archive.read("step", step);
    archive.read("rng", rng);
    archive.read("history", history);
    model->load(model_archive);
    if (extra) {
      archive.read("extra", extra_archive);
      extra->load(extra_archive);
    }
    opt.load(opt_archive);
  } catch (const c10::Error& e) {
    throw Error(fmt::format("{}: checkpoint is incomplete or does not match the model: {}", path,
                            e.what_without_backtrace()));
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng);
  result.history = nlohmann::json::parse(tensor_string(history));
  return step.item<int64_t>();
}

}  // namespace

double learning_rate(const TrainSpec& s, int64_t step, int64_t total) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return s.lr * static_cast<double>(step + 1) / s.warmup_steps;
  if (s.schedule == "constant") return s.lr;
  if (s.schedule == "step") {
    const int64_t decays = (step - s.warmup_steps) / s.step_size;
    return s.lr * std::pow(s.gamma, static_cast<double>(decays));
  }
  const int64_t span = std::max<int64_t>(total - s.warmup_steps, 1);
  const double progress = std::clamp(static_cast<double>(step - s.warmup_steps) / span, 0.0, 1.0);
  const double floor = s.lr * s.min_lr_ratio;
  return floor + (s.lr - floor) * 0.5 * (1.0 + std::cos(kPi * progress));
}

int64_t steps_per_epoch(const TrainSpec& spec, const Dataset& data) {
  if (data.classifies()) return (data.train_size() + spec.batch_size - 1) / spec.batch_size;
  // For text an epoch is as many windows as cover the training split once.
  return std::max<int64_t>(1, data.train_size() / (spec.batch_size * data.text.context));
}

int64_t total_steps(const TrainSpec& spec, const Dataset& data) {
  return spec.steps > 0 ? spec.steps : spec.epochs * steps_per_epoch(spec, data);
}

namespace {

// The part [begin, end) of step `step`'s batch (all of it: begin 0, end = batch size). Every sample's
// augmentation (or text window) is the one it gets in the whole batch, whichever rank draws it.
std::pair<torch::Tensor, torch::Tensor> batch_part(const TrainSpec& spec, const Dataset& data, uint64_t seed,
                                                   int64_t step, std::vector<int64_t>& order,
                                                   int64_t& order_epoch, std::pair<int64_t, int64_t> part) {
  const auto [begin, end] = part;
  if (data.kind == "text") {
    auto rng = make_rng(seed, kTextStream, static_cast<uint64_t>(step));
    rng.discard(static_cast<unsigned long long>(begin));  // one draw per window
    return sample_text_windows(data.text.train, data.text.context, end - begin, rng);
  }
  const int64_t per_epoch = steps_per_epoch(spec, data);
  const int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
  if (order_epoch != epoch) {
    auto rng = make_rng(seed, kOrderStream, static_cast<uint64_t>(epoch));
    order = permutation(data.train_size(), rng);
    order_epoch = epoch;
  }
  const int64_t lo = in_epoch * spec.batch_size + begin;
  const int64_t hi = std::min<int64_t>(in_epoch * spec.batch_size + end, data.train_size());
  auto idx = torch::from_blob(order.data() + lo, {std::max<int64_t>(hi - lo, 0)}, torch::kInt64);
  auto pixels = data.images.train_x.index_select(0, idx);
  auto rng = make_rng(seed, kAugmentStream, static_cast<uint64_t>(step));
  rng.discard(static_cast<unsigned long long>(
      begin * augment_draws_per_image(data.images.crop_padding, data.images.horizontal_flip)));
  pixels = augment_images(pixels, data.images.crop_padding, data.images.horizontal_flip, rng);
  return {normalize_images(pixels, data.images.mean, data.images.std),
          data.images.train_y.index_select(0, idx)};
}

// Samples in the batch of `step` (the last batch of an epoch of images can be short).
int64_t batch_samples(const TrainSpec& spec, const Dataset& data, int64_t step) {
  if (data.kind == "text") return spec.batch_size;
  const int64_t in_epoch = step % steps_per_epoch(spec, data);
  return std::min<int64_t>(spec.batch_size, data.train_size() - in_epoch * spec.batch_size);
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> training_batch(const TrainSpec& spec, const Dataset& data,
                                                       uint64_t seed, int64_t step) {
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  return batch_part(spec, data, seed, step, order, order_epoch, {0, spec.batch_size});
}

std::pair<torch::Tensor, torch::Tensor> training_batch_part(const TrainSpec& spec, const Dataset& data,
                                                            uint64_t seed, int64_t step, int64_t begin,
                                                            int64_t end) {
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  return batch_part(spec, data, seed, step, order, order_epoch, {begin, end});
}

namespace {

// This rank's loss on its part of the step's batch (`loss`, for backward) and its summed loss, correct
// predictions and samples (or tokens); zeros for an empty part.
std::array<double, 3> part_loss(GraphModule& model, const torch::Tensor& x, const torch::Tensor& y,
                                int64_t step, const TrainSpec& spec, const TrainOptions& options,
                                torch::Tensor& loss) {
  if (x.size(0) == 0) return {0.0, 0.0, 0.0};  // a rank's part of an epoch's short last batch can be empty
  torch::Tensor logits;
  if (options.objective) {
    std::tie(loss, logits) = options.objective(model, x, y, step);
  } else {
    logits = model->forward(x);
    loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(spec.label_smoothing));
  }
  auto flat_y = y.reshape({-1});
  const auto n = static_cast<double>(flat_y.size(0));
  return {loss.item<double>() * n,
          logits.reshape({-1, logits.size(-1)}).argmax(1).eq(flat_y).sum().item<double>(), n};
}

}  // namespace

TrainResult train_model(GraphModule& model, const TrainSpec& spec, const Dataset& data, uint64_t seed,
                        const TrainOptions& options) {
  TrainResult result;
  const int64_t per_epoch = steps_per_epoch(spec, data);
  const int64_t total = total_steps(spec, data);
  result.total_steps = total;
  std::vector<torch::Tensor> params = model->parameters();
  if (options.extra) {
    for (auto& p : options.extra->parameters()) params.push_back(p);
  }
  auto opt = make_optimizer(params, spec);
  torch::manual_seed(seed);

  int64_t step = 0;
  if (options.resume && !options.checkpoint_path.empty() && dist::exists(options.checkpoint_path)) {
    step =
        load_checkpoint(options.checkpoint_path, model, options.extra.get(), *opt, result, options.identity);
    fmt::print(stderr, "{}: resumed from {} at step {}/{}\n", options.label, options.checkpoint_path, step,
               total);
  }
  std::string last_checkpoint = step > 0 ? options.checkpoint_path : "none";
  // Data-parallel: every rank starts from rank 0's weights (the same seed gave them the same ones already).
  dist::broadcast_module(*model);
  if (options.extra) dist::broadcast_module(*options.extra);
  if (options.on_start) options.on_start(model, step);

  const auto start = std::chrono::steady_clock::now();
  Progress progress(options.label, total, "step");
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  double loss_sum = 0.0, correct = 0.0, seen = 0.0;
  const int64_t stop_at = options.stop_after_steps > 0 ? std::min(options.stop_after_steps, total) : total;

  for (; step < stop_at; ++step) {
    const int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
    // This rank's part of the step's batch (all of it in one process).
    auto [x, y] =
        batch_part(spec, data, seed, step, order, order_epoch, dist::shard(batch_samples(spec, data, step)));
    const double lr = learning_rate(spec, step, total);
    set_lr(*opt, lr);
    model->train();
    if (options.extra) options.extra->train();
    torch::Tensor loss;
    const auto [local_loss, local_correct, local_n] = part_loss(model, x, y, step, spec, options, loss);
    // Over all ranks: the batch's summed loss, correct predictions and samples (or tokens).
    const auto stats = dist::sum({local_loss, local_correct, local_n});
    const double n = stats[2];
    const double loss_value = stats[0] / n;
    if (!std::isfinite(loss_value)) {
      throw Error(fmt::format("{}: loss is {} at step {} (lr {:.3g}); last good checkpoint: {}",
                              options.label, loss_value, step, lr, last_checkpoint));
    }
    opt->zero_grad();
    if (local_n > 0) loss.backward();
    // Each rank's loss is the mean over its part: the batch's gradient is the parts' weighted sum.
    dist::allreduce_gradients(params, local_n / n);
    if (spec.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, spec.grad_clip);
    opt->step();
    if (options.after_step) options.after_step(model, step + 1);

    loss_sum += stats[0];
    correct += stats[1];
    seen += n;
    progress.update(step + 1, fmt::format("epoch {} loss {:.4f} acc {:.2f}%", epoch + 1, loss_sum / seen,
                                          100.0 * correct / seen));

    const bool epoch_end = in_epoch == per_epoch - 1 || step + 1 == total;
    const bool periodic = spec.checkpoint_every > 0 && (step + 1) % spec.checkpoint_every == 0;
    // BatchNorm's batch statistics are each rank's own; the running ones are averaged before they are used.
    if (epoch_end || periodic) dist::average_buffers(*model);
    if (epoch_end) {
      nlohmann::json entry = {{"epoch", epoch + 1},
                              {"step", step + 1},
                              {"lr", lr},
                              {"train_loss", loss_sum / seen},
                              {"train_accuracy", correct / seen}};
      entry["validation"] = evaluate_split(model, data, Split::kValidation);
      result.history.push_back(entry);
      progress.note(fmt::format("epoch {}: train loss {:.4f}, validation {}", epoch + 1, loss_sum / seen,
                                summarize_metrics(entry["validation"])));
      loss_sum = correct = seen = 0.0;
    }
    if (!options.checkpoint_path.empty() && (epoch_end || periodic)) {
      save_checkpoint(options.checkpoint_path, model, options.extra.get(), *opt, step + 1, result,
                      options.identity);
      last_checkpoint = options.checkpoint_path;
    }
  }
  progress.finish(step);
  dist::average_buffers(*model);
  result.steps_done = step;
  result.completed = step == total;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  model->eval();
  return result;
}

}  // namespace mighty::compress
