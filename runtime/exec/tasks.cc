#include "runtime/exec/tasks.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/idx.h"
#include "runtime/io/progress.h"
#include "runtime/io/timing.h"
#include "runtime/text/document_model.h"

namespace mighty {
namespace {

int64_t argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

}  // namespace

nlohmann::json evaluate_images(const Session& session, const InputSpec& spec, const std::string& images_path,
                               const std::string& labels_path, int64_t limit) {
  if (spec.kind != "images") throw Error("this artifact takes text, not images");
  const IdxArray images = read_idx(images_path), labels = read_idx(labels_path);
  if (labels.dims.size() != 1 || images.dims.empty() || images.dims[0] != labels.dims[0]) {
    throw Error(fmt::format("{}: {} labels do not match the images in {}", labels_path,
                            labels.dims.empty() ? 0 : labels.dims[0], images_path));
  }
  const int64_t per = spec.example_size();
  int64_t image_size = 1;
  for (size_t i = 1; i < images.dims.size(); ++i) image_size *= images.dims[i];
  if (image_size != per) {
    throw Error(fmt::format("{}: images have {} pixels, the model takes {}", images_path, image_size, per));
  }
  int64_t n = images.dims[0];
  if (limit > 0) n = std::min(n, limit);
  const int64_t classes = session.output_size();
  constexpr int64_t kBatch = 256;
  int64_t correct = 0;
  Progress progress("eval", n, "image");
  for (int64_t lo = 0; lo < n; lo += kBatch) {
    const int64_t b = std::min(kBatch, n - lo);
    const auto x = spec.images(images.data.data() + lo * per, b);
    const auto logits = session.run(x.data(), b);
    for (int64_t i = 0; i < b; ++i)
      correct += argmax(logits.data() + i * classes, classes) == labels.data[lo + i];
    progress.update(lo + b, fmt::format("accuracy {:.2f}%", 100.0 * correct / (lo + b)));
  }
  progress.finish(n);
  return {{"examples", n}, {"accuracy", static_cast<double>(correct) / n}};
}

nlohmann::json evaluate_text(const Session& session, const InputSpec& spec, const std::string& path,
                             int64_t limit) {
  if (spec.kind != "text") throw Error("this artifact takes images, not text");
  std::vector<int64_t> ids = spec.encode(read_file(path));
  if (limit > 0 && static_cast<int64_t>(ids.size()) > limit + 1) ids.resize(static_cast<size_t>(limit + 1));
  const int64_t ctx = spec.context, vocab = static_cast<int64_t>(spec.vocab.size());
  const int64_t windows = (static_cast<int64_t>(ids.size()) - 1) / ctx;
  if (windows < 1) throw Error(fmt::format("{}: needs at least {} characters", path, ctx + 1));
  double nats = 0.0;
  Progress progress("eval", windows, "window");
  for (int64_t w = 0; w < windows; ++w) {
    const auto logits = session.run_tokens(ids.data() + w * ctx, 1, ctx);
    for (int64_t t = 0; t < ctx; ++t) {
      const float* row = logits.data() + t * vocab;
      const float mx = *std::max_element(row, row + vocab);
      double sum = 0.0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
      nats += std::log(sum) + mx - row[ids[w * ctx + t + 1]];
    }
    progress.update(w + 1);
  }
  progress.finish(windows);
  const double loss = nats / static_cast<double>(windows * ctx);
  return {{"characters", windows * ctx}, {"loss", loss}, {"bits_per_char", loss / std::log(2.0)}};
}

std::string generate(const Session& session, const InputSpec& spec, const std::string& prompt, int64_t count,
                     double temperature, int64_t top_k, uint64_t seed, double* tokens_per_s) {
  if (spec.kind != "text") throw Error("generation needs a text model");
  std::vector<int64_t> history = spec.encode(prompt);
  const int64_t vocab = static_cast<int64_t>(spec.vocab.size()), ctx = spec.context;
  std::mt19937_64 rng(seed);
  Session::DecodeState state;
  // Feed the prompt (its last `ctx` characters).
  const int64_t first = std::max<int64_t>(0, static_cast<int64_t>(history.size()) - ctx);
  std::vector<float> logits =
      session.decode(history.data() + first, static_cast<int64_t>(history.size()) - first, state);
  std::vector<float> last(logits.end() - vocab, logits.end());
  std::string out;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < count; ++i) {
    int64_t next = 0;
    if (temperature <= 0.0) {
      next = argmax(last.data(), vocab);
    } else {
      std::vector<int64_t> order(static_cast<size_t>(vocab));
      std::iota(order.begin(), order.end(), 0);
      const int64_t k = top_k > 0 ? std::min(top_k, vocab) : vocab;
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int64_t a, int64_t b) { return last[a] > last[b]; });
      std::vector<double> p(static_cast<size_t>(k));
      double total = 0.0;
      for (int64_t j = 0; j < k; ++j)
        total += p[j] = std::exp((last[order[j]] - last[order[0]]) / temperature);
      double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
      next = order[k - 1];
      for (int64_t j = 0; j < k; ++j) {
        if ((u -= p[j]) < 0.0) {
          next = order[j];
          break;
        }
      }
    }
    out += spec.decode(next);
    history.push_back(next);
    if (state.position == ctx) {
      // The context is full: start again from the most recent half of it.
      state = Session::DecodeState();
      const int64_t keep = ctx / 2;
      logits = session.decode(history.data() + history.size() - keep, keep, state);
    } else {
      logits = session.decode(&history.back(), 1, state);
    }
    last.assign(logits.end() - vocab, logits.end());
  }
  if (tokens_per_s) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *tokens_per_s = s > 0 ? static_cast<double>(count) / s : 0.0;
  }
  return out;
}

