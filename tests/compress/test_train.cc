#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>

#include "compress/data/data.h"
#include "compress/models/zoo.h"
#include "compress/recipe/recipe.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "helpers.h"
#include "runtime/error.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

// A small slice of the real Fashion-MNIST (installed by scripts/setup).
const Dataset& small_fashion_mnist() {
  static const Dataset data = testing::small_fashion_mnist(1024, 200, 500, 1000, /*augment=*/true, 5);
  return data;
}

GraphModule small_cnn(const Dataset& data, uint64_t seed) {
  ModelSpec s;
  s.arch = "cnn";
  CnnBlockSpec b;
  b.channels = 8;
  b.pool = "max";
  s.blocks = {b};
  s.hidden = {32};
  s.dropout = 0.2;
  s = fill_from_data(s, data, "/teacher/model");
  torch::manual_seed(seed);
  return GraphModule(build_graph(s));
}

TrainSpec short_schedule() {
  TrainSpec t;
  t.lr = 3e-3;
  t.batch_size = 64;
  t.epochs = 2;
  t.warmup_steps = 4;
  t.grad_clip = 5.0;
  return t;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mighty_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TrainOptions quiet(const std::string& checkpoint = "") {
  TrainOptions o;
  o.checkpoint_path = checkpoint;
  o.identity = "test";
  o.label = "test";
  return o;
}

}  // namespace

TEST_CASE("learning-rate schedules") {
  TrainSpec s;
  s.lr = 1.0;
  s.warmup_steps = 10;
  REQUIRE(learning_rate(s, 0, 110) == Approx(0.1));
  REQUIRE(learning_rate(s, 9, 110) == Approx(1.0));
  REQUIRE(learning_rate(s, 10, 110) == Approx(1.0));
  REQUIRE(learning_rate(s, 60, 110) == Approx(0.5));
  REQUIRE(learning_rate(s, 110, 110) == Approx(0.0).margin(1e-12));
  s.min_lr_ratio = 0.1;
  REQUIRE(learning_rate(s, 110, 110) == Approx(0.1));
  s.schedule = "step";
  s.step_size = 20;
  s.gamma = 0.5;
  REQUIRE(learning_rate(s, 29, 110) == Approx(1.0));
  REQUIRE(learning_rate(s, 30, 110) == Approx(0.5));
  REQUIRE(learning_rate(s, 70, 110) == Approx(0.125));
  s.schedule = "constant";
  REQUIRE(learning_rate(s, 70, 110) == Approx(1.0));
}

TEST_CASE("a short run on a small subset lowers the loss and beats chance") {
  setenv("MIGHTY_PROGRESS", "off", 1);
  torch::set_num_threads(2);
  const Dataset& data = small_fashion_mnist();
  auto model = small_cnn(data, 11);
  const double before = evaluate_split(model, data, Split::kTest)["loss"].get<double>();
  const auto result = train_model(model, short_schedule(), data, 11, quiet());
  REQUIRE(result.completed);
  REQUIRE(result.history.size() == 2);
  const auto after = evaluate_split(model, data, Split::kTest, /*detailed=*/true);
  INFO("test loss " << before << " -> " << after["loss"].get<double>());
  REQUIRE(after["loss"].get<double>() < 0.7 * before);
  REQUIRE(after["accuracy"].get<double>() > 0.6);
  REQUIRE(after["confusion"].size() == 10);
  REQUIRE(result.history[1]["train_loss"].get<double>() < result.history[0]["train_loss"].get<double>());
}

