// Running the command-line programs from tests: exit status, stdout and stderr of one command.
#pragma once

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace mighty::testing {

struct Outcome {
  int status = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline Outcome run(const std::string& args) {
  const std::string err_path =
      (std::filesystem::temp_directory_path() / ("mighty_cli_" + std::to_string(::getpid()) + ".err"))
          .string();
  const std::string cmd = args + " 2>" + err_path;
  Outcome o;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  const int raw = ::pclose(p);
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  o.err = slurp(err_path);
  std::filesystem::remove(err_path);
  return o;
}

inline size_t lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

inline std::string write_temp(const std::string& name, const std::string& text) {
  const auto p =
      std::filesystem::temp_directory_path() / ("mighty_cli_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p.string();
}

}  // namespace mighty::testing
