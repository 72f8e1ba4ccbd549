// The models a server serves: every NAME.mighty in its folder, by name, and the cascades of its manifest
// (cascades.json). The folder is polled: a new or changed file is read, verified (checksums, every check of
// Session, one example run) and swapped in while requests keep flowing; a file that fails is refused with
// one line and the version already loaded keeps serving; a removed file is unloaded. Requests hold the
// version they started with (shared_ptr), so a swap never changes an answer under way.
#pragma once
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/exec/session.h"
#include "runtime/text/document_model.h"
#include "serve/batcher.h"
#include "serve/metrics.h"

namespace mighty::serve {

// One loaded version of a model.
struct Model {
  std::string name, version, path;  // version: xxHash64 of the file's bytes (16 hex digits)
  std::string loaded_at;            // UTC, ISO 8601
  std::unique_ptr<Session> session;
  std::unique_ptr<DocumentModel> documents;  // document classifiers only
  nlohmann::json info;                       // what GET /v1/models shows
  std::optional<double> cascade_threshold;   // metadata "cascade"/"threshold" (written by verify)
  std::string cascade_confidence = "probability";
  double cascade_blend =
      0.0;  // metadata "cascade"/"blend": the student's weight in what it leaves (0: teacher)
  std::vector<std::string> json_labels;  // each class label as a JSON string (quoted, escaped), for answers
  std::unique_ptr<Batcher> batcher;      // last: its worker stops before the session goes

  const InputSpec& input() const { return session->input_spec(); }
  int64_t outputs_per_example() const;
};

struct Cascade {
  std::string name, student, teacher;
  std::optional<double> threshold;  // else the student's own (metadata), else the cascade cannot answer
  std::string confidence;           // "probability" (top-1 softmax) or "margin" (top-1 minus top-2)
  double blend = 0.0;  // with `threshold`: the student's weight in what it leaves (0: the teacher's)
};

struct RegistryOptions {
  int threads = 1;  // kernel threads per model
  Batcher::Options batching;
};

class Registry {
 public:
  Registry(std::string dir, RegistryOptions options, QueueLimit& limit, Metrics& metrics);
  ~Registry();

  // Looks at the folder once: loads what is new or changed, unloads what is gone. Returns one line per event
  // (loaded, refused, unloaded), for the log. An unreadable folder is an Error.
  std::vector<std::string> poll();

  std::shared_ptr<const Model> model(const std::string& name) const;  // null when not loaded
  std::optional<Cascade> cascade(const std::string& name) const;
  nlohmann::json list() const;  // GET /v1/models
  size_t size() const;
  const std::string& dir() const { return dir_; }

 private:
  struct FileState {
    int64_t size = 0;
    int64_t mtime_ns = 0;
    uint64_t inode = 0;
    bool operator==(const FileState& o) const {
      return size == o.size && mtime_ns == o.mtime_ns && inode == o.inode;
    }
  };
  std::shared_ptr<Model> load(const std::string& name, const std::string& path) const;
  std::map<std::string, Cascade> read_manifest(const std::string& path) const;
  std::string dir_;
  RegistryOptions options_;
  QueueLimit& limit_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Model>> models_;
  std::map<std::string, Cascade> cascades_;
  std::map<std::string, FileState> seen_;  // every file looked at, loaded or refused
};

}  // namespace mighty::serve
