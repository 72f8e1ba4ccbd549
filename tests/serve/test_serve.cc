// mighty-run serve without a network peer of its own: the micro-batcher, the request checks, the registry's
// reloads, and the HTTP server end to end on loopback (an httplib client in this process), on small models
// built here.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "../fuzz/predict_one.h"
#include "../fuzz/replay.h"
#include "runtime/format/artifact.h"
#include "runtime/graph/graph.h"
#include "runtime/io/atomic_file.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/protocol.h"
#include "serve/registry.h"
#include "serve/server.h"

using namespace mighty;
using namespace mighty::serve;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kPixels = 16;

// A 4x4 one-channel image classifier with three classes and random weights from `seed`.
std::string tiny_model(uint32_t seed, const nlohmann::json& extra = nlohmann::json::object()) {
  Graph g;
  int x = g.add("in", OpKind::kInput, {}, {{"shape", {1, 4, 4}}});
  x = g.add("flat", OpKind::kFlatten, {x});
  x = g.add("fc1", OpKind::kLinear, {x}, {{"in_features", kPixels}, {"out_features", 8}});
  x = g.add("relu", OpKind::kReLU, {x});
  g.add("fc2", OpKind::kLinear, {x}, {{"in_features", 8}, {"out_features", 3}});
  g.infer_shapes();
  nlohmann::json meta = {{"graph", g.to_json()},
                         {"input", {{"kind", "images"}, {"shape", {1, 4, 4}}, {"mean", 0.5}, {"std", 0.25}}},
                         {"labels", {"cat", "dog", "owl"}},
                         {"recipe_hash", "0123456789abcdef"}};
  for (const auto& [k, v] : extra.items()) meta[k] = v;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  ArtifactWriter w;
  w.set_metadata(meta);
  for (const auto& spec : g.all_tensors()) {
    std::vector<float> v(static_cast<size_t>(spec.numel()));
    for (float& f : v) f = u(rng);
    w.add_tensor(spec.name, TensorType::kFloat32, spec.shape, v.data());
  }
  return w.serialize();
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("mighty-serve-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> random_pixels(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> p(static_cast<size_t>(n * kPixels));
  for (auto& v : p) v = static_cast<uint8_t>(rng() & 0xff);
  return p;
}

// The model's outputs for pixels run alone (batch of their own).
std::vector<float> alone(const Session& s, const std::vector<uint8_t>& pixels) {
  const int64_t n = static_cast<int64_t>(pixels.size()) / kPixels;
  const auto x = s.input_spec().images(pixels.data(), n);
  return s.run(x.data(), n);
}

std::string b64(const std::vector<uint8_t>& bytes) { return encode_base64(bytes.data(), bytes.size()); }

}  // namespace

TEST_CASE("a batch of many requests gives each request exactly its own rows") {
  TempDir dir;
  write_file_atomic(dir.file("tiny.mighty"), tiny_model(1));
  QueueLimit limit(100000);
  Metrics metrics;
  Registry registry(dir.path.string(), {1, {8, std::chrono::microseconds(200)}}, limit, metrics);
  registry.poll();
  const auto m = registry.model("tiny");
  REQUIRE(m);
  std::atomic<int> mismatches{0}, batched{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&, t] {
      for (int r = 0; r < 40; ++r) {
        const int64_t n = 1 + (t * 7 + r) % 5;
        const auto pixels = random_pixels(n, static_cast<uint32_t>(t * 1000 + r));
        Job job;
        job.count = n;
        job.floats = m->input().images(pixels.data(), n);
        const JobResult got = m->batcher->submit(std::move(job)).get();
        if (got.outputs != alone(*m->session, pixels)) ++mismatches;
        if (got.batch_examples > n) ++batched;
      }
    });
  }
  for (auto& c : clients) c.join();
  CHECK(mismatches == 0);
  CHECK(batched > 0);  // requests did share batches
  CHECK(limit.depth() == 0);
}

TEST_CASE("the queue limit refuses at once, and frees what ran") {
  QueueLimit limit(4);
  CHECK(limit.try_acquire(3));
  CHECK_FALSE(limit.try_acquire(2));
  limit.release(3);
  CHECK(limit.try_acquire(4));
  limit.release(4);
  TempDir dir;
  write_file_atomic(dir.file("tiny.mighty"), tiny_model(1));
  Metrics metrics;
  Registry registry(dir.path.string(), {}, limit, metrics);
  registry.poll();
  Job big;
  big.count = 5;
  big.floats.assign(5 * kPixels, 0.0f);
  CHECK_THROWS_AS(registry.model("tiny")->batcher->submit(std::move(big)), QueueFull);
  CHECK(limit.depth() == 0);
}

