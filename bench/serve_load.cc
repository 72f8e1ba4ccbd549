// mighty-serve-load: a load generator for mighty-run serve, on loopback. C connections (keep-alive) each send
// requests of B images from an IDX file, for a time and/or a count, optionally paced to a total rate; prints
// one JSON object: requests, examples, examples/s, latency percentiles, status codes, transport failures,
// and "mixed": answers that differ for the same image and the same model version (a server that mixed up
// requests' rows would show them). --malformed N instead sends N bad requests of ten kinds and reports their
// statuses (every one must be a 4xx).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "runtime/io/idx.h"
#include "serve/protocol.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1", model, images;
  int port = 0, connections = 8;
  int64_t batch = 1, requests = 0, malformed = 0;
  std::string get;
  double seconds = 0.0, rate = 0.0;
  bool arrays = false, binary = false;
};

// User + system CPU time of this process so far.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Shared {
  std::mutex mutex;
  std::vector<double> latencies_ms;
  std::map<int, int64_t> statuses;
  // Per model version, per image: the class index and the probability's bits first answered for it.
  std::map<std::string, std::unordered_map<int64_t, std::pair<int64_t, uint64_t>>> answers;
  std::map<std::string, int64_t> versions;
  int64_t transport_failures = 0, mixed = 0, examples = 0;
  std::map<std::string, int64_t> failure_kinds;  // httplib's error name, or "unreadable 200"
};

std::string body_for(const mighty::IdxArray& images, int64_t first, int64_t batch, int64_t pixels,
                     bool arrays, bool binary = false) {
  const int64_t count = images.dims[0];
  if (binary) {  // application/octet-stream: the images' bytes back to back
    std::string body;
    for (int64_t k = 0; k < batch; ++k) {
      const uint8_t* p = images.data.data() + ((first + k) % count) * pixels;
      body.append(reinterpret_cast<const char*>(p), static_cast<size_t>(pixels));
    }
    return body;
  }
  nlohmann::json instances = nlohmann::json::array();
  for (int64_t k = 0; k < batch; ++k) {
    const uint8_t* p = images.data.data() + ((first + k) % count) * pixels;
    if (arrays)
      instances.push_back(std::vector<int>(p, p + pixels));
    else
      instances.push_back({{"b64", mighty::serve::encode_base64(p, static_cast<size_t>(pixels))}});
  }
  return nlohmann::json({{"instances", instances}, {"top_k", 1}}).dump();
}

// Request bodies built before the clock starts (the client's own JSON work stays out of the measurement):
// request n carries images n*batch ... of body n mod size.
struct Bodies {
  std::vector<std::string> bodies;
  std::vector<int64_t> first;
};

Bodies make_bodies(const Options& o, const mighty::IdxArray& images) {
  const int64_t pixels = static_cast<int64_t>(images.data.size()) / images.dims[0];
  Bodies b;
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(256, images.dims[0] / o.batch));
  for (int64_t i = 0; i < n; ++i) {
    b.first.push_back((i * o.batch) % images.dims[0]);
    b.bodies.push_back(body_for(images, b.first.back(), o.batch, pixels, o.arrays, o.binary));
  }
  return b;
}

// A prediction response read without building its document (nlohmann's SAX interface; the DOM's allocations
// were most of this client's CPU, which shares the machine with the server): the top-level "version" and, per
// element of "predictions", its "index", "probability" and own "version" (a cascade's stage). Nested
// containers (a prediction's "top") are skipped. Any JSON error fails the parse.
struct PredictionReader {
  struct Prediction {
    int64_t index = -1;
    double probability = 0.0;
    bool has_index = false, has_probability = false;
    std::string version;  // empty: the response's
  };
  std::string version;
  std::vector<Prediction> predictions;
  bool has_predictions = false;
  int depth = 0;                // containers open
  bool in_predictions = false;  // inside the top-level "predictions" array
  std::string key1, key3;       // the last key of the top-level object and of a prediction

