#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "compress/recipe/json_source.h"
#include "compress/recipe/recipe.h"
#include "helpers.h"
#include "runtime/error.h"

using namespace mighty;
using namespace mighty::compress;
using namespace mighty::compress::testing;

namespace {

// A valid recipe whose train object's body and extra top-level text can be swapped in.
std::string recipe_text(const std::string& train = R"("epochs": 2)", const std::string& extra = "") {
  return R"({
  "name": "t",
  "seed": 3,
  "data": {"kind": "images", "train_limit": 100},
  "teacher": {
    "model": {"arch": "mlp", "hidden": [32]},
    "train": {)" +
         train + R"(}
  })" + extra +
         R"(
})";
}

}  // namespace

TEST_CASE("a valid recipe resolves every default") {
  const Recipe r = parse_recipe(recipe_text(), "dir/t.json");
  REQUIRE(r.name == "t");
  REQUIRE(r.seed == 3);
  REQUIRE(r.teacher.hidden == std::vector<int64_t>{32});
  REQUIRE(r.teacher_train.optimizer == "adamw");
  REQUIRE(r.teacher_train.batch_size == 64);
  REQUIRE(r.data.images.validation_size == 5000);
  const auto j = r.to_json();
  REQUIRE(j["teacher"]["train"]["schedule"] == "cosine");
  REQUIRE(j["data"]["augment"]["crop_padding"] == 0);
  REQUIRE(r.hash().size() == 16);
  // Defaults written out explicitly give the same resolved recipe and hash.
  const Recipe again =
      parse_recipe(recipe_text(R"("epochs": 2, "optimizer": "adamw", "batch_size": 64)"), "x.json");
  REQUIRE(again.hash() == r.hash());
  // A different value changes the hash.
  REQUIRE(parse_recipe(recipe_text(R"("epochs": 3)"), "x.json").hash() != r.hash());
}

TEST_CASE("the resolved recipe parses back to itself") {
  const Recipe r = parse_recipe(recipe_text(R"("steps": 10, "schedule": "step", "step_size": 5)"), "t.json");
  const Recipe back = parse_recipe(r.to_json().dump(2), "resolved.json");
  REQUIRE(back.hash() == r.hash());
}