nlohmann::json evaluate_documents(const Session& session, const std::string& dir, int64_t limit) {
  const DocumentModel model(session);
  const std::vector<std::string> labels = session.artifact().labels();
  if (labels.size() < 2) {
    throw Error(
        fmt::format("{}: the model has no class labels to match folders with", session.artifact().name()));
  }
  if (!std::filesystem::is_directory(dir)) throw Error(fmt::format("{}: not a directory", dir));
  std::vector<std::pair<std::filesystem::path, int64_t>> files;
  for (auto it = std::filesystem::recursive_directory_iterator(dir); it != std::filesystem::end(it); ++it) {
    const auto& e = *it;
    if (!e.is_regular_file() || it.depth() == 0) continue;  // documents live in labelled folders
    const std::string folder = e.path().parent_path().filename().string();
    int64_t label = -1;
    for (size_t c = 0; c < labels.size(); ++c) {
      if (folder.find(labels[c]) != std::string::npos) {
        label = static_cast<int64_t>(c);
      }
    }
    // One document per stem: SpamAssassin's corpus has each email as X.txt and X.json; take the .json.
    const bool twin = e.path().extension() != ".json" &&
                      std::filesystem::exists(std::filesystem::path(e.path()).replace_extension(".json"));
    if (label >= 0 && !twin) files.emplace_back(e.path(), label);
  }
  std::sort(files.begin(), files.end());
  if (limit > 0 && static_cast<int64_t>(files.size()) > limit) files.resize(static_cast<size_t>(limit));
  if (files.empty()) throw Error(fmt::format("{}: no documents in folders named after the labels", dir));
  const auto classes = static_cast<int64_t>(labels.size());
  std::vector<int64_t> confusion(static_cast<size_t>(classes * classes), 0);
  Progress progress("eval", static_cast<int64_t>(files.size()), "doc");
  for (size_t i = 0; i < files.size(); ++i) {
    std::string raw = read_file(files[i].first.string());
    if (files[i].first.extension() == ".json") {
      const auto doc = nlohmann::json::parse(raw, nullptr, false);
      if (!doc.is_object() || !doc.contains("text") || !doc["text"].is_string()) {
        throw Error(
            fmt::format("{}: expected a JSON object with a string \"text\"", files[i].first.string()));
      }
      raw = doc["text"].get<std::string>();
    }
    const auto scores = model.run(raw);
    confusion[static_cast<size_t>(files[i].second * classes + argmax(scores.data(), classes))]++;
    progress.update(static_cast<int64_t>(i + 1));
  }
  progress.finish(static_cast<int64_t>(files.size()));
  int64_t correct = 0;
  for (int64_t c = 0; c < classes; ++c) correct += confusion[static_cast<size_t>(c * classes + c)];
  const auto n = static_cast<double>(files.size());
  nlohmann::json r = {{"examples", files.size()}, {"accuracy", static_cast<double>(correct) / n}};
  if (classes == 2) {
    const double tp = static_cast<double>(confusion[3]), fp = static_cast<double>(confusion[1]);
    const double fn = static_cast<double>(confusion[2]);
    r["positive_class"] = labels[1];
    r["precision"] = tp + fp > 0 ? tp / (tp + fp) : 0.0;
    r["recall"] = tp + fn > 0 ? tp / (tp + fn) : 0.0;
  }
  return r;
}