  bool prediction_value() const { return in_predictions && depth == 3; }
  bool number(double v, bool integral) {
    if (!prediction_value()) return true;
    Prediction& p = predictions.back();
    if (key3 == "index" && integral) p.index = static_cast<int64_t>(v), p.has_index = true;
    if (key3 == "probability") p.probability = v, p.has_probability = true;
    return true;
  }
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(int64_t v) { return number(static_cast<double>(v), true); }
  bool number_unsigned(uint64_t v) { return number(static_cast<double>(v), true); }
  bool number_float(double v, const std::string&) { return number(v, false); }
  bool string(std::string& v) {
    if (depth == 1 && key1 == "version") version = v;
    if (prediction_value() && key3 == "version") predictions.back().version = v;
    return true;
  }
  bool binary(std::vector<uint8_t>&) { return true; }
  bool start_object(std::size_t) {
    ++depth;
    if (in_predictions && depth == 3) predictions.emplace_back();
    return true;
  }
  bool key(std::string& k) {
    if (depth == 1) key1 = k;
    if (prediction_value()) key3 = k;
    return true;
  }
  bool end_object() {
    --depth;
    return true;
  }
  bool start_array(std::size_t) {
    ++depth;
    if (depth == 2 && key1 == "predictions") in_predictions = has_predictions = true;
    return true;
  }
  bool end_array() {
    if (depth == 2) in_predictions = false;
    --depth;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
};

void client_loop(const Options& o, const mighty::IdxArray& images, const Bodies& bodies, int id,
                 Clock::time_point start, std::atomic<int64_t>& next, Shared& shared) {
  httplib::Client client(o.host, o.port);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  client.set_read_timeout(30, 0);
  const std::string path = "/v1/models/" + o.model + ":predict" + (o.binary ? "?top_k=1" : "");
  const char* type = o.binary ? "application/octet-stream" : "application/json";
  const double per_connection_interval = o.rate > 0 ? o.connections / o.rate : 0.0;
  int64_t sent = 0;
  for (;;) {
    const int64_t n = next.fetch_add(1);
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if ((o.requests > 0 && n >= o.requests) || (o.seconds > 0 && elapsed >= o.seconds)) break;
    if (per_connection_interval > 0) {  // paced: this connection's k-th request at k intervals (+ a phase)
      const auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                   (static_cast<double>(sent) + id / static_cast<double>(o.connections)) *
                                   per_connection_interval));
      std::this_thread::sleep_until(due);
    }
    ++sent;
    const auto which = static_cast<size_t>(n % static_cast<int64_t>(bodies.bodies.size()));
    const int64_t first = bodies.first[which];
    const std::string& body = bodies.bodies[which];
    const auto t0 = Clock::now();
    auto res = client.Post(path.c_str(), body, type);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    // The answers are read before taking the lock (the parse is most of this client's CPU), then checked
    // against the first answer for the same image and model version: a different one is a mixed answer.
    PredictionReader reader;
    bool parsed = false, whole = false;
    if (res && res->status == 200) {
      parsed = nlohmann::json::sax_parse(res->body, &reader) && reader.has_predictions;
      for (const auto& p : reader.predictions)
        parsed = parsed && p.has_index && p.has_probability && !(p.version.empty() && reader.version.empty());
      whole = parsed && static_cast<int64_t>(reader.predictions.size()) == o.batch;
    }
    std::lock_guard lock(shared.mutex);
    if (!res) {
      ++shared.transport_failures;
      ++shared.failure_kinds[httplib::to_string(res.error())];
      continue;
    }
    ++shared.statuses[res->status];
    if (res->status != 200) continue;
    shared.latencies_ms.push_back(ms);
    if (!parsed) {
      ++shared.transport_failures;
      ++shared.failure_kinds["unreadable 200"];
      continue;
    }
    if (!whole) {
      ++shared.mixed;
      continue;
    }
    shared.examples += o.batch;
    for (size_t k = 0; k < reader.predictions.size(); ++k) {
      const auto& p = reader.predictions[k];
      const std::string& version = p.version.empty() ? reader.version : p.version;
      ++shared.versions[version];
      uint64_t bits = 0;
      std::memcpy(&bits, &p.probability, sizeof bits);
      const std::pair<int64_t, uint64_t> answer{p.index, bits};
      const int64_t image = (first + static_cast<int64_t>(k)) % images.dims[0];
      const auto [it, inserted] = shared.answers[version].emplace(image, answer);
      if (!inserted && it->second != answer) ++shared.mixed;
    }
  }
}

