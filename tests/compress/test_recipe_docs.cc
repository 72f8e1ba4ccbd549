// docs/recipes.md against the stage registry: every key a stage resolves is documented under its heading,
// every documented key is real, and every documented default is the one the reader fills in.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "compress/pipeline/stages.h"
#include "compress/recipe/recipe.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

std::string read_docs() {
  std::ifstream in(std::string(MIGHTY_SOURCE_DIR) + "/docs/recipes.md");
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> cells(const std::string& row) {  // splits on '|' that are not escaped
  std::vector<std::string> out;
  std::string cell;
  for (size_t i = 1; i < row.size(); ++i) {
    if (row[i] == '|' && row[i - 1] != '\\') {
      out.push_back(cell);
      cell.clear();
    } else {
      cell += row[i];
    }
  }
  for (auto& c : out) c = std::regex_replace(c, std::regex("^ +| +$"), "");
  return out;
}

std::vector<std::string> split(const std::string& text, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0, at;
  while ((at = text.find(sep, start)) != std::string::npos) {
    out.push_back(text.substr(start, at - start));
    start = at + sep.size();
  }
  out.push_back(text.substr(start));
  return out;
}

// The key table right after `heading` (a whole line): key -> its default cell (a row naming several keys,
// "`n`, `m`" with "2, 4", gives each its own part).
std::map<std::string, std::string> doc_table(const std::string& docs, const std::string& heading) {
  const size_t at = docs.find("\n" + heading + "\n");
  INFO(heading);
  REQUIRE(at != std::string::npos);
  std::istringstream lines(docs.substr(at + heading.size() + 2));
  std::map<std::string, std::string> table;
  std::string line;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.rfind("#", 0) == 0) break;  // the next heading: a section without a table
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;
      continue;
    }
    in_table = true;
    const auto c = cells(line);
    if (c.size() < 3 || c[0] == "key" || c[0].rfind("---", 0) == 0) continue;
    std::vector<std::string> keys;
    const std::regex key_re("`([a-z_0-9]+)`");
    for (std::sregex_iterator it(c[0].begin(), c[0].end(), key_re), end; it != end; ++it)
      keys.push_back((*it)[1]);
    const auto defaults = split(c[2], ", ");
    for (size_t k = 0; k < keys.size(); ++k)
      table[keys[k]] = keys.size() == defaults.size() ? defaults[k] : c[2];
  }
  return table;
}

// A recipe around `stages` (a JSON list), read as mighty compress reads it.
nlohmann::json resolved_stages(const std::string& stages) {
  const std::string text = R"({"name": "t", "seed": 3, "data": {"kind": "images", "train_limit": 100},
    "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8}], "hidden": [16]}, "train": {"epochs": 1}},
    "student": {"model": {"arch": "cnn", "blocks": [{"channels": 4}], "hidden": [8]}},
    "stages": )" + stages + "}";
  return parse_recipe(text, "docs-test.json").to_json()["stages"];
}