TEST_CASE("recipe errors name the JSON path and line and column") {
  SECTION("unknown key") {
    const auto e = recipe_error(recipe_text(R"("epochs": 2, "learning_rate": 0.1)"));
    REQUIRE_THAT(e, Catch::Contains("test.json:7:") && Catch::Contains("/teacher/train/learning_rate") &&
                        Catch::Contains("unknown key"));
  }
  SECTION("unknown top-level key") {
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2)", R"(, "pruning": [])")),
                 Catch::Contains("/pruning: unknown key 'pruning'"));
  }
  SECTION("duplicated key") {
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2, "epochs": 3)")),
                 Catch::Contains("test.json:7:") && Catch::Contains("/teacher/train/epochs: duplicated key"));
  }
  SECTION("mistyped value") {
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2, "lr": "fast")")),
                 Catch::Contains("/teacher/train/lr: expected a number, found string \"fast\""));
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2.5)")),
                 Catch::Contains("/teacher/train/epochs: expected an integer"));
  }
  SECTION("out of range") {
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2, "lr": -1)")),
                 Catch::Contains("/teacher/train/lr: -1 is outside (0, 10]"));
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2, "label_smoothing": 1.0)")),
                 Catch::Contains("/teacher/train/label_smoothing: 1.0 is outside [0, 1)"));
  }
  SECTION("not one of the choices") {
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2, "optimizer": "adam")")),
                 Catch::Contains("/teacher/train/optimizer: 'adam' is not one of: adamw, sgd"));
  }
  SECTION("missing required") {
    REQUIRE_THAT(recipe_error(R"({"data": {"kind": "images"}})"),
                 Catch::Contains("/teacher: required object is missing"));
    REQUIRE_THAT(recipe_error(recipe_text("")),
                 Catch::Contains("/teacher/train: one of 'epochs' or 'steps' is required"));
  }
  SECTION("conflicting keys") {
    REQUIRE_THAT(recipe_error(recipe_text(R"("epochs": 2, "steps": 5)")),
                 Catch::Contains("/teacher/train/steps: give either 'epochs' or 'steps'"));
  }
  SECTION("list element") {
    const std::string bad =
        R"({"data": {"kind": "images"}, "teacher": {"model": {"arch": "mlp", "hidden": [8, -2]},
      "train": {"epochs": 1}}})";
    REQUIRE_THAT(recipe_error(bad), Catch::Contains("/teacher/model/hidden/1: -2 is outside"));
  }
  SECTION("syntax error") {
    REQUIRE_THAT(recipe_error("{\n  \"name\": \"x\",\n  \"seed\": ,\n}"),
                 Catch::Contains("test.json:3:") && Catch::Contains("invalid JSON"));
  }
  SECTION("heads must divide d_model") {
    const std::string bad =
        R"({"data": {"kind": "text", "path": "x.txt"}, "teacher": {"model": {"arch": "transformer",
      "d_model": 30, "heads": 4, "layers": 1}, "train": {"steps": 1}}})";
    REQUIRE_THAT(recipe_error(bad),
                 Catch::Contains("/teacher/model/heads: d_model 30 is not divisible by 4 heads"));
  }
  SECTION("quantize accuracy control") {
    auto with = [](const std::string& control) {
      return R"({"data": {"kind": "images"}, "teacher": {"model": {"arch": "mlp", "hidden": [4]},
        "train": {"epochs": 1}}, "stages": [{"kind": "quantize", "accuracy_control": )" +
             control + "}]}";
    };
    REQUIRE_THAT(recipe_error(with(R"({"fallback": "dynamic"})")),
                 Catch::Contains("/stages/0/accuracy_control/max_drop") && Catch::Contains("required"));
    REQUIRE_THAT(recipe_error(with(R"({"max_drop": 0.5, "fallback": "int4"})")),
                 Catch::Contains("/stages/0/accuracy_control/fallback: 'int4' is not one of: fp32, dynamic"));
    REQUIRE_THAT(recipe_error(with(R"({"max_drop": 0.5, "order": "random"})")),
                 Catch::Contains("/stages/0/accuracy_control/order: unknown key"));
  }
  SECTION("verify cascade_blend: a number in [0, 1] or \"auto\"") {
    auto with = [](const std::string& blend) {
      return R"({"data": {"kind": "images"}, "teacher": {"model": {"arch": "mlp", "hidden": [4]},
        "train": {"epochs": 1}}, "student": {"from_teacher": {}},
        "stages": [{"kind": "quantize"}, {"kind": "export"},
        {"kind": "verify", "cascade_blend": )" +
             blend + "}]}";
    };
    REQUIRE_THAT(
        recipe_error(with(R"("half")")),
        Catch::Contains("/stages/2/cascade_blend: expected a number in [0, 1] or \"auto\", found string "
                        "\"half\""));
    REQUIRE_THAT(recipe_error(with("1.5")),
                 Catch::Contains("/stages/2/cascade_blend: 1.5 is outside [0, 1]"));
    for (const char* ok : {R"("auto")", "0.25"}) {
      const Recipe r = parse_recipe(with(ok), "t.json");
      REQUIRE(parse_recipe(r.to_json().dump(2), "resolved.json").hash() == r.hash());
      REQUIRE(r.to_json()["stages"][2]["cascade_blend"] == nlohmann::json::parse(ok));
    }
  }
  SECTION("data and architecture must fit") {
    const std::string bad =
        R"({"data": {"kind": "text", "path": "x.txt"}, "teacher": {"model": {"arch": "mlp",
      "hidden": [4]}, "train": {"steps": 1}}})";
    REQUIRE_THAT(recipe_error(bad), Catch::Contains("/teacher/model/arch: text data needs a transformer"));
  }
}

TEST_CASE("missing recipe file is one clear error") {
  REQUIRE_THROWS_WITH(load_recipe("/nonexistent/recipe.json"), Catch::Contains("/nonexistent/recipe.json"));
}