// Ten kinds of bad request, each sent malformed/10 times; returns statuses by kind.
nlohmann::json send_malformed(const Options& o, const mighty::IdxArray& images) {
  const int64_t pixels = static_cast<int64_t>(images.data.size()) / images.dims[0];
  const std::string good = body_for(images, 0, 1, pixels, true);
  std::string too_few = "{\"instances\": [[" + std::string("1");
  for (int64_t i = 1; i < pixels - 1; ++i) too_few += ",1";
  too_few += "]]}";
  std::string out_of_range = "{\"instances\": [[300";
  for (int64_t i = 1; i < pixels; ++i) out_of_range += ",1";
  out_of_range += "]]}";
  const std::string many = "{\"instances\": [" + std::string(2000000, ' ') + "]}";
  struct Bad {
    const char* kind;
    std::string path, body;
  };
  const std::string path = "/v1/models/" + o.model + ":predict";
  const std::vector<Bad> kinds = {
      {"truncated JSON", path, good.substr(0, good.size() / 2)},
      {"not an object", path, "[1, 2, 3]"},
      {"no instances", path, "{\"inputs\": []}"},
      {"empty instances", path, "{\"instances\": []}"},
      {"wrong size", path, too_few},
      {"pixel out of range", path, out_of_range},
      {"wrong type", path, "{\"instances\": [\"an email\"]}"},
      {"bad base64", path, "{\"instances\": [{\"b64\": \"!!!!\"}]}"},
      {"unknown model", "/v1/models/no-such-model:predict", good},
      {"body too large", path, many},
  };
  httplib::Client client(o.host, o.port);
  client.set_read_timeout(30, 0);
  nlohmann::json out = nlohmann::json::object();
  int64_t all_4xx = 0, sent = 0;
  for (int64_t i = 0; i < o.malformed; ++i) {
    const Bad& b = kinds[static_cast<size_t>(i) % kinds.size()];
    auto res = client.Post(b.path.c_str(), b.body, "application/json");
    const int status = res ? res->status : 0;
    ++sent;
    bool one_line_json = false;
    if (res) {
      try {
        const auto j = nlohmann::json::parse(res->body);
        one_line_json = j.contains("error") && res->body.find('\n') == res->body.size() - 1;
      } catch (...) {
      }
    }
    if (status >= 400 && status < 500 && one_line_json) ++all_4xx;
    auto& slot = out["by_kind"][b.kind][std::to_string(status)];
    slot = slot.is_null() ? 1 : slot.get<int64_t>() + 1;
  }
  auto health = client.Get("/healthz");
  out["sent"] = sent;
  out["answered_4xx_json"] = all_4xx;
  out["alive_after"] = health && health->status == 200;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mighty-serve-load: load and correctness for mighty-run serve (loopback)"};
  Options o;
  app.add_option("--host", o.host, "Server address (default 127.0.0.1)");
  app.add_option("--port", o.port, "Server port")->required();
  app.add_option("--model", o.model, "Model or cascade name");
  app.add_option("--images", o.images, "IDX images the requests carry");
  app.add_option("--connections", o.connections, "Connections, each one request at a time (default 8)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--batch", o.batch, "Images per request (default 1)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--seconds", o.seconds, "Stop after this long")->check(CLI::Range(0.0, 3600.0));
  app.add_option("--requests", o.requests, "Stop after this many requests")
      ->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  app.add_option("--rate", o.rate, "Total requests/s (default: as fast as answers come)")
      ->check(CLI::Range(0.0, 1e7));
  app.add_flag("--arrays", o.arrays, "Send pixels as JSON arrays (default base64)");
  app.add_flag("--binary", o.binary, "Send raw pixel bytes (application/octet-stream) instead of JSON");
  app.add_option("--malformed", o.malformed, "Send this many bad requests (ten kinds) instead")
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  app.add_option("--get", o.get, "Only GET this path and print the status, then the body");
  std::string post, body_file;
  app.add_option("--post", post,
                 "Only POST --body (a JSON file) to this path and print the status, then the body");
  app.add_option("--body", body_file, "The body --post sends");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!o.get.empty()) {
      httplib::Client client(o.host, o.port);
      auto res = client.Get(o.get.c_str());
      if (!res)
        throw std::runtime_error("GET " + o.get + ": no answer (" + httplib::to_string(res.error()) + ")");
      fmt::print("{}\n{}", res->status, res->body);
      return 0;
    }
    if (!post.empty()) {
      std::ifstream in(body_file, std::ios::binary);
      if (body_file.empty() || !in) throw std::runtime_error("--post needs a readable --body file");
      const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      httplib::Client client(o.host, o.port);
      auto res = client.Post(post.c_str(), body, "application/json");
      if (!res)
        throw std::runtime_error("POST " + post + ": no answer (" + httplib::to_string(res.error()) + ")");
      fmt::print("{}\n{}", res->status, res->body);
      return 0;
    }
    if (o.model.empty() || o.images.empty())
      throw std::runtime_error("give --model and --images (or --get, or --post)");
    if (o.seconds <= 0 && o.requests <= 0 && o.malformed <= 0)
      throw std::runtime_error("give --seconds or --requests");
    const mighty::IdxArray images = mighty::read_idx(o.images);
    if (images.dims.empty() || images.dims[0] == 0) throw std::runtime_error(o.images + ": no images");
    if (o.malformed > 0) {
      fmt::print("{}\n", send_malformed(o, images).dump());
      return 0;
    }
    const Bodies bodies = make_bodies(o, images);
    Shared shared;
    std::atomic<int64_t> next{0};
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < o.connections; ++c)
      threads.emplace_back([&, c] { client_loop(o, images, bodies, c, start, next, shared); });
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    auto& l = shared.latencies_ms;
    std::sort(l.begin(), l.end());
    auto pct = [&](double q) {
      return l.empty() ? 0.0
                       : l[std::min(l.size() - 1, static_cast<size_t>(q * static_cast<double>(l.size())))];
    };
    nlohmann::json statuses = nlohmann::json::object();
    int64_t requests = 0, failed = 0;
    for (const auto& [code, n] : shared.statuses) {
      statuses[std::to_string(code)] = n;
      requests += n;
      if (code != 200) failed += n;
    }
    nlohmann::json out = {
        {"connections", o.connections},
        {"batch", o.batch},
        {"body", o.binary   ? "binary"
                 : o.arrays ? "json arrays"
                            : "json base64"},
        {"rate_asked", o.rate},
        {"seconds", seconds},
        {"requests", requests},
        {"examples", shared.examples},
        {"examples_per_s", static_cast<double>(shared.examples) / seconds},
        {"requests_per_s", static_cast<double>(requests) / seconds},
        {"latency_ms",
         {{"p50", pct(0.5)}, {"p90", pct(0.9)}, {"p99", pct(0.99)}, {"max", l.empty() ? 0.0 : l.back()}}},
        {"statuses", statuses},
        {"non_200", failed},
        {"transport_failures", shared.transport_failures},
        {"failure_kinds", shared.failure_kinds},
        {"mixed", shared.mixed},
        {"versions", shared.versions},
        {"client_cpu_seconds", cpu_seconds()}};  // this process's CPU: on one machine, not the server's
    fmt::print("{}\n", out.dump());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "mighty-serve-load: error: {}\n", e.what());
    return 1;
  }
}
