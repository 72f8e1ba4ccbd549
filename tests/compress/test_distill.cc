#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "compress/models/teacher.h"
#include "compress/passes/distill.h"
#include "compress/pipeline/jobs.h"
#include "compress/pipeline/pipeline.h"
#include "compress/recipe/recipe.h"
#include "compress/train/evaluate.h"
#include "helpers.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

std::string temp_dir(const std::string& name) { return testing::fresh_temp_dir("distill", name); }

// A data cache of the test's own, so the teacher cache starts empty.
std::string private_data_cache() {
  static const std::string dir = temp_dir("cache");
  return dir;
}

// A small slice of Fashion-MNIST with a CNN teacher trained for a few steps; `teacher` and `rest` are spliced
// in.
std::string recipe_text(const std::string& teacher, const std::string& rest) {
  return R"({
  "name": "distill_test", "seed": 7,
  "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 200,
           "normalize": {"mean": 0.286, "std": 0.353}},
  "teacher": )" +
         teacher + ",\n" + rest + "\n}";
}

const char* kZooTeacher = R"({"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}],
  "hidden": [32]}, "train": {"lr": 0.003, "batch_size": 64, "steps": 24}})";

std::string distill_stage(const std::string& extra = "") {
  return R"("student": {"model": {"arch": "cnn", "blocks": [{"channels": 4, "pool": "max"}]}},
  "stages": [{"kind": "distill", "alpha": 0.7, "temperature": 3, "baseline": true,
              "train": {"lr": 0.003, "batch_size": 64, "steps": 16})" +
         extra + "}]";
}

JobOptions quiet_options(const std::string& dir) {
  JobOptions o;
  o.out_dir = dir;
  o.measure_speed = false;
  o.quiet = true;
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// A TorchScript module defined from C++: flattened image -> `classes` logits through one linear map.
std::string write_torchscript_teacher(const std::string& dir, int64_t classes) {
  torch::jit::Module m("LinearTeacher");
  torch::manual_seed(3);
  m.register_parameter("weight", torch::randn({784, classes}) * 0.05, false);
  m.define(R"(
def forward(self, x):
    return torch.matmul(x, self.weight)
)");
  const std::string path = dir + "/teacher.pt";
  m.save(path);
  return path;
}

}  // namespace

TEST_CASE("distillation loss against a hand-computed case") {
  const auto s = torch::tensor({{1.0f, 2.0f, 3.0f}});
  const auto t = torch::tensor({{3.0f, 1.0f, 0.0f}});
  const auto y = torch::tensor({int64_t{2}});
  const double T = 2.0, alpha = 0.25;
  // By hand: softmax at temperature T, KL(p_t || p_s) * T^2, cross-entropy at T = 1.
  auto softmax = [](std::vector<double> z, double temp) {
    double sum = 0.0;
    for (auto& v : z) sum += (v = std::exp(v / temp));
    for (auto& v : z) v /= sum;
    return z;
  };
  const auto ps = softmax({1, 2, 3}, T), pt = softmax({3, 1, 0}, T);
  double kl = 0.0;
  for (int i = 0; i < 3; ++i) kl += pt[i] * std::log(pt[i] / ps[i]);
  const double ce = -std::log(softmax({1, 2, 3}, 1.0)[2]);
  const auto l = distillation_loss(s, t, y, alpha, T, 0.0);
  REQUIRE(l.soft.item<double>() == Approx(kl * T * T).epsilon(1e-5));
  REQUIRE(l.hard.item<double>() == Approx(ce).epsilon(1e-5));
  REQUIRE(l.total.item<double>() == Approx(alpha * kl * T * T + (1 - alpha) * ce).epsilon(1e-5));
}

TEST_CASE("distillation loss edge cases of T and alpha") {
  torch::manual_seed(1);
  const auto s = torch::randn({6, 5}), t = torch::randn({6, 5});
  const auto y = torch::randint(0, 5, {6}, torch::kInt64);
  const auto ce = torch::nn::functional::cross_entropy(s, y).item<double>();
  SECTION("alpha 0 is cross-entropy alone, alpha 1 the soft targets alone") {
    REQUIRE(distillation_loss(s, t, y, 0.0, 4.0, 0.0).total.item<double>() == Approx(ce));
    const auto l = distillation_loss(s, t, y, 1.0, 4.0, 0.0);
    REQUIRE(l.total.item<double>() == Approx(l.soft.item<double>()));
  }
  SECTION("identical logits have no soft-target loss at any temperature") {
    for (double T : {0.5, 1.0, 4.0, 100.0})
      REQUIRE(soft_target_loss(s, s, T).item<double>() == Approx(0).margin(1e-6));
  }
  SECTION("T = 1 is LibTorch's KL divergence; the loss is never negative") {
    const auto kl = torch::kl_div(torch::log_softmax(s, 1), torch::log_softmax(t, 1), at::Reduction::Sum,
                                  /*log_target=*/true) /
                    6.0;
    REQUIRE(soft_target_loss(s, t, 1.0).item<double>() == Approx(kl.item<double>()).epsilon(1e-5));
    for (double T : {0.1, 1.0, 10.0, 1000.0}) REQUIRE(soft_target_loss(s, t, T).item<double>() >= 0.0);
  }
  SECTION("language-model logits are compared per token") {
    const auto s3 = torch::randn({2, 3, 5}), t3 = torch::randn({2, 3, 5});
    REQUIRE(soft_target_loss(s3, t3, 2.0).item<double>() ==
            Approx(soft_target_loss(s3.reshape({6, 5}), t3.reshape({6, 5}), 2.0).item<double>()));
  }
}

TEST_CASE("feature terms project student widths onto the teacher's and train the projection") {
  torch::manual_seed(2);
  const auto s = torch::randn({4, 3, 6, 6}, torch::requires_grad());
  const auto t = torch::randn({4, 8, 3, 3});  // different width and resolution
  FeatureSpec f;
  f.teacher = "t";
  f.student = "s";
  using Features = std::vector<torch::Tensor>;
  using Specs = std::vector<FeatureSpec>;
  FeatureTerms terms(Specs{f}, Features{s}, Features{t}, "/stages/0/features");
  REQUIRE(terms->named_parameters().contains("proj0.weight"));
  REQUIRE(terms->named_parameters()["proj0.weight"].sizes() == torch::IntArrayRef({8, 3}));
  auto loss = terms->loss({s}, {t});
  loss.backward();
  REQUIRE(s.grad().abs().sum().item<double>() > 0);
  REQUIRE(terms->named_parameters()["proj0.weight"].grad().abs().sum().item<double>() > 0);
  // Same widths: no projection, and cosine of a tensor with itself is 0.
  f.loss = "cosine";
  FeatureTerms same(Specs{f}, Features{t}, Features{t}, "/x");
  REQUIRE(same->parameters().empty());
  REQUIRE(same->loss({t}, {t}).item<double>() == Approx(0).margin(1e-6));
  // Incompatible layouts are one clear error.
  REQUIRE_THROWS_WITH(
      FeatureTerms(Specs{f}, Features{torch::randn({4, 5})}, Features{t}, "/stages/0/features"),
      Catch::Contains("/stages/0/features/0") && Catch::Contains("student layer 's'"));
}

TEST_CASE("teacher logit cache: round trip, reopen, torn tail, other key") {
  const std::string dir = temp_dir("cache_file");
  const std::string path = dir + "/logits.bin";
  const auto a = torch::randn({3, 10}), b = torch::randn({2, 4, 7});
  {
    TeacherLogitCache c(path, "0123456789abcdef");
    REQUIRE_FALSE(c.get(0).has_value());
    c.put(0, a);
    c.put(5, b);
    REQUIRE(torch::equal(*c.get(0), a));
    REQUIRE(torch::equal(*c.get(5), b));
  }
  {
    TeacherLogitCache c(path, "0123456789abcdef");
    REQUIRE(c.records() == 2);
    REQUIRE(torch::equal(*c.get(5), b));
  }
  // An interrupted append leaves a torn record: it is cut off, the complete ones stay.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 9);
  {
    TeacherLogitCache c(path, "0123456789abcdef");
    REQUIRE(c.records() == 1);
    REQUIRE(torch::equal(*c.get(0), a));
    REQUIRE_FALSE(c.get(5).has_value());
    c.put(5, b);
    REQUIRE(torch::equal(*c.get(5), b));
  }
  {
    TeacherLogitCache c(path, "fedcba9876543210");  // another teacher or other batches: start over
    REQUIRE(c.records() == 0);
  }
}

TEST_CASE("a student derived from the teacher by width and depth") {
  ModelSpec t;
  t.arch = "cnn";
  for (int64_t c : {32, 32, 64, 64}) {
    CnnBlockSpec b;
    b.channels = c;
    t.blocks.push_back(b);
  }
  t.blocks[1].pool = t.blocks[3].pool = "max";
  t.hidden = {256};
  const auto s = derive_student(t, 0.25, 0.5);
  REQUIRE(s.blocks.size() == 2);  // one block per pooling stage, the pooling one kept
  REQUIRE(s.blocks[0].channels == 8);
  REQUIRE(s.blocks[0].pool == "max");
  REQUIRE(s.blocks[1].channels == 16);
  REQUIRE(s.hidden == std::vector<int64_t>{64});
  ModelSpec tr;
  tr.arch = "transformer";
  tr.d_model = 192;
  tr.heads = 4;
  tr.layers = 4;
  tr.ffn = 768;
  const auto st = derive_student(tr, 0.5, 0.75);
  REQUIRE(st.d_model == 96);
  REQUIRE(st.d_model % st.heads == 0);
  REQUIRE(st.ffn == 384);
  REQUIRE(st.layers == 3);
  ModelSpec mb;
  mb.arch = "mobilenet_v2";
  mb.width = 1.5;
  mb.stages = {{1, 16, 1, 1}, {6, 24, 4, 2}};
  const auto sm = derive_student(mb, 0.5, 0.5);
  REQUIRE(sm.width == 0.75);  // multipliers compound
  REQUIRE(sm.stages[0].blocks == 1);
  REQUIRE(sm.stages[1].blocks == 2);
  REQUIRE(sm.stages[1].expansion == 6);
}

TEST_CASE("zoo mobilenet_v2 and resnet recipes: stages read strictly, defaults resolved") {
  auto err = [](const std::string& text) { return error_of([&] { parse_recipe(text, "r.json"); }); };
  auto student = [](const std::string& model) {
    return recipe_text(kZooTeacher, R"("student": {"model": )" + model +
                                        R"(}, "stages": [{"kind": "distill", "train": {"steps": 1}}])");
  };
  REQUIRE_THAT(err(student(R"({"arch": "mobilenet_v2", "stages": [{"expansion": 4, "blocks": 2}]})")),
               Catch::Contains("/student/model/stages/0/channels: required integer is missing"));
  REQUIRE_THAT(err(student(R"({"arch": "resnet", "stages": [{"channels": 8, "expansion": 4}]})")),
               Catch::Contains("/student/model/stages/0/expansion: unknown key 'expansion'"));
  REQUIRE_THAT(err(student(R"({"arch": "resnet", "activation": "relu6"})")),
               Catch::Contains("/student/model/activation"));
  REQUIRE_THAT(err(student(R"({"arch": "mobilenet_v2", "stages": []})")),
               Catch::Contains("/student/model/stages: at least one stage"));
  const Recipe r = parse_recipe(student(R"({"arch": "mobilenet_v2", "width": 0.5})"), "r.json");
  REQUIRE(r.student.stages.size() == 7);  // torchvision's
  REQUIRE(r.student.last_channels == 1280);
  REQUIRE(r.student.activation == "relu6");
  const Recipe rn = parse_recipe(student(R"({"arch": "resnet"})"), "r.json");
  REQUIRE(rn.student.stages.size() == 3);
  REQUIRE(rn.student.stages[2].channels == 64);
}

TEST_CASE("distill recipes: student and stages are read strictly") {
  auto err = [](const std::string& text) { return error_of([&] { parse_recipe(text, "r.json"); }); };
  REQUIRE_THAT(err(recipe_text(kZooTeacher, R"("stages": [])")), Catch::Contains("no error"));
  REQUIRE_THAT(err(recipe_text(kZooTeacher, R"("stages": [{"kind": "distill", "train": {"steps": 1}}])")),
               Catch::Contains("/stages: the stages need a 'student'"));
  REQUIRE_THAT(err(recipe_text(kZooTeacher, distill_stage(R"(, "temperature": 0)"))),
               Catch::Contains("/stages/0/temperature: duplicated key"));
  REQUIRE_THAT(err(recipe_text(kZooTeacher, distill_stage(R"(, "repeats": 0)"))),
               Catch::Contains("/stages/0/repeats: 0 is outside"));
  REQUIRE_THAT(err(recipe_text(kZooTeacher, distill_stage(R"(, "kind": "prune")"))),
               Catch::Contains("/stages/0/kind: duplicated key"));
  const std::string ts = R"({"torchscript": "t.pt", "input": {"layout": "flat"}})";
  REQUIRE_THAT(err(recipe_text(ts, distill_stage(R"(, "features": [{"teacher": "a", "student": "b"}])"))),
               Catch::Contains("/stages/0/features: feature distillation needs a zoo teacher"));
  REQUIRE_THAT(err(recipe_text(ts, R"("student": {"from_teacher": {"width": 0.5}})")),
               Catch::Contains("/student/from_teacher: a teacher given as a file has no zoo spec"));
  REQUIRE_THAT(err(recipe_text(R"({"model": {"arch": "mlp", "hidden": [4]}})", "\"eval\": {}")),
               Catch::Contains("/teacher: the teacher needs 'train'"));
  REQUIRE_THAT(err(recipe_text(R"({"torchscript": "t.pt", "input": {"layout": "nhwc2"}})", "\"eval\": {}")),
               Catch::Contains("/teacher/input/layout: 'nhwc2' is not one of"));
  // The resolved recipe round-trips, stages included.
  const Recipe r = parse_recipe(recipe_text(kZooTeacher, distill_stage()), "r.json");
  REQUIRE(parse_recipe(r.to_json().dump(), "again.json").hash() == r.hash());
  // The teacher's identity ignores the stages: recipes that share a teacher share its cache.
  const Recipe other = parse_recipe(recipe_text(kZooTeacher, distill_stage(R"(, "repeats": 2)")), "r.json");
  REQUIRE(other.hash() != r.hash());
  REQUIRE(other.teacher_hash() == r.teacher_hash());
}

TEST_CASE("compress runs a distill stage with a baseline, and the teacher is trained once and cached") {
  const testing::ScopedEnv data_cache("MIGHTY_DATA", private_data_cache());
  const Recipe recipe = parse_recipe(recipe_text(kZooTeacher, distill_stage()), "r.json");
  const std::string dir = temp_dir("zoo");
  const auto report = run_compress(recipe, quiet_options(dir));
  REQUIRE(report["completed"] == true);
  REQUIRE(report["teacher"]["cached"] == false);
  const auto& stage = report["stages"][0];
  REQUIRE(stage["runs"].size() == 2);
  REQUIRE(stage["runs"][0]["kind"] == "distilled");
  REQUIRE(stage["runs"][1]["kind"] == "scratch");
  REQUIRE(stage.contains("gain"));
  for (const auto& r : stage["runs"]) {
    REQUIRE(r["test"]["accuracy"].get<double>() > 0.2);  // 10 classes: well above chance after 16 steps
    REQUIRE(r["vs_teacher"]["agreement"].get<double>() > 0.0);
  }
  const auto& models = report["models"];
  REQUIRE(models.size() == 3);
  REQUIRE(models[0]["role"] == "teacher");
  REQUIRE(models[2]["role"] == "student_fp32");
  REQUIRE(models[2]["params"].get<int64_t>() < models[0]["params"].get<int64_t>());
  for (const char* f : {"report.json", "report.md", "student.pt", "student.graph.json", "recipe.json"}) {
    REQUIRE(std::filesystem::exists(dir + "/" + f));
  }
  REQUIRE_THAT(read_file(dir + "/report.md"), Catch::Contains("gain of distillation over scratch"));

  // The same teacher in another recipe comes from the cache; with the teacher fixed, distillation is
  // deterministic.
  const auto again = run_compress(recipe, quiet_options(temp_dir("zoo_again")));
  REQUIRE(again["teacher"]["cached"] == true);
  REQUIRE(again["stages"][0]["runs"][0]["test"] == stage["runs"][0]["test"]);
}

TEST_CASE("gradients reach only the student, and an interrupted stage resumes to the same result") {
  const testing::ScopedEnv data_cache("MIGHTY_DATA", private_data_cache());
  {
    ModelSpec spec;
    spec.arch = "mlp";
    spec.hidden = {16};
    spec.input_shape = {1, 4, 4};
    spec.classes = 3;
    torch::manual_seed(1);
    ZooTeacher teacher(GraphModule(build_graph(spec)), "mlp");
    GraphModule student(build_graph(spec));
    const auto x = torch::randn({5, 1, 4, 4});
    const auto y = torch::randint(0, 3, {5}, torch::kInt64);
    distillation_loss(student->forward(x), teacher.logits(x), y, 0.5, 2.0, 0.0).total.backward();
    for (const auto& p : teacher.module()->parameters()) {
      REQUIRE_FALSE(p.requires_grad());
      REQUIRE_FALSE(p.grad().defined());
    }
    for (const auto& p : student->parameters()) REQUIRE(p.grad().abs().sum().item<double>() > 0);
    REQUIRE_FALSE(teacher.module()->is_training());
  }
  const Recipe recipe =
      parse_recipe(recipe_text(kZooTeacher, distill_stage(R"(, "teacher_cache": true)")), "r.json");
  // An uninterrupted run first (it also trains the teacher into the cache).
  const auto fresh = run_compress(recipe, quiet_options(temp_dir("fresh")));
  const std::string teacher_path = data_cache_dir() + "/teachers/" + recipe.teacher_hash() + "/teacher.pt";
  const std::string before = read_file(teacher_path);
  const std::string dir = temp_dir("resume");
  auto opts = quiet_options(dir);
  opts.stop_after_steps = 5;
  REQUIRE(run_compress(recipe, opts)["completed"] == false);
  opts.stop_after_steps = 0;
  opts.resume = true;
  const auto resumed = run_compress(recipe, opts);
  REQUIRE(resumed["completed"] == true);
  REQUIRE(read_file(teacher_path) == before);  // distillation never changes the teacher
  REQUIRE(resumed["stages"][0]["runs"][0]["test"] == fresh["stages"][0]["runs"][0]["test"]);
  // The interrupted run stopped before its first checkpoint (end of epoch 1, step 8), so the resumed one
  // started over: the teacher's logits of steps 0-4 came from the cache, the other 11 were computed.
  const auto& cache = resumed["stages"][0]["runs"][0]["teacher_cache"];
  REQUIRE(cache["hits"] == 5);
  REQUIRE(cache["misses"] == 11);
}

TEST_CASE("feature distillation between layers of different widths") {
  const testing::ScopedEnv data_cache("MIGHTY_DATA", private_data_cache());
  const Recipe recipe =
      parse_recipe(recipe_text(kZooTeacher, distill_stage(R"(, "features": [{"teacher": "features.0.act",
        "student": "features.0.act", "loss": "mse", "weight": 0.5}])")),
                   "r.json");
  const auto report = run_compress(recipe, quiet_options(temp_dir("features")));
  REQUIRE(report["stages"][0]["features"] == 1);
  REQUIRE(report["stages"][0]["runs"][0]["test"]["accuracy"].get<double>() > 0.2);
  const Recipe bad =
      parse_recipe(recipe_text(kZooTeacher, distill_stage(R"(, "features": [{"teacher": "features.9.act",
        "student": "features.0.act"}])")),
                   "r.json");
  REQUIRE_THAT(error_of([&] { run_compress(bad, quiet_options(temp_dir("bad_features"))); }),
               Catch::Contains("/stages/0/features/0/teacher: the teacher has no layer 'features.9.act'"));
}