namespace {

// Batch-1 runs over the `available` examples of `size` values in `pool`, one after another, and batches of
// the first `batch` of them (cycling when there are fewer); run(examples, count) runs the model.
template <class T, class Run>
nlohmann::json time_examples(const std::vector<T>& pool, int64_t available, int64_t size, int64_t runs,
                             int64_t batch, const Run& run) {
  std::vector<T> many(static_cast<size_t>(batch * size));
  for (int64_t i = 0; i < batch; ++i)
    std::copy(pool.begin() + i % available * size, pool.begin() + (i % available + 1) * size,
              many.begin() + i * size);
  int64_t next = 0;
  return measure_latency([&] { run(pool.data() + (next++ % available) * size, 1); },
                         [&] { run(many.data(), batch); }, runs, batch, /*warmup=*/5);
}

}  // namespace

nlohmann::json benchmark(const Session& session, const InputSpec& spec, int64_t runs, int64_t batch,
                         const BenchInputs& inputs) {
  if ((!inputs.images.empty() && spec.kind != "images") || (!inputs.text.empty() && spec.kind != "text") ||
      (!inputs.document.empty() && spec.kind != "documents"))
    throw Error(
        fmt::format("bench: this artifact takes {}; give --images for images, --text for a language "
                    "model, --email for a document classifier",
                    spec.kind));
  nlohmann::json r;
  std::string input;
  if (spec.kind == "documents") {
    const std::string sample = !inputs.document.empty()
                                   ? inputs.document
                                   : "Subject: Limited offer: save 50% on printer toner today\n\n"
                                     "Dear customer, click here to order before Friday and get free "
                                     "shipping on every cartridge. To unsubscribe reply REMOVE.\n";
    input = inputs.document.empty() ? "synthetic: a built-in sample email"
                                    : fmt::format("the given email ({} bytes)", sample.size());
    const DocumentModel model(session);
    r = measure_latency([&] { model.run(sample); },
                        [&] {
                          for (int64_t b = 0; b < batch; ++b) model.run(sample);
                        },
                        runs, batch, /*warmup=*/5);
  } else if (spec.kind == "images") {
    const int64_t per = spec.example_size();
    std::vector<float> pool(static_cast<size_t>(per), 0.5f);
    int64_t available = 1;
    input = "synthetic: every pixel 0.5 (give --images for real ones)";
    if (!inputs.images.empty()) {
      const IdxArray images = read_idx(inputs.images);
      int64_t size = 1;
      for (size_t i = 1; i < images.dims.size(); ++i) size *= images.dims[i];
      if (images.dims.empty() || images.dims[0] < 1 || size != per)
        throw Error(fmt::format("{}: images have {} pixels, the model takes {}", inputs.images, size, per));
      available = std::min<int64_t>(images.dims[0], std::max<int64_t>(batch, 1024));
      pool = spec.images(images.data.data(), available);
      input = fmt::format("{} images of {}", available, inputs.images);
    }
    r = time_examples(pool, available, per, runs, batch,
                      [&](const float* x, int64_t count) { session.run(x, count); });
  } else {
    const int64_t ctx = spec.context;
    std::vector<int64_t> pool(static_cast<size_t>(ctx));
    for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<int64_t>(i % spec.vocab.size());
    int64_t available = 1;
    input = "synthetic: token ids 0, 1, 2, ... (give --text for real text)";
    if (!inputs.text.empty()) {
      std::vector<int64_t> ids = spec.encode(read_file(inputs.text));
      available = static_cast<int64_t>(ids.size()) / ctx;
      if (available < 1)
        throw Error(fmt::format("{}: needs at least {} characters (one context)", inputs.text, ctx));
      ids.resize(static_cast<size_t>(available * ctx));
      pool = std::move(ids);
      input = fmt::format("{} windows of {} characters of {}", available, ctx, inputs.text);
    }
    r = time_examples(pool, available, ctx, runs, batch,
                      [&](const int64_t* ids, int64_t count) { session.run_tokens(ids, count, ctx); });
  }
  r["input"] = input;
  return r;
}

std::vector<double> softmax_probabilities(const float* scores, int64_t n) {
  std::vector<double> p(scores, scores + n);
  const double top = *std::max_element(p.begin(), p.end());
  double sum = 0.0;
  for (double& v : p) sum += (v = std::exp(v - top));
  for (double& v : p) v /= sum;
  return p;
}

std::vector<float> cascade_fallback_scores(const float* student, const float* teacher, int64_t n,
                                           double blend) {
  if (blend <= 0.0) return {teacher, teacher + n};
  const std::vector<double> ps = softmax_probabilities(student, n), pt = softmax_probabilities(teacher, n);
  std::vector<float> out(static_cast<size_t>(n));
  for (size_t i = 0; i < out.size(); ++i) {
    const double p = blend * ps[i] + (1.0 - blend) * pt[i];
    out[i] = p > 0.0 ? static_cast<float>(std::log(p)) : std::numeric_limits<float>::lowest();
  }
  return out;
}

}  // namespace mighty