TEST_CASE("json source records positions of nested values") {
  const auto src = parse_json_source("{\n  \"a\": {\n    \"b\": [1, 2]\n  }\n}", "p.json");
  REQUIRE(src.where("/a/b/1").rfind("p.json:3:", 0) == 0);
  REQUIRE(src.where("/a/missing").rfind("p.json:2:", 0) == 0);  // nearest located ancestor
  // Objects and arrays inside arrays are numbered from 0 like any other element.
  REQUIRE_THROWS_WITH(parse_json_source(R"({"a": [{"k": 1, "k": 2}]})", "q.json"),
                      Catch::Contains("/a/0/k: duplicated key"));
  REQUIRE_THROWS_WITH(parse_json_source(R"({"a": [[], {"k": 1, "k": 2}]})", "q.json"),
                      Catch::Contains("/a/1/k: duplicated key"));
}

TEST_CASE("data paths expand the data cache") {
  const testing::ScopedEnv data_cache("MIGHTY_DATA", "/tmp/mighty-data");
  REQUIRE(expand_data_path("$MIGHTY_DATA/kjv.txt") == "/tmp/mighty-data/kjv.txt");
  REQUIRE(expand_data_path("/abs/x.txt") == "/abs/x.txt");
}

TEST_CASE("every shipped recipe reads and resolves") {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(MIGHTY_SOURCE_DIR) + "/recipes")) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path().string());
    const Recipe r = load_recipe(entry.path().string());
    REQUIRE(!r.name.empty());
    REQUIRE(!r.hash().empty());
    ++count;
  }
  REQUIRE(count >= 8);
}

// Values of the wrong type, out of range or missing, anywhere in a real recipe: every shipped recipe with
// each of its values (objects and arrays included) replaced in turn by values of every JSON type, each key
// removed, and an unknown key added to each object. The reader either resolves the result (which then parses
// back to itself) or refuses it with one line naming the file; never another exception (a JSON library's
// type_error was the gap fuzzing found in artifact metadata).
TEST_CASE(
    "every value of every shipped recipe, replaced by each JSON type or removed: resolved or one line") {
  const std::vector<nlohmann::json> replacements = {"x",
                                                    -1,
                                                    0,
                                                    1,
                                                    2.5,
                                                    1e300,
                                                    -1e300,
                                                    true,
                                                    nullptr,
                                                    nlohmann::json::array(),
                                                    nlohmann::json::object(),
                                                    nlohmann::json::array({1, "a"})};
  int mutants = 0, resolved = 0;
  auto check = [&](const nlohmann::json& j, const std::string& what) {
    INFO(what);
    ++mutants;
    try {
      const Recipe r = parse_recipe(j.dump(1), "sweep.json");
      const Recipe back = parse_recipe(r.to_json().dump(1), "resolved.json");
      REQUIRE(back.hash() == r.hash());
      ++resolved;
    } catch (const Error& e) {
      const std::string message = e.what();
      INFO(message);
      REQUIRE(message.rfind("sweep.json:", 0) == 0);
      REQUIRE(message.find('\n') == std::string::npos);
    } catch (const std::exception& e) {
      FAIL("not a mighty::Error: " << e.what());
    }
  };
  for (const auto& entry : std::filesystem::directory_iterator(std::string(MIGHTY_SOURCE_DIR) + "/recipes")) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    const auto original = nlohmann::json::parse(in);
    const auto flat = original.flatten();  // leaves only; their parents are added below
    std::set<std::string> pointers;
    for (const auto& [leaf, value] : flat.items()) {
      for (auto p = nlohmann::json::json_pointer(leaf); !p.empty(); p = p.parent_pointer())
        pointers.insert(p.to_string());
    }
    for (const auto& pointer : pointers) {
      const nlohmann::json::json_pointer p(pointer);
      const std::string where = entry.path().filename().string() + " " + pointer;
      for (const auto& value : replacements) {
        nlohmann::json j = original;
        j[p] = value;
        check(j, where + " = " + value.dump());
      }
      nlohmann::json j = original;
      auto& container = j.at(p.parent_pointer());
      if (container.is_object()) {
        container.erase(p.back());
        check(j, where + " removed");
      } else if (container.is_array()) {
        container.erase(static_cast<size_t>(std::stoul(p.back())));
        check(j, where + " removed");
      }
      if (original.at(p).is_object()) {
        nlohmann::json k = original;
        k.at(p)["no_such_key"] = 1;
        check(k, where + " + no_such_key");
      }
    }
  }
  REQUIRE(mutants > 1000);
  REQUIRE(resolved > 0);
  REQUIRE(resolved < mutants);
}
