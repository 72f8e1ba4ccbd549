#include "serve/server.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "runtime/error.h"
#include "runtime/exec/tasks.h"
#include "runtime/io/atomic_file.h"
#include "serve/protocol.h"
#include "serve/registry.h"

namespace mighty::serve {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void log_line(const std::string& line) {
  std::fprintf(stderr, "mighty-run serve: %s\n", line.c_str());
  std::fflush(stderr);
}

const char* kJson = "application/json";

// The student's confidence in its answer for one example.
double confidence(const float* scores, int64_t n, const std::string& kind) {
  std::vector<double> p = softmax_probabilities(scores, n);
  std::partial_sort(p.begin(), p.begin() + std::min<int64_t>(2, n), p.end(), std::greater<>());
  return kind == "margin" && n > 1 ? p[0] - p[1] : p[0];
}

}  // namespace

struct Server::Impl {
  ServeOptions options;
  Metrics metrics;
  QueueLimit limit;
  Registry registry;
  httplib::Server http;
  int port = 0;
  int listen_fd = -1;  // the listening socket, as httplib made it
  std::mutex poll_mutex;
  std::condition_variable poll_wake;
  bool stopping = false;
  std::thread poller;

  explicit Impl(ServeOptions o)
      : options(std::move(o)),
        limit(options.max_queue),
        registry(options.dir,
                 {options.threads,
                  {options.max_batch, std::chrono::microseconds(options.max_delay_us), options.workers}},
                 limit, metrics) {}

  void reply_error(httplib::Response& res, int status, const std::string& model, const std::string& kind,
                   const std::string& message) {
    res.status = status;
    if (status == 503) res.set_header("Retry-After", "1");
    res.set_content(error_body(kind, message), kJson);
    metrics.error(model, kind);
  }

  // A predict request in JSON, or raw bytes (application/octet-stream), for a model reading `input`.
  PredictRequest read_request(const httplib::Request& req, const InputSpec& input) {
    if (req.get_header_value("Content-Type").rfind("application/octet-stream", 0) == 0) {
      return parse_predict_binary(req.body, input, options.max_items, req.get_param_value("top_k"),
                                  req.get_param_value("logits"));
    }
    return parse_predict(req.body, input, options.max_items);
  }

  // Runs a job on a model's batcher and waits for its rows.
  JobResult run(const Model& m, Job job) { return m.batcher->submit(std::move(job)).get(); }