TEST_CASE("training is deterministic and resume gives the uninterrupted run's weights") {
  setenv("MIGHTY_PROGRESS", "off", 1);
  torch::set_num_threads(2);
  const Dataset& data = small_fashion_mnist();
  const TrainSpec spec = short_schedule();  // 2 epochs x 16 steps

  auto straight = small_cnn(data, 21);
  train_model(straight, spec, data, 21, quiet());
  auto again = small_cnn(data, 21);
  train_model(again, spec, data, 21, quiet());

  const std::string ckpt = temp_path("resume.pt");
  std::filesystem::remove(ckpt);
  TrainSpec periodic = spec;
  periodic.checkpoint_every = 5;
  auto interrupted = small_cnn(data, 21);
  auto opts = quiet(ckpt);
  opts.stop_after_steps = 23;  // mid-epoch; the last checkpoint is at step 20
  const auto first = train_model(interrupted, periodic, data, 21, opts);
  REQUIRE_FALSE(first.completed);
  REQUIRE(first.steps_done == 23);

  auto resumed = small_cnn(data, 999);  // different initial weights: all state must come from the checkpoint
  opts.stop_after_steps = 0;
  opts.resume = true;
  const auto second = train_model(resumed, periodic, data, 21, opts);
  REQUIRE(second.completed);
  REQUIRE(second.history.size() == 2);

  const auto a = straight->named_parameters(true), b = again->named_parameters(true),
             c = resumed->named_parameters(true);
  for (const auto& item : a) {
    INFO(item.key());
    REQUIRE(torch::equal(item.value(), b[item.key()]));
    REQUIRE(torch::equal(item.value(), c[item.key()]));
  }
  const auto buffers_a = straight->named_buffers(true), buffers_c = resumed->named_buffers(true);
  for (const auto& item : buffers_a) REQUIRE(torch::equal(item.value(), buffers_c[item.key()]));

  // A checkpoint from another recipe is refused.
  auto other = small_cnn(data, 21);
  auto foreign = quiet(ckpt);
  foreign.resume = true;
  foreign.identity = "another recipe";
  REQUIRE_THROWS_WITH(train_model(other, periodic, data, 21, foreign),
                      Catch::Contains("belongs to another recipe"));
  std::filesystem::remove(ckpt);
}

TEST_CASE("a non-finite loss stops the run naming the step and the last checkpoint") {
  setenv("MIGHTY_PROGRESS", "off", 1);
  const Dataset& data = small_fashion_mnist();
  auto model = small_cnn(data, 3);
  {
    torch::NoGradGuard no_grad;
    model->named_parameters(true)["out.bias"].fill_(std::numeric_limits<float>::quiet_NaN());
  }
  REQUIRE_THROWS_WITH(
      train_model(model, short_schedule(), data, 3, quiet()),
      Catch::Contains("loss is nan at step 0") && Catch::Contains("last good checkpoint: none"));
}

TEST_CASE("a corrupt checkpoint is a clear error") {
  const Dataset& data = small_fashion_mnist();
  const std::string ckpt = temp_path("corrupt.pt");
  {
    std::FILE* f = std::fopen(ckpt.c_str(), "wb");
    std::fputs("not a checkpoint", f);
    std::fclose(f);
  }
  auto model = small_cnn(data, 3);
  auto opts = quiet(ckpt);
  opts.resume = true;
  REQUIRE_THROWS_WITH(train_model(model, short_schedule(), data, 3, opts),
                      Catch::Contains("not a readable checkpoint"));
  std::filesystem::remove(ckpt);
}

TEST_CASE("the parts of a batch that data-parallel ranks train on make up the whole batch") {
  // Each rank draws its part of every step's batch; together the parts must be exactly the one-process
  // batch, augmentation and text windows included, or two ranks would not train what one rank does.
  const Dataset& images = small_fashion_mnist();
  REQUIRE(images.images.crop_padding > 0);
  Dataset text;
  text.kind = "text";
  text.text.context = 16;
  text.text.train = torch::arange(3000, torch::kInt64).remainder(61);
  TrainSpec spec = short_schedule();
  spec.batch_size = 37;
  for (const Dataset* data : {&images, static_cast<const Dataset*>(&text)}) {
    for (int64_t step : {0, 5, 27}) {  // 27: the short last batch of an epoch of 1024 images
      const auto whole = training_batch(spec, *data, 11, step);
      const int64_t n = whole.first.size(0);
      for (int64_t parts : {2, 3}) {
        std::vector<torch::Tensor> xs, ys;
        for (int64_t r = 0; r < parts; ++r) {
          auto [x, y] = training_batch_part(spec, *data, 11, step, n * r / parts, n * (r + 1) / parts);
          xs.push_back(x);
          ys.push_back(y);
        }
        INFO("kind " << data->kind << ", step " << step << ", parts " << parts);
        REQUIRE(torch::equal(torch::cat(xs), whole.first));
        REQUIRE(torch::equal(torch::cat(ys), whole.second));
      }
    }
  }
}