TEST_CASE("a TorchScript teacher drives a distillation, and a mismatched output is a clear error") {
  const testing::ScopedEnv data_cache("MIGHTY_DATA", private_data_cache());
  const std::string dir = temp_dir("torchscript");
  const std::string ts = write_torchscript_teacher(dir, 10);
  const std::string teacher = R"({"torchscript": ")" + ts + R"(", "input": {"layout": "flat",
      "normalize": {"mean": 0.0, "std": 1.0}}})";
  const Recipe recipe = parse_recipe(recipe_text(teacher, distill_stage()), "r.json");
  const auto report = run_compress(recipe, quiet_options(dir + "/run"));
  REQUIRE(report["teacher"]["source"] == "torchscript");
  REQUIRE(report["models"][0]["params"] == 7840);
  REQUIRE(report["stages"][0]["runs"][0]["vs_teacher"]["agreement"].get<double>() > 0.0);

  const std::string wrong = write_torchscript_teacher(temp_dir("torchscript_wrong"), 7);
  const std::string teacher7 = R"({"torchscript": ")" + wrong + R"(", "input": {"layout": "flat"}})";
  const Recipe bad = parse_recipe(recipe_text(teacher7, distill_stage()), "r.json");
  REQUIRE_THAT(error_of([&] { run_compress(bad, quiet_options(dir + "/bad")); }),
               Catch::Contains("output has shape [2, 7]") && Catch::Contains("the task needs [2, 10]"));
  const std::string nchw = R"({"torchscript": ")" + ts + R"(", "input": {"layout": "nchw"}})";
  REQUIRE_THAT(error_of([&] {
                 run_compress(parse_recipe(recipe_text(nchw, distill_stage()), "r.json"),
                              quiet_options(dir + "/bad2"));
               }),
               Catch::Contains("forward failed on input [2, 1, 28, 28] (nchw)"));
  const std::string missing = R"({"torchscript": "/nonexistent/t.pt"})";
  REQUIRE_THAT(error_of([&] {
                 run_compress(parse_recipe(recipe_text(missing, distill_stage()), "r.json"),
                              quiet_options(dir + "/bad3"));
               }),
               Catch::Contains("/nonexistent/t.pt: TorchScript teacher file not found"));
}