  void predict_model(const Model& m, const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const PredictRequest r = read_request(req, m.input());
    std::vector<size_t> all(r.raw.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    const JobResult out = run(m, make_job(m, r, all));
    const int64_t per = m.outputs_per_example();
    std::string body =
        "{\"model\":" + json_string(m.name) + ",\"version\":" + json_string(m.version) + ",\"predictions\":[";
    body.reserve(body.size() + all.size() * (r.logits ? 400 : 200));
    for (size_t i = 0; i < all.size(); ++i) {
      if (i) body += ',';
      append_prediction(body, m, out.outputs.data() + static_cast<int64_t>(i) * per, r.top_k, r.logits);
    }
    body += "]}";
    res.set_content(std::move(body), kJson);
    metrics.latency(m.name, "queue", out.queue_seconds);
    metrics.latency(m.name, "run", out.run_seconds);
    metrics.latency(m.name, "total", seconds_since(t0));
    metrics.batch(m.name, out.batch_examples);
  }

  void predict_cascade(const Cascade& c, const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    const auto student = registry.model(c.student), teacher = registry.model(c.teacher);
    if (!student || !teacher)
      throw RequestError(503, "model_unavailable",
                         fmt::format("cascade {}: its {} {} is not loaded", c.name,
                                     student ? "teacher" : "student", student ? c.teacher : c.student));
    const std::optional<double> threshold = c.threshold ? c.threshold : student->cascade_threshold;
    const std::string kind = c.threshold ? c.confidence : student->cascade_confidence;
    const double blend = c.threshold ? c.blend : student->cascade_blend;
    if (!threshold)
      throw RequestError(
          500, "no_threshold",
          fmt::format("cascade {}: no threshold in cascades.json or in {}'s file", c.name, c.student));
    if (student->input().kind != teacher->input().kind)
      throw RequestError(500, "input_mismatch",
                         fmt::format("cascade {}: {} reads {}, {} reads {}", c.name, c.student,
                                     student->input().kind, c.teacher, teacher->input().kind));
    const PredictRequest r = read_request(req, student->input());
    std::vector<size_t> all(r.raw.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    const JobResult first = run(*student, make_job(*student, r, all));
    metrics.latency(c.name, "student", seconds_since(t0));
    const int64_t per_s = student->outputs_per_example(), per_t = teacher->outputs_per_example();
    if (blend > 0 && per_s != per_t)
      throw RequestError(
          500, "blend_mismatch",
          fmt::format("cascade {}: blend {} needs as many outputs from {} ({}) as from {} ({})", c.name,
                      blend, c.student, per_s, c.teacher, per_t));
    std::vector<size_t> deferred;
    std::vector<double> conf(all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      conf[i] = confidence(first.outputs.data() + static_cast<int64_t>(i) * per_s, per_s, kind);
      if (conf[i] < *threshold) deferred.push_back(i);
    }
    JobResult second;
    if (!deferred.empty()) {
      const auto t1 = Clock::now();
      second = run(*teacher, make_job(*teacher, r, deferred));
      metrics.latency(c.name, "teacher", seconds_since(t1));
    }
    std::string body =
        nlohmann::json({{"cascade", c.name},
                        {"threshold", *threshold},
                        {"confidence", kind},
                        {"blend", blend},
                        {"versions", {{"student", student->version}, {"teacher", teacher->version}}}})
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    body.pop_back();  // the closing brace: the predictions follow
    body += ",\"predictions\":[";
    size_t d = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      const bool by_teacher = d < deferred.size() && deferred[d] == i;
      const Model& m = by_teacher ? *teacher : *student;
      const float* mine = first.outputs.data() + static_cast<int64_t>(i) * per_s;
      const std::vector<float> mix =
          by_teacher ? cascade_fallback_scores(mine, second.outputs.data() + static_cast<int64_t>(d) * per_t,
                                               per_t, blend)
                     : std::vector<float>();
      const float* scores = by_teacher ? mix.data() : mine;
      if (i) body += ',';
      append_prediction(
          body, m, scores, r.top_k, r.logits,
          fmt::format(",\"answered_by\":\"{}\",\"model\":{},\"version\":{},\"student_confidence\":{}",
                      by_teacher ? "teacher" : "student", json_string(m.name), json_string(m.version),
                      std::isfinite(conf[i]) ? fmt::format("{}", conf[i]) : std::string("null")));
      if (by_teacher) ++d;
    }
    body += "]}";
    res.set_content(std::move(body), kJson);
    metrics.cascade(c.name, static_cast<int64_t>(all.size() - deferred.size()),
                    static_cast<int64_t>(deferred.size()));
    metrics.latency(c.name, "total", seconds_since(t0));
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    std::string label;  // the metrics' model label: only names that exist (no unbounded label sets)
    res.status = 200;
    try {
      if (const auto c = registry.cascade(name)) {
        label = name;
        predict_cascade(*c, req, res);
      } else if (const auto m = registry.model(name)) {
        label = name;
        predict_model(*m, req, res);
      } else {
        throw RequestError(404, "unknown_model", fmt::format("no model or cascade named \"{}\"", name));
      }
    } catch (const RequestError& e) {
      reply_error(res, e.status(), label, e.kind(), e.what());
    } catch (const QueueFull& e) {
      reply_error(res, 503, label, "queue_full",
                  fmt::format("{} ({} examples queued); retry later", e.what(), limit.limit()));
    } catch (const std::exception& e) {
      reply_error(res, 500, label, "internal", e.what());
    }
    metrics.request(label, res.status);
  }

  void routes() {
    http.Post(R"(/v1/models/([A-Za-z0-9._-]+):predict)",
              [this](const httplib::Request& req, httplib::Response& res) { predict(req, res); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      res.set_content(registry.list().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                      kJson);
      metrics.request("", res.status);
    });
    http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(nlohmann::json({{"status", "ok"}, {"models", registry.size()}}).dump() + "\n", kJson);
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus(limit.depth(), limit.limit(), static_cast<int64_t>(registry.size())),
                      "text/plain; version=0.0.4");
    });
    // Whatever httplib refuses itself (no route, body too large, bad request line) still answers one JSON
    // line.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string kind = res.status == 404   ? "no_route"
                               : res.status == 413 ? "body_too_large"
                                                   : fmt::format("http_{}", res.status);
      const std::string message =
          res.status == 404 ? fmt::format("no route {} {}", req.method, req.path)
          : res.status == 413
              ? fmt::format("the body is larger than this server's limit of {} bytes", options.max_body_bytes)
              : fmt::format("HTTP {}", res.status);
      res.set_content(error_body(kind, message), kJson);
      metrics.error("", kind);
      metrics.request("", res.status);
    });
    http.set_exception_handler(
        [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          res.status = 500;
          res.set_content(error_body("internal", what), kJson);
          metrics.error("", "internal");
        });
  }

  void poll_loop() {
    std::unique_lock lock(poll_mutex);
    while (!stopping) {
      poll_wake.wait_for(lock, std::chrono::milliseconds(options.poll_ms), [&] { return stopping; });
      if (stopping) break;
      lock.unlock();
      try {
        for (const auto& line : registry.poll()) log_line(line);
      } catch (const std::exception& e) {
        log_line(e.what());
      }
      lock.lock();
    }
  }
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  for (const auto& line : s.registry.poll()) log_line(line);
  s.http.new_task_queue = [n = s.options.http_threads] {
    return new httplib::ThreadPool(static_cast<size_t>(n));
  };
  s.http.set_payload_max_length(static_cast<size_t>(s.options.max_body_bytes));
  s.http.set_keep_alive_max_count(100000);
  s.http.set_tcp_nodelay(true);  // answers go out at once (Nagle + delayed ACKs would add ~40 ms)
  s.http.set_read_timeout(10, 0);
  s.http.set_write_timeout(10, 0);
  s.routes();
  // httplib's own options for the socket it listens on, and the socket kept (the last one it made is the one
  // that bound: it closes those that fail).
  s.http.set_socket_options([&s](socket_t sock) {
    httplib::default_socket_options(sock);
    s.listen_fd = sock;
  });
  if (s.options.port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
  } else {
    s.port = s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  }
  if (s.port <= 0)
    throw Error(fmt::format("serve: cannot listen on {}:{} (in use, or not an address of this machine)",
                            s.options.host, s.options.port));
  // Debian's cpp-httplib 0.11 (compiled) listens with a backlog of 5. More clients connecting at once than
  // that (a burst of new connections while the accept thread waits for a core) overflowed the accept queue:
  // the kernel dropped their handshakes, and some first requests failed after the 1 s SYN-ACK retry (3 to 18
  // of 32 connections in 1 of 5 bursts on 2 cores). Calling listen() again on a listening socket sets its
  // backlog.
  if (::listen(s.listen_fd, SOMAXCONN) != 0)
    log_line(fmt::format("cannot widen the listen backlog of port {} (it stays at 5)", s.port));
}

