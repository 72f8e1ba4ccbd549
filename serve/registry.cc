#include "serve/registry.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/format/metadata.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"
#include "serve/protocol.h"

namespace mighty::serve {
namespace {

namespace fs = std::filesystem;

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// Language models answer with the next token's scores; every other model with its classes.
bool per_token_output(const Session& s) {
  return s.graph().nodes()[static_cast<size_t>(s.graph().output())].shape.size() > 1;
}

// A batch's outputs back to its jobs: each job its own `count x per` rows, in order.
std::vector<std::vector<float>> split_rows(const std::vector<float>& y, const std::vector<const Job*>& jobs,
                                           int64_t per) {
  std::vector<std::vector<float>> out;
  size_t at = 0;
  for (const Job* j : jobs) {
    const auto n = static_cast<size_t>(j->count * per);
    out.emplace_back(y.begin() + static_cast<std::ptrdiff_t>(at),
                     y.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  return out;
}

// The batch runner of a model, by input kind.
Batcher::Runner make_runner(const Model& m) {
  const Session& s = *m.session;
  const std::string& kind = s.input_spec().kind;
  const int64_t per = m.outputs_per_example();
  if (kind == "images") {
    return [&s, per](const std::vector<const Job*>& jobs) {
      int64_t total = 0;
      for (const Job* j : jobs) total += j->count;
      std::vector<float> x;
      x.reserve(static_cast<size_t>(total * s.input_spec().example_size()));
      for (const Job* j : jobs) x.insert(x.end(), j->floats.begin(), j->floats.end());
      const std::vector<float> y = s.run(x.data(), total);
      return split_rows(y, jobs, per);
    };
  }
  if (kind == "documents" && m.documents->pads()) {  // one run, padded with -1 (EmbeddingBag skips padding)
    return [&s, per](const std::vector<const Job*>& jobs) {
      int64_t total = 0, length = 1;
      for (const Job* j : jobs)
        for (const auto& seq : j->sequences) {
          ++total;
          length = std::max<int64_t>(length, static_cast<int64_t>(seq.size()));
        }
      std::vector<int64_t> ids(static_cast<size_t>(total * length), -1);
      int64_t row = 0;
      for (const Job* j : jobs)
        for (const auto& seq : j->sequences) std::copy(seq.begin(), seq.end(), ids.begin() + row++ * length);
      const std::vector<float> y = s.run_tokens(ids.data(), total, length);
      return split_rows(y, jobs, per);
    };
  }
  // Token models and sequence document models: each sequence alone (lengths differ); a language model's
  // answer is its last position's.
  const bool lm = per_token_output(s);
  return [&s, per, lm](const std::vector<const Job*>& jobs) {
    std::vector<std::vector<float>> out;
    for (const Job* j : jobs) {
      std::vector<float> o;
      for (const auto& seq : j->sequences) {
        const auto length = static_cast<int64_t>(seq.size());
        const std::vector<float> y = s.run_tokens(seq.data(), 1, length);
        const size_t from = lm ? static_cast<size_t>((length - 1) * per) : 0;
        o.insert(o.end(), y.begin() + static_cast<std::ptrdiff_t>(from),
                 y.begin() + static_cast<std::ptrdiff_t>(from + static_cast<size_t>(per)));
      }
      out.push_back(std::move(o));
    }
    return out;
  };
}

// One example of the model's input kind, for the check run at load.
Job warmup_job(const Model& m) {
  Job j;
  j.count = 1;
  if (m.input().kind == "images") {
    j.floats.assign(static_cast<size_t>(m.input().example_size()), 0.0f);
  } else {
    j.sequences.push_back({m.documents && m.documents->pads() ? int64_t{-1} : int64_t{0}});
  }
  return j;
}

nlohmann::json describe(const Model& m) {
  const nlohmann::json& meta = m.session->artifact().metadata();
  nlohmann::json input = {{"kind", m.input().kind}};
  if (m.input().kind == "images") {
    input["shape"] = m.input().shape;
    input["pixels"] = m.input().example_size();
  } else if (m.input().kind == "documents") {
    input["max_bytes"] = m.input().max_bytes;
  } else {
    input["context"] = m.input().context;
  }
  nlohmann::json info = {{"name", m.name},
                         {"version", m.version},
                         {"file", fs::path(m.path).filename().string()},
                         {"bytes", m.session->artifact().file_size()},
                         {"loaded_at", m.loaded_at},
                         {"input", input},
                         {"outputs", m.outputs_per_example()},
                         {"labels", m.session->artifact().labels()}};
  for (const char* key : {"recipe", "recipe_hash", "data_hash", "role", "producer", "producer_version"})
    if (meta.contains(key) && meta[key].is_string()) info[key] = meta[key];
  if (meta.contains("verify") && meta["verify"].is_object()) {
    const auto& v = meta["verify"];
    nlohmann::json verify;
    if (v.contains("pass")) verify["pass"] = v["pass"];
    if (v.contains("criteria")) verify["criteria"] = v["criteria"];
    if (v.contains("accuracy")) verify["accuracy"] = v["accuracy"];
    if (v.contains("models") && v["models"].is_array()) {  // files from before the brief stamp
      for (const auto& row : v["models"]) {  // the shipped file's own row (runtime int8 or fp32)
        if (row.is_object() && row.value("engine", "").rfind("runtime", 0) == 0 && row.contains("accuracy"))
          verify["accuracy"] = row["accuracy"];
      }
    }
    info["verify"] = verify;
  }
  if (m.cascade_threshold)
    info["cascade"] = {{"threshold", *m.cascade_threshold},
                       {"confidence", m.cascade_confidence},
                       {"blend", m.cascade_blend}};
  return info;
}

}  // namespace

int64_t Model::outputs_per_example() const {
  // Token models: a language model's outputs for one position (the next token), or a classifier's classes.
  if (input().kind == "images" || input().kind == "documents") return session->output_size();
  return session->output_size(1);
}

Registry::Registry(std::string dir, RegistryOptions options, QueueLimit& limit, Metrics& metrics)
    : dir_(std::move(dir)), options_(options), limit_(limit), metrics_(metrics) {}

Registry::~Registry() = default;

std::shared_ptr<Model> Registry::load(const std::string& name, const std::string& path) const {
  auto m = std::make_shared<Model>();
  m->name = name;
  m->path = path;
  // Read into memory (not mapped): a file overwritten in place later cannot change a loaded model.
  std::string bytes = read_file(path);
  m->version = hash64_hex(bytes);
  m->session = std::make_unique<Session>(Artifact::from_bytes(std::move(bytes), path), options_.threads);
  if (!m->session->has_input_spec())
    throw Error(path + ": has no input spec (metadata \"input\"): the server cannot read raw inputs for it");
  if (m->input().kind == "documents") m->documents = std::make_unique<DocumentModel>(*m->session);
  const MetaValue meta(m->session->artifact().metadata(), path);
  if (meta.has("cascade")) {
    const MetaValue c = meta.at("cascade");
    m->cascade_threshold = c.at("threshold").number(0.0, 1.0);
    m->cascade_confidence = c.string_or("confidence", "probability");
    if (c.has("blend")) m->cascade_blend = c.at("blend").number(0.0, 1.0);
    if (m->cascade_confidence != "probability" && m->cascade_confidence != "margin")
      c.at("confidence").fail("expected \"probability\" or \"margin\"");
  }
  m->loaded_at = utc_now();
  m->info = describe(*m);
  for (const auto& label : m->session->artifact().labels()) m->json_labels.push_back(json_string(label));

  // One example through the model before it serves (the same runner requests use).
  const Job probe = warmup_job(*m);
  const auto out = make_runner(*m)({&probe});
  if (out.size() != 1 || static_cast<int64_t>(out[0].size()) != m->outputs_per_example())
    throw Error(path + ": the check run gave the wrong number of outputs");
  m->batcher = std::make_unique<Batcher>(make_runner(*m), options_.batching, limit_);
  return m;
}

std::map<std::string, Cascade> Registry::read_manifest(const std::string& path) const {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not JSON: {}", path, e.what()));
  }
  const MetaValue root(j, path);
  root.expect_object();
  std::map<std::string, Cascade> out;
  for (const auto& [key, value] : j.items()) {
    if (key != "cascades") MetaValue(value, path, "/" + key).fail("unknown key (expected \"cascades\")");
  }
  const MetaValue cascades = root.at("cascades");
  cascades.expect_object();
  for (const auto& [name, value] : j["cascades"].items()) {
    const MetaValue c(value, path, "/cascades/" + name);
    c.expect_object();
    if (!valid_name(name)) c.fail("a cascade's name is letters, digits, '.', '_' or '-'");
    for (const auto& [key, v] : value.items()) {
      if (key != "student" && key != "teacher" && key != "threshold" && key != "confidence" && key != "blend")
        MetaValue(v, path, c.pointer() + "/" + key).fail("unknown key");
    }
    Cascade k{name, c.at("student").string(), c.at("teacher").string(), std::nullopt,
              c.string_or("confidence", "probability")};
    if (c.has("threshold")) k.threshold = c.at("threshold").number(0.0, 1.0);
    if (c.has("blend")) {
      if (!k.threshold)
        c.at("blend").fail("give \"threshold\" too (without it both come from the student's file)");
      k.blend = c.at("blend").number(0.0, 1.0);
    }
    if (k.confidence != "probability" && k.confidence != "margin")
      c.at("confidence").fail("expected \"probability\" or \"margin\"");
    if (k.student == k.teacher) c.fail("the student and the teacher are the same model");
    out[name] = std::move(k);
  }
  return out;
}

std::vector<std::string> Registry::poll() {
  std::vector<std::string> log;
  std::error_code ec;
  fs::directory_iterator it(dir_, ec);
  if (ec) throw Error(fmt::format("{}: cannot read the model folder: {}", dir_, ec.message()));
  std::map<std::string, std::pair<std::string, FileState>> files;  // name -> path, state
  std::optional<std::pair<std::string, FileState>> manifest;
  for (const auto& entry : it) {
    const std::string file = entry.path().filename().string();
    if (file.empty() || file[0] == '.') continue;  // hidden: temporaries of an atomic write
    const bool is_model = entry.path().extension() == ".mighty";
    if (!is_model && file != "cascades.json") continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    const FileState state{static_cast<int64_t>(st.st_size),
                          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                          static_cast<uint64_t>(st.st_ino)};
    if (is_model)
      files[entry.path().stem().string()] = {entry.path().string(), state};
    else
      manifest = std::pair{entry.path().string(), state};
  }
  for (const auto& [name, file] : files) {
    const auto seen = seen_.find(file.first);
    if (seen != seen_.end() && seen->second == file.second) continue;
    seen_[file.first] = file.second;
    try {
      if (!valid_name(name))
        throw Error(file.first + ": a model's name (the file's stem) is letters, digits, '.', '_' or '-'");
      std::shared_ptr<const Model> m = load(name, file.first);
      std::shared_ptr<const Model> old;
      {
        std::lock_guard lock(mutex_);
        old = models_[name];
        models_[name] = m;
      }
      log.push_back(old ? fmt::format("reloaded {} version {} (was {})", name, m->version, old->version)
                        : fmt::format("loaded {} version {} from {}", name, m->version, file.first));
      metrics_.reload(name, true);
    } catch (const std::exception& e) {
      const bool serving = model(name) != nullptr;
      log.push_back(fmt::format("refused {}: {}{}", file.first, e.what(),
                                serving ? " (the loaded version keeps serving)" : ""));
      metrics_.reload(name, false);
    }
  }
  // Unload models whose file is gone.
  std::vector<std::string> gone;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, m] : models_)
      if (!files.count(name)) gone.push_back(name);
    for (const auto& name : gone) models_.erase(name);
  }
  for (const auto& name : gone) log.push_back(fmt::format("unloaded {} (its file is gone)", name));
  for (auto s = seen_.begin(); s != seen_.end();) {
    const bool still =
        (manifest && manifest->first == s->first) ||
        std::any_of(files.begin(), files.end(), [&](const auto& f) { return f.second.first == s->first; });
    s = still ? std::next(s) : seen_.erase(s);
  }
  if (manifest) {
    const auto seen = seen_.find(manifest->first);
    if (seen == seen_.end() || !(seen->second == manifest->second)) {
      seen_[manifest->first] = manifest->second;
      try {
        auto cascades = read_manifest(manifest->first);
        std::lock_guard lock(mutex_);
        cascades_ = std::move(cascades);
        log.push_back(fmt::format("read {} ({} cascade{})", manifest->first, cascades_.size(),
                                  cascades_.size() == 1 ? "" : "s"));
        metrics_.reload("cascades.json", true);
      } catch (const std::exception& e) {
        log.push_back(
            fmt::format("refused {}: {} (the cascades already read stay)", manifest->first, e.what()));
        metrics_.reload("cascades.json", false);
      }
    }
  } else {
    std::lock_guard lock(mutex_);
    if (!cascades_.empty()) log.push_back("cascades.json is gone: no cascades");
    cascades_.clear();
  }
  return log;
}

