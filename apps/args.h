#pragma once
// mighty-run's command line: one command (subcommand) with required positionals, typed options with ranges,
// multi-value options and flags; `--help` at either level, `--version` at the top. Every misuse is one line.
//
// mighty-run is the deployable program (static on aarch64, a .wasm in the browser), so it does not use CLI11
// as the `mighty` and `mighty-onnx` tools do: CLI11's string streams pull libstdc++'s whole locale machinery
// (and its wide-character and monetary facets) into a static binary, about 0.25 MB of its own code besides.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mighty::args {

class Command {
 public:
  Command(std::string name, std::string help);

  // A required positional argument, filled in order.
  Command& positional(const std::string& name, std::string* out, const std::string& help);
  Command& option(const std::string& name, std::string* out, const std::string& help);
  // Numbers: the whole text must parse and lie in [lo, hi].
  Command& option(const std::string& name, int* out, const std::string& help, int64_t lo, int64_t hi);
  Command& option(const std::string& name, int64_t* out, const std::string& help, int64_t lo, int64_t hi);
  Command& option(const std::string& name, uint64_t* out, const std::string& help);
  Command& option(const std::string& name, double* out, const std::string& help, double lo, double hi);
  // One or more values: every argument after the name up to the next one that starts with "--".
  Command& options(const std::string& name, std::vector<std::string>* out, const std::string& help);
  Command& flag(const std::string& name, bool* out, const std::string& help);
  // One more test of an option's value once it parsed: the error text, or "" when the value is fine.
  Command& check(const std::string& name, std::function<std::string(const std::string&)> test);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  bool parsed() const { return parsed_; }
  std::string usage(const std::string& program) const;

 private:
  friend class Parser;
  struct Arg {
    std::string name, help, range;
    bool positional = false, flag = false, multi = false, seen = false;
    std::function<std::string(const std::string&)> set;  // "" or the error
    std::vector<std::function<std::string(const std::string&)>> checks;
  };
  Arg& add(const std::string& name, const std::string& help,
           std::function<std::string(const std::string&)> set, std::string range = "");
  Arg* find(const std::string& name);
  // Parses this command's arguments (after its name); "" or the error.
  std::string parse(const std::vector<std::string>& args, size_t begin);

  std::string name_, help_;
  std::vector<Arg> args_;
  bool parsed_ = false;
};

struct Outcome {
  int exit_code = -1;  // -1: run the parsed command; else exit with it (0: help or version shown)
  std::string out;     // help or version text, for stdout
  std::string error;   // one line for stderr (no newline), when exit_code > 0
};

class Parser {
 public:
  Parser(std::string program, std::string description, std::string version);
  Command& add(const std::string& name, const std::string& help);
  // Exactly one command must be named; its arguments follow it.
  Outcome parse(const std::vector<std::string>& args);
  // parse() on argv[1..]: prints help/version to stdout and an error line to stderr, returns the Outcome's
  // code.
  int parse(int argc, char** argv);
  std::string usage() const;

 private:
  std::string program_, description_, version_;
  std::vector<std::unique_ptr<Command>> commands_;
};

}  // namespace mighty::args
