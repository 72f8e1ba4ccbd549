// ONNX Runtime beside mighty, for the comparisons in verify and the tests: one ONNX model served by
// onnxruntime-node (npm, installed by scripts/setup into the data cache) through a small Node runner that is
// built into this library (scripts/ort-runner.js). The runner is a child process talking over a socket; it
// runs batches and times session.run alone, so a timing holds ONNX Runtime's work and its Node binding, not
// the socket (the binding's own cost is measured separately, on a one-Identity model).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mighty::onnx_io {

struct OrtOptions {
  std::string node_modules;    // holds onnxruntime-node and onnxruntime-common
  int threads = 1;             // intra-op threads
  std::string optimized_path;  // when set: ORT writes the graph it optimized there
  double timeout_s = 600;      // for any one reply
};

// The npm package's folder inside a data cache directory.
std::string ort_node_modules(const std::string& data_cache);

// Why ONNX Runtime cannot run here ("node is not on PATH", "... not installed: run scripts/setup"), or ""
// when node and the package are present.
std::string ort_unavailable(const std::string& node_modules);

class OrtSession {
 public:
  // Starts the runner on `model`; an Error with ORT's or the runner's one line when it cannot load it.
  OrtSession(const std::string& model, const OrtOptions& options);
  ~OrtSession();
  OrtSession(const OrtSession&) = delete;
  OrtSession& operator=(const OrtSession&) = delete;

  const std::string& version() const { return version_; }  // ONNX Runtime's, as the package reports it

  // The model's output on a float32 (images, features) or int64 (token ids) input of `shape`.
  std::vector<float> run(const float* x, const std::vector<int64_t>& shape,
                         std::vector<int64_t>* out_shape = nullptr);
  std::vector<float> run(const int64_t* ids, const std::vector<int64_t>& shape,
                         std::vector<int64_t>* out_shape = nullptr);

  // `runs` timings in ms of session.run on this input, each alone, after a warm-up; `identity`: the same
  // call on a one-Identity model (the runner's overhead).
  std::vector<double> time(const float* x, const std::vector<int64_t>& shape, int runs,
                           bool identity = false);
  std::vector<double> time(const int64_t* ids, const std::vector<int64_t>& shape, int runs,
                           bool identity = false);

 private:
  std::string request(const std::string& op, const char* dtype, const void* data, size_t bytes,
                      const std::vector<int64_t>& shape, const std::string& extra, std::string* payload);
  void fill();  // reads what the runner sent so far (waits up to the timeout)
  std::string read_line();
  std::string read_bytes(size_t n);
  std::string failure(const std::string& what) const;  // what, plus the runner's last words on stderr

  std::string model_, version_, stderr_path_, buffer_;
  double timeout_s_;
  int fd_ = -1;
  pid_t pid_ = -1;
};

}  // namespace mighty::onnx_io