bool readable(const std::string& stages) {
  try {
    resolved_stages(stages);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Checks a documented default against the value the reader resolved when the key was not given.
void check_default(const std::string& what, const std::string& documented, const nlohmann::json& value,
                   const std::map<std::string, nlohmann::json>& context) {
  INFO(what << ": documented '" << documented << "', resolved " << value.dump());
  std::string d = documented.substr(0, documented.find(" ("));
  d = std::regex_replace(d, std::regex("`"), "");
  if (auto it = context.find(what); it != context.end()) {  // a default that depends on the recipe
    REQUIRE(value == it->second);
  } else if (d == "off") {
    REQUIRE(value.is_number());
    REQUIRE(value.get<double>() <= 0.0);
  } else if (d == "[]") {
    REQUIRE(value == nlohmann::json::array());
  } else if (d == "{}") {
    REQUIRE(value.is_object());  // its keys' defaults are documented with it
  } else if (d == "true" || d == "false") {
    REQUIRE(value == (d == "true"));
  } else if (value.is_number()) {
    REQUIRE(std::abs(value.get<double>() - std::stod(d)) <= 1e-12 * std::max(1.0, std::abs(std::stod(d))));
  } else {
    REQUIRE(value.is_string());
    REQUIRE(value.get<std::string>() == d);
  }
}

struct Variant {
  std::string stages;  // a stage list with the stage under test at `index`
  size_t index;
  std::set<std::string> given;  // keys the variant sets (no default to compare)
};

void check_section(const std::string& docs, const std::string& heading, const std::vector<Variant>& variants,
                   const std::map<std::string, nlohmann::json>& context, const std::string& prefix,
                   const char* sub_object = nullptr) {
  const auto table = doc_table(docs, heading);
  std::set<std::string> resolved_keys;
  for (const Variant& v : variants) {
    INFO(heading << " with " << v.stages);
    nlohmann::json stage = resolved_stages(v.stages)[v.index];
    if (sub_object) stage = stage[sub_object];
    for (const auto& [key, value] : stage.items()) {
      if (key == "kind") continue;
      INFO("key " << key);
      REQUIRE(table.count(key) == 1);  // every resolved key is documented
      resolved_keys.insert(key);
      const std::string& doc = table.at(key);
      if (v.given.count(key) || doc.find("required") != std::string::npos) continue;
      check_default(prefix + key, doc, value, context);
    }
    // A documented "none" is a key the minimal variant does not resolve at all.
    for (const auto& [key, doc] : table) {
      if (doc == "none" && !v.given.count(key)) REQUIRE_FALSE(stage.contains(key));
    }
  }
  for (const auto& [key, doc] : table) {
    INFO(heading << ": documented key " << key);
    REQUIRE(resolved_keys.count(key) == 1);  // every documented key is real
  }
}

}  // namespace

TEST_CASE("docs/recipes.md documents every stage key of the registry, with the reader's defaults") {
  const std::string docs = read_docs();
  // Every registered kind has a section.
  for (const StageDef* def : stage_defs()) {
    INFO(def->kind);
    REQUIRE(docs.find(std::string("### `\"kind\": \"") + def->kind + "\"`") != std::string::npos);
  }
  const std::map<std::string, nlohmann::json> context = {
      {"distill/seed", 3},                 // the recipe's seed
      {"quantize/activations", "static"},  // images (dynamic for text)
      {"verify/threads", 0},               // the run's --threads
      {"verify/latency_runs", 0},          // eval.latency_runs
      {"train/weight_decay", 0.01},        // adamw (0 with sgd, below)
  };
  check_section(docs, "### `\"kind\": \"distill\"`",
                {{R"([{"kind": "distill", "train": {"epochs": 1}}])", 0, {"train"}}}, context, "distill/");
  check_section(docs, "### `\"kind\": \"prune\"`",
                {{R"([{"kind": "prune", "sparsity": 0.5}])", 0, {"sparsity"}},
                 {R"([{"kind": "prune", "method": "n:m"}])", 0, {"method"}},
                 {R"([{"kind": "prune", "method": "channels", "sparsity": 0.5, "train": {"epochs": 1},
                      "sensitivity": {}}])",
                  0,
                  {"method", "sparsity", "train", "sensitivity"}}},
                context, "prune/");
  check_section(docs, "### `\"kind\": \"quantize\"`", {{R"([{"kind": "quantize"}])", 0, {}}}, context,
                "quantize/");
  check_section(docs, "### `\"kind\": \"export\"`", {{R"([{"kind": "export"}])", 0, {}}}, context, "export/");
  check_section(docs, "### `\"kind\": \"verify\"`", {{R"([{"kind": "export"}, {"kind": "verify"}])", 1, {}}},
                context, "verify/");
  // The training schedule every training stage shares (documented once, under the teacher).
  check_section(docs, "## `teacher.train`",
                {{R"([{"kind": "distill", "train": {"epochs": 1}}])", 0, {"epochs"}},
                 {R"([{"kind": "distill", "train": {"steps": 5, "optimizer": "sgd", "schedule": "step",
                      "step_size": 2}}])",
                  0,
                  {"steps", "optimizer", "schedule", "step_size", "weight_decay"}}},
                context, "train/", "train");
  // Keys documented as required are: the stage is refused without them.
  REQUIRE_FALSE(readable(R"([{"kind": "distill"}])"));
  REQUIRE_FALSE(readable(R"([{"kind": "prune"}])"));
  REQUIRE_FALSE(readable(R"([{"kind": "distill", "train": {"optimizer": "sgd"}}])"));
  REQUIRE_FALSE(readable(R"([{"kind": "distill", "train": {"epochs": 1, "schedule": "step"}}])"));
  // sgd's own weight-decay default.
  REQUIRE(resolved_stages(
              R"([{"kind": "distill", "train": {"epochs": 1, "optimizer": "sgd"}}])")[0]["train"]
                                                                                     ["weight_decay"] == 0.0);
}