TEST_CASE("a remembered forward computes each batch of a split once however often it is compared") {
  int calls = 0;
  const Forward f = remembered([&](const torch::Tensor& x) {
    ++calls;
    return x * 2;
  });
  const std::vector<torch::Tensor> batches = {torch::ones({2, 3}), torch::zeros({2, 3}),
                                              torch::full({1, 3}, 5.0)};
  for (int pass = 0; pass < 3; ++pass) {
    for (const auto& b : batches) REQUIRE(torch::equal(f(b), b * 2));
  }
  REQUIRE(calls == 3);
  REQUIRE(torch::equal(f(torch::full({2, 3}, 7.0)), torch::full({2, 3}, 14.0)));  // other inputs are computed
  REQUIRE(calls == 4);
}

TEST_CASE("mixup: deterministic mixed batches, and a stage that trains both runs on them") {
  const auto x = torch::arange(4 * 3, torch::kFloat32).reshape({4, 1, 1, 3});
  const auto y = torch::tensor({0, 1, 2, 3}, torch::kInt64);
  const auto a = mix_batch(x, y, 0.4, 7, 12), b = mix_batch(x, y, 0.4, 7, 12),
             c = mix_batch(x, y, 0.4, 7, 13);
  REQUIRE(torch::equal(a.x, b.x));
  REQUIRE(a.lambda == b.lambda);
  REQUIRE((a.lambda != c.lambda || !torch::equal(a.y2, c.y2)));
  REQUIRE(a.lambda >= 0.0);
  REQUIRE(a.lambda <= 1.0);
  // Each mixed row is lambda * its own row + (1 - lambda) * the row its second label came from.
  for (int64_t i = 0; i < 4; ++i) {
    const auto expect = x[i] * a.lambda + x[a.y2[i].item<int64_t>()] * (1.0 - a.lambda);
    REQUIRE(torch::allclose(a.x[i], expect));
  }
  const testing::ScopedEnv data_cache("MIGHTY_DATA", private_data_cache());
  const Recipe recipe = parse_recipe(recipe_text(kZooTeacher, distill_stage(R"(, "mixup": 0.4)")), "r.json");
  REQUIRE(recipe.stages[0].get<DistillSpec>().mixup == 0.4);
  const auto mixed = run_compress(recipe, quiet_options(temp_dir("mixup")));
  const auto plain = run_compress(parse_recipe(recipe_text(kZooTeacher, distill_stage()), "r.json"),
                                  quiet_options(temp_dir("nomixup")));
  for (int run = 0; run < 2; ++run) {  // distilled and scratch both see other batches than without mixup
    INFO("run " << run);
    REQUIRE(mixed["stages"][0]["runs"][run]["history"] != plain["stages"][0]["runs"][run]["history"]);
  }
}