TEST_CASE("base64 is decoded exactly and anything else is refused") {
  std::string out;
  for (size_t n = 0; n < 9; ++n) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(200 + 7 * i);
    REQUIRE(decode_base64(b64(bytes), out));
    CHECK(std::string(bytes.begin(), bytes.end()) == out);
  }
  // RFC 4648's own test vectors.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    CHECK(encode_base64(reinterpret_cast<const uint8_t*>(plain), std::strlen(plain)) == coded);
    REQUIRE(decode_base64(coded, out));
    CHECK(out == plain);
  }
  for (const char* bad : {"A", "AB=C", "A===", "AB!D", "AA==AAAA", "=AAA", "====", "AAAA===="})
    CHECK_FALSE(decode_base64(bad, out));
  // Every byte value in every place of the last quad: only the alphabet decodes, and '=' only at the end.
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int c = 0; c < 256; ++c) {
    const bool in_alphabet = alphabet.find(static_cast<char>(c)) != std::string::npos;
    for (size_t place = 0; place < 4; ++place) {
      std::string coded = "QUJDQUJD";  // "ABCABC"
      coded[4 + place] = static_cast<char>(c);
      INFO("byte " << c << " at " << place);
      CHECK(decode_base64(coded, out) == (in_alphabet || (c == '=' && place == 3)));
      if (in_alphabet) CHECK(out.size() == 6);
    }
  }
}

// The request-reader fuzzer's corpus (scripts/fuzz), replayed through the same check: every input is either
// read into instances of the right size or refused with a 4xx RequestError.
TEST_CASE("the request-reader fuzzer's corpus replays: each body read right or refused with a 4xx") {
  REQUIRE(mighty::fuzz::replay_corpus("predict", [](const std::string& bytes) {
            return mighty::fuzz::predict_one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
          }) > 100);
}

