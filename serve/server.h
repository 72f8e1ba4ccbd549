// mighty-run serve: the models of a folder over HTTP/1.1 (cpp-httplib), JSON in and out, no LibTorch.
//   POST /v1/models/NAME:predict   a model, or a cascade of cascades.json (student first, teacher when the
//                                  student's confidence is under the threshold)
//   GET  /v1/models                the models (version, recipe hash, verify results) and cascades
//   GET  /metrics                  Prometheus text
//   GET  /healthz
// Requests go through each model's micro-batcher (serve/batcher.h); the folder is polled for new versions
// (serve/registry.h). Binds to loopback unless told otherwise.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace mighty::serve {

struct ServeOptions {
  std::string dir;
  std::string host = "127.0.0.1";
  int port = 8080;        // 0: any free port (see port_file)
  std::string port_file;  // written (atomically) with the bound port once the server listens
  int threads = 1;        // kernel threads per model
  int workers = 2;        // batches of one model run at once
  int http_threads = 16;  // connections served at once
  int64_t max_batch = 64;
  int64_t max_delay_us = 0;
  int64_t max_queue = 4096;  // examples queued over all models before 503
  int64_t max_body_bytes = 16 << 20;
  int64_t max_items = 1024;  // instances per request
  int poll_ms = 500;
};

class Server {
 public:
  // Reads the folder (an unreadable folder is an Error; a bad file is refused and logged) and binds.
  explicit Server(ServeOptions options);
  ~Server();
  int port() const;
  // Serves until stop() (from another thread or a signal handler thread).
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs a server until SIGINT or SIGTERM; returns the exit code.
int serve(const ServeOptions& options);

}  // namespace mighty::serve
