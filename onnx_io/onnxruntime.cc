#include "onnx_io/onnxruntime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "onnx_io/ort_runner_script.h"  // generated from scripts/ort-runner.js
#include "runtime/error.h"

extern char** environ;

namespace mighty::onnx_io {
namespace fs = std::filesystem;

namespace {

std::string on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = (end > start ? dirs.substr(start, end - start) : ".") + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

}  // namespace

std::string ort_node_modules(const std::string& data_cache) {
  return data_cache + "/npm-onnxruntime-1.30.0/node_modules";
}

std::string ort_unavailable(const std::string& node_modules) {
  if (on_path("node").empty()) return "node is not on PATH (scripts/setup installs nodejs)";
  for (const char* package : {"onnxruntime-node", "onnxruntime-common"}) {
    if (!fs::exists(fs::path(node_modules) / package / "package.json"))
      return fmt::format("npm package {} is not installed in {} (scripts/setup installs it)", package,
                         node_modules);
  }
  return "";
}

OrtSession::OrtSession(const std::string& model, const OrtOptions& options)
    : model_(model), timeout_s_(options.timeout_s) {
  static std::atomic<int> counter{0};
  stderr_path_ =
      (fs::temp_directory_path() / fmt::format("mighty-ort-{}-{}.stderr", ::getpid(), counter.fetch_add(1)))
          .string();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(fmt::format("onnxruntime ({}): cannot make a socket: {}", model_, std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], 0);
  posix_spawn_file_actions_adddup2(&actions, sv[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> args = {
      "node",    "-e",  kOrtRunnerScript, "--",
      "--model", model, "--threads",      std::to_string(std::max(1, options.threads))};
  if (!options.optimized_path.empty()) {
    args.push_back("--optimized");
    args.push_back(options.optimized_path);
  }
  std::vector<std::string> env = {"NODE_PATH=" + options.node_modules};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "NODE_PATH=", 10) != 0) env.emplace_back(*e);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  for (auto& e : env) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  const int rc = ::posix_spawnp(&pid_, "node", &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(sv[1]);
  fd_ = sv[0];
  if (rc != 0) {
    ::close(fd_);
    fd_ = -1;
    pid_ = -1;
    throw Error(fmt::format("onnxruntime ({}): cannot start node: {}", model_, std::strerror(rc)));
  }
  nlohmann::json hello;
  try {
    hello = nlohmann::json::parse(read_line());
  } catch (const nlohmann::json::exception&) {
    throw Error(failure("the runner's first line is not JSON"));
  }
  version_ = hello.value("version", "unknown");
}

OrtSession::~OrtSession() {
  if (fd_ >= 0) ::close(fd_);  // the runner's input ends: it exits
  if (pid_ > 0) {
    int status = 0;
    for (int i = 0; i < 500 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  std::error_code ec;
  fs::remove(stderr_path_, ec);
}

std::string OrtSession::failure(const std::string& what) const {
  if (pid_ > 0) {  // let the runner finish writing its last words
    int status = 0;
    for (int i = 0; i < 200 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string last = last_line(stderr_path_);
  return fmt::format("onnxruntime ({}): {}", model_, last.empty() ? what : last);
}

void OrtSession::fill() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
  char chunk[1 << 16];
  for (;;) {
    const auto left = std::chrono::duration<double, std::milli>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::max(0.0, left.count())));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) throw Error(failure(fmt::format("no reply within {:g} s", timeout_s_)));
    const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw Error(failure("the runner ended without a reply"));
    buffer_.append(chunk, static_cast<size_t>(got));
    return;
  }
}

std::string OrtSession::read_bytes(size_t n) {
  while (buffer_.size() < n) fill();
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return out;
}

std::string OrtSession::read_line() {
  size_t at;
  while ((at = buffer_.find('\n')) == std::string::npos) fill();
  std::string line = buffer_.substr(0, at);
  buffer_.erase(0, at + 1);
  return line;
}

std::string OrtSession::request(const std::string& op, const char* dtype, const void* data, size_t bytes,
                                const std::vector<int64_t>& shape, const std::string& extra,
                                std::string* payload) {
  nlohmann::json head = extra.empty() ? nlohmann::json::object() : nlohmann::json::parse(extra);
  head["op"] = op;
  head["dtype"] = dtype;
  head["shape"] = shape;
  head["bytes"] = bytes;
  std::string out = head.dump() + "\n";
  out.append(static_cast<const char*>(data), bytes);
  for (size_t sent = 0; sent < out.size();) {
    const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(failure("the runner ended before its input"));
    sent += static_cast<size_t>(n);
  }
  const std::string line = read_line();
  nlohmann::json reply;
  try {
    reply = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    throw Error(failure("a reply that is not JSON"));
  }
  if (reply.contains("error"))
    throw Error(fmt::format("onnxruntime ({}): {}", model_, reply["error"].get<std::string>()));
  if (payload) *payload = read_bytes(reply.at("bytes").get<size_t>());
  return line;
}

namespace {

size_t elements(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::vector<float> floats_of(const std::string& payload, const std::string& reply,
                             std::vector<int64_t>* shape) {
  if (shape) *shape = nlohmann::json::parse(reply).at("shape").get<std::vector<int64_t>>();
  std::vector<float> out(payload.size() / sizeof(float));
  std::memcpy(out.data(), payload.data(), out.size() * sizeof(float));
  return out;
}

std::vector<double> times_of(const std::string& reply) {
  return nlohmann::json::parse(reply).at("ms").get<std::vector<double>>();
}

}  // namespace

std::vector<float> OrtSession::run(const float* x, const std::vector<int64_t>& shape,
                                   std::vector<int64_t>* out_shape) {
  std::string payload;
  const std::string r = request("run", "float32", x, elements(shape) * 4, shape, "", &payload);
  return floats_of(payload, r, out_shape);
}

std::vector<float> OrtSession::run(const int64_t* ids, const std::vector<int64_t>& shape,
                                   std::vector<int64_t>* out_shape) {
  std::string payload;
  const std::string r = request("run", "int64", ids, elements(shape) * 8, shape, "", &payload);
  return floats_of(payload, r, out_shape);
}

std::vector<double> OrtSession::time(const float* x, const std::vector<int64_t>& shape, int runs,
                                     bool identity) {
  const std::string extra =
      fmt::format(R"({{"runs": {}, "model": "{}"}})", runs, identity ? "identity" : "main");
  return times_of(request("time", "float32", x, elements(shape) * 4, shape, extra, nullptr));
}

std::vector<double> OrtSession::time(const int64_t* ids, const std::vector<int64_t>& shape, int runs,
                                     bool identity) {
  const std::string extra =
      fmt::format(R"({{"runs": {}, "model": "{}"}})", runs, identity ? "identity" : "main");
  return times_of(request("time", "int64", ids, elements(shape) * 8, shape, extra, nullptr));
}

}  // namespace mighty::onnx_io