std::shared_ptr<const Model> Registry::model(const std::string& name) const {
  std::lock_guard lock(mutex_);
  const auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

std::optional<Cascade> Registry::cascade(const std::string& name) const {
  std::lock_guard lock(mutex_);
  const auto it = cascades_.find(name);
  if (it == cascades_.end()) return std::nullopt;
  return it->second;
}

size_t Registry::size() const {
  std::lock_guard lock(mutex_);
  return models_.size();
}

nlohmann::json Registry::list() const {
  std::lock_guard lock(mutex_);
  nlohmann::json models = nlohmann::json::array(), cascades = nlohmann::json::array();
  for (const auto& [name, m] : models_) models.push_back(m->info);
  for (const auto& [name, c] : cascades_) {
    nlohmann::json row = {
        {"name", name}, {"student", c.student}, {"teacher", c.teacher}, {"confidence", c.confidence}};
    std::optional<double> t = c.threshold;
    const auto s = models_.find(c.student);
    if (!t && s != models_.end()) t = s->second->cascade_threshold;
    row["threshold"] = t ? nlohmann::json(*t) : nlohmann::json(nullptr);
    row["blend"] = c.threshold ? c.blend : s != models_.end() ? s->second->cascade_blend : 0.0;
    row["threshold_from"] = c.threshold ? "cascades.json" : t ? "the student's file" : "none (cannot answer)";
    cascades.push_back(row);
  }
  return {{"models", models}, {"cascades", cascades}};
}

}  // namespace mighty::serve