TEST_CASE("every kind of bad request is one 4xx line naming what is wrong") {
  InputSpec input;
  input.kind = "images";
  input.shape = {1, 4, 4};
  struct Case {
    std::string body, kind;
    int status;
  };
  std::string pixels15 = "[1";
  for (int i = 1; i < 15; ++i) pixels15 += ",1";
  pixels15 += "]";
  std::string pixels16 = pixels15.substr(0, pixels15.size() - 1) + ",1]";
  const std::vector<Case> cases = {
      {"{\"instances\": [", "malformed_json", 400},
      {"[1, 2]", "not_an_object", 400},
      {"{\"inputs\": []}", "unknown_key", 400},
      {"{}", "missing_instances", 400},
      {"{\"instances\": 5}", "wrong_type", 400},
      {"{\"instances\": []}", "no_instances", 400},
      {"{\"instances\": [" + pixels15 + "]}", "wrong_size", 400},
      {"{\"instances\": [[" + std::string("1,") + "300" + pixels15.substr(2) + "]}", "wrong_type", 400},
      {"{\"instances\": [{\"b64\": \"@@@@\"}]}", "bad_base64", 400},
      {"{\"instances\": [\"text\"]}", "wrong_type", 400},
      {"{\"instances\": [" + pixels16 + "], \"top_k\": 0}", "wrong_type", 400},
      {"{\"instances\": [" + pixels16 + "," + pixels16 + "," + pixels16 + "]}", "too_many_items", 413},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    try {
      parse_predict(c.body, input, 2);
      FAIL("accepted");
    } catch (const RequestError& e) {
      CHECK(e.kind() == c.kind);
      CHECK(e.status() == c.status);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
  const PredictRequest r = parse_predict("{\"instances\": [" + pixels16 + "], \"top_k\": 2}", input, 2);
  CHECK(r.raw.size() == 1);
  CHECK(r.top_k == 2);
}

TEST_CASE("over HTTP — predictions, versions, errors, metrics, hot reload and cascades") {
  TempDir dir;
  write_file_atomic(dir.file("tiny.mighty"), tiny_model(1));
  write_file_atomic(dir.file("big.mighty"), tiny_model(2));
  ServeOptions o;
  o.dir = dir.path.string();
  o.port = 0;
  o.poll_ms = 20;
  o.max_body_bytes = 4096;
  o.max_items = 8;
  Server server(o);
  std::thread running([&] { server.run(); });
  httplib::Client client("127.0.0.1", server.port());
  const Session reference(Artifact::from_bytes(tiny_model(1), "tiny"));

  auto post = [&](const std::string& path, const std::string& body) {
    auto res = client.Post(path.c_str(), body, "application/json");
    REQUIRE(res);
    return std::pair<int, nlohmann::json>{res->status, nlohmann::json::parse(res->body)};
  };
  const auto pixels = random_pixels(3, 5);
  std::vector<uint8_t> first(pixels.begin(), pixels.begin() + kPixels);
  nlohmann::json arr = std::vector<int>(first.begin(), first.end());
  const std::string body =
      nlohmann::json(
          {{"instances", {arr, {{"b64", b64(std::vector<uint8_t>(pixels.begin() + kPixels, pixels.end()))}}}},
           {"logits", true}})
          .dump();
  // The b64 instance holds two images' bytes: wrong size.
  auto [status, j] = post("/v1/models/tiny:predict", body);
  CHECK(status == 400);
  CHECK(j["kind"] == "wrong_size");

  const std::string ok_body =
      nlohmann::json(
          {{"instances",
            {arr,
             {{"b64", b64(std::vector<uint8_t>(pixels.begin() + kPixels, pixels.begin() + 2 * kPixels))}}}},
           {"logits", true}})
          .dump();
  std::tie(status, j) = post("/v1/models/tiny:predict", ok_body);
  REQUIRE(status == 200);
  const auto want = alone(reference, std::vector<uint8_t>(pixels.begin(), pixels.begin() + 2 * kPixels));
  REQUIRE(j["predictions"].size() == 2);
  for (int i = 0; i < 2; ++i) {
    const auto logits = j["predictions"][i]["logits"].get<std::vector<float>>();
    CHECK(logits == std::vector<float>(want.begin() + 3 * i, want.begin() + 3 * i + 3));
    CHECK(j["predictions"][i]["top"].size() == 3);
  }
  const std::string v1 = j["version"];
  CHECK(v1.size() == 16);
  // The binary form: the same two images' bytes back to back, options in the query string.
  {
    const std::string raw(pixels.begin(), pixels.begin() + 2 * kPixels);
    auto res = client.Post("/v1/models/tiny:predict?top_k=2&logits=true", raw, "application/octet-stream");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    const auto b = nlohmann::json::parse(res->body);
    REQUIRE(b["predictions"].size() == 2);
    for (int i = 0; i < 2; ++i) {
      CHECK(b["predictions"][i]["logits"] == j["predictions"][i]["logits"]);
      CHECK(b["predictions"][i]["top"].size() == 2);
    }
    res = client.Post("/v1/models/tiny:predict", raw.substr(1), "application/octet-stream");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(nlohmann::json::parse(res->body)["kind"] == "wrong_size");
  }

  // Errors through HTTP: unknown model, no route, too large, and the metrics count them.
  std::tie(status, j) = post("/v1/models/nobody:predict", ok_body);
  CHECK(status == 404);
  CHECK(j["kind"] == "unknown_model");
  std::tie(status, j) = post("/v1/nothing", ok_body);
  CHECK(status == 404);
  std::tie(status, j) = post("/v1/models/tiny:predict", std::string(5000, ' '));
  CHECK(status == 413);
  CHECK(j["kind"] == "body_too_large");
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("mighty_request_errors_total{model=\"tiny\",kind=\"wrong_size\"} 2") !=
        std::string::npos);
  CHECK(metrics->body.find("mighty_request_errors_total{model=\"\",kind=\"unknown_model\"} 1") !=
        std::string::npos);
  CHECK(metrics->body.find("mighty_requests_total{model=\"tiny\",code=\"200\"} 2") != std::string::npos);
  CHECK(metrics->body.find(
            "mighty_request_duration_seconds_bucket{model=\"tiny\",stage=\"total\",le=\"+Inf\"} 2") !=
        std::string::npos);
  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);

  auto version_of = [&](const std::string& name) {
    auto res = client.Get("/v1/models");
    REQUIRE(res);
    const auto list = nlohmann::json::parse(res->body);
    for (const auto& m : list["models"])
      if (m["name"] == name) return m["version"].get<std::string>();
    return std::string();
  };
  CHECK(version_of("tiny") == v1);
  auto wait_for = [&](const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  };

  // Hot reload: a new file renamed in is served; a damaged one is refused and the old version keeps serving.
  write_file_atomic(dir.file("tiny.mighty"), tiny_model(3));
  REQUIRE(wait_for([&] { return version_of("tiny") != v1; }));
  std::tie(status, j) = post("/v1/models/tiny:predict", ok_body);
  CHECK(status == 200);
  const std::string v2 = j["version"];
  CHECK(v2 != v1);
  std::string damaged = tiny_model(4);
  damaged[damaged.size() / 2] ^= 0x55;
  write_file_atomic(dir.file("tiny.mighty"), damaged);
  REQUIRE(wait_for([&] {
    auto res = client.Get("/metrics");
    return res && res->body.find("mighty_model_reloads_total{model=\"tiny\",result=\"refused\"} 1") !=
                      std::string::npos;
  }));
  std::tie(status, j) = post("/v1/models/tiny:predict", ok_body);
  CHECK(status == 200);
  CHECK(j["version"] == v2);

  // Cascades: threshold 0 -> the student answers everything; 1 -> the teacher does.
  write_file_atomic(dir.file("cascades.json"),
                    R"({"cascades": {"both": {"student": "tiny", "teacher": "big", "threshold": 0.0}}})");
  REQUIRE(wait_for([&] { return post("/v1/models/both:predict", ok_body).first == 200; }));
  std::tie(status, j) = post("/v1/models/both:predict", ok_body);
  for (const auto& p : j["predictions"]) CHECK(p["answered_by"] == "student");
  write_file_atomic(dir.file("cascades.json"),
                    R"({"cascades": {"both": {"student": "tiny", "teacher": "big", "threshold": 1.0}}})");
  REQUIRE(wait_for([&] {
    const auto r = post("/v1/models/both:predict", ok_body);
    return r.first == 200 && r.second["predictions"][0]["answered_by"] == "teacher";
  }));
  std::tie(status, j) = post("/v1/models/both:predict", ok_body);
  const Session big(Artifact::from_bytes(tiny_model(2), "big"));
  const auto want_big = alone(big, std::vector<uint8_t>(pixels.begin(), pixels.begin() + 2 * kPixels));
  for (int i = 0; i < 2; ++i) {
    CHECK(j["predictions"][i]["answered_by"] == "teacher");
    CHECK(j["predictions"][i]["logits"].get<std::vector<float>>() ==
          std::vector<float>(want_big.begin() + 3 * i, want_big.begin() + 3 * i + 3));
  }
  // Blend 0.25: what the student leaves is answered by 0.25 x its probabilities + 0.75 x the teacher's.
  write_file_atomic(
      dir.file("cascades.json"),
      R"({"cascades": {"both": {"student": "tiny", "teacher": "big", "threshold": 1.0, "blend": 0.25}}})");
  REQUIRE(wait_for([&] {
    const auto r = post("/v1/models/both:predict", ok_body);
    return r.first == 200 && r.second.value("blend", 0.0) == 0.25;
  }));
  std::tie(status, j) = post("/v1/models/both:predict", ok_body);
  const Session tiny(Artifact::from_bytes(tiny_model(3), "tiny"));
  const auto want_tiny = alone(tiny, std::vector<uint8_t>(pixels.begin(), pixels.begin() + 2 * kPixels));
  auto softmax = [](const float* v) {
    std::vector<double> p(3);
    double sum = 0, top = std::max({v[0], v[1], v[2]});
    for (int k = 0; k < 3; ++k) sum += p[k] = std::exp(v[k] - top);
    for (double& x : p) x /= sum;
    return p;
  };
  for (int i = 0; i < 2; ++i) {
    const auto ps = softmax(want_tiny.data() + 3 * i), pt = softmax(want_big.data() + 3 * i);
    std::vector<double> mix(3);
    for (int k = 0; k < 3; ++k) mix[k] = 0.25 * ps[k] + 0.75 * pt[k];
    const auto& p = j["predictions"][i];
    CHECK(p["answered_by"] == "teacher");
    const int64_t best = std::max_element(mix.begin(), mix.end()) - mix.begin();
    CHECK(p["index"].get<int64_t>() == best);
    CHECK(std::abs(p["probability"].get<double>() - mix[static_cast<size_t>(best)]) < 1e-6);
    const auto logits = p["logits"].get<std::vector<float>>();
    for (int k = 0; k < 3; ++k) CHECK(std::abs(std::exp(double(logits[k])) - mix[k]) < 1e-6);
  }
  // A blend without a threshold is refused (both come from the student's file or neither does).
  write_file_atomic(dir.file("cascades.json"),
                    R"({"cascades": {"both": {"student": "tiny", "teacher": "big", "blend": 0.5}}})");
  REQUIRE(wait_for([&] {
    auto res = client.Get("/metrics");
    return res && res->body.find("model=\"cascades.json\",result=\"refused\"} 1") != std::string::npos;
  }));
  // A manifest that does not parse is refused; the cascades already read stay.
  write_file_atomic(dir.file("cascades.json"), "{\"cascades\": {\"x\": {\"student\": 5}}}");
  REQUIRE(wait_for([&] {
    auto res = client.Get("/metrics");
    return res && res->body.find("model=\"cascades.json\",result=\"refused\"} 2") != std::string::npos;
  }));
  CHECK(post("/v1/models/both:predict", ok_body).first == 200);

  // A removed file is unloaded.
  fs::remove(dir.file("big.mighty"));
  REQUIRE(wait_for([&] { return version_of("big").empty(); }));
  CHECK(post("/v1/models/both:predict", ok_body).first == 503);
  server.stop();
  running.join();
}
