#include "launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "runtime/error.h"

namespace mighty::apps {
namespace {

std::vector<pid_t> g_children;

void forward_signal(int sig) {
  for (pid_t pid : g_children) {
    if (pid > 0) ::kill(pid, sig);
  }
}

// A port the kernel considers free right now (the usual launcher's race: another process could take it
// before rank 0 binds it; rank 0 then fails with a clear error).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("launcher: cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error("launcher: cannot bind a loopback port");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string describe(int status) {
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("exited with status {}", WEXITSTATUS(status));
}

int exit_code(int status) { return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status); }

}  // namespace

std::vector<std::string> without_option(int argc, char** argv, const std::string& name) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == name) {
      ++i;  // and its value
      continue;
    }
    if (a.rfind(name + "=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

int launch_local(int nproc, const std::vector<std::string>& args, double grace_s) {
  const int port = free_port();
  std::vector<char*> child_argv;
  for (const auto& a : args) child_argv.push_back(const_cast<char*>(a.c_str()));
  child_argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  g_children.assign(static_cast<size_t>(nproc), -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      forward_signal(SIGKILL);
      throw Error(fmt::format("launcher: cannot start rank {}", r));
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execv("/proc/self/exe", child_argv.data());
      std::fprintf(stderr, "mighty: error: launcher: cannot run /proc/self/exe for rank %d\n", r);
      ::_exit(127);
    }
    g_children[static_cast<size_t>(r)] = pid;
  }
  // Ctrl-C reaches every rank from the terminal; a TERM sent to the launcher is passed on.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, forward_signal);

  using Clock = std::chrono::steady_clock;
  int running = nproc, result = 0;
  bool failed = false;
  Clock::time_point deadline{};
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, failed ? WNOHANG : 0);
    if (pid == 0 || (pid < 0 && errno == EINTR)) {
      if (failed && Clock::now() > deadline) {
        fmt::print(stderr, "mighty: launcher: ranks still running {:g} s after the failure; killing them\n",
                   grace_s);
        forward_signal(SIGKILL);
        deadline = Clock::now() + std::chrono::hours(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (pid < 0) break;
    int r = 0;
    while (r < nproc && g_children[static_cast<size_t>(r)] != pid) ++r;
    if (r == nproc) continue;
    g_children[static_cast<size_t>(r)] = -1;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) fmt::print(stderr, "mighty: launcher: rank {} {}\n", r, describe(status));
    if (!ok && !failed) {
      failed = true;
      result = exit_code(status);
      deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000.0));
    }
  }
  return result;
}

}  // namespace mighty::apps