Server::~Server() {
  stop();
  if (impl_->poller.joinable()) impl_->poller.join();
}

int Server::port() const { return impl_->port; }

void Server::run() {
  Impl& s = *impl_;
  s.poller = std::thread([&s] { s.poll_loop(); });
  if (!s.options.port_file.empty()) write_file_atomic(s.options.port_file, std::to_string(s.port) + "\n");
  log_line(fmt::format("listening on http://{}:{} ({} model{} from {})", s.options.host, s.port,
                       s.registry.size(), s.registry.size() == 1 ? "" : "s", s.options.dir));
  s.http.listen_after_bind();
}

void Server::stop() {
  {
    std::lock_guard lock(impl_->poll_mutex);
    impl_->stopping = true;
  }
  impl_->poll_wake.notify_all();
  impl_->http.stop();
}

int serve(const ServeOptions& options) {
  // SIGINT/SIGTERM go to one thread that stops the server; every other thread has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Every batch allocates activations of a few MB. glibc's defaults give such blocks back to the kernel on
  // free (mmap, and the worker threads' arenas trimmed with madvise), so the next batch page-faults them in
  // again: a third of the server's CPU under load (perf), 42k -> 66k examples/s on the default student at 2
  // cores. Keep them: blocks below 64 MiB come from the heap, and free memory is trimmed past 256 MiB only.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  Server server(options);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    log_line(sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping");
    server.stop();
  });
  server.run();
  // run() also returns when the server stops for another reason: wake the waiter so it can be joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  log_line("stopped");
  return 0;
}

}  // namespace mighty::serve
