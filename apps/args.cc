#include "apps/args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

namespace mighty::args {
namespace {

bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

using Setter = std::function<std::string(const std::string&)>;

// Integers of either width: the whole text, within [lo, hi].
template <typename T>
Setter integer_into(T* out, int64_t lo, int64_t hi) {
  return [out, lo, hi](const std::string& text) -> std::string {
    if (text.empty()) return "an empty value is not an integer";
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (*end != '\0') return fmt::format("'{}' is not an integer", text);
    if (errno == ERANGE || v < lo || v > hi) return fmt::format("{} is outside [{}, {}]", text, lo, hi);
    *out = static_cast<T>(v);
    return {};
  };
}

Setter text_into(std::string* out) {
  return [out](const std::string& v) {
    *out = v;
    return std::string();
  };
}

}  // namespace

Command::Command(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}

Command::Arg& Command::add(const std::string& name, const std::string& help, Setter set, std::string range) {
  args_.push_back(Arg{});
  Arg& a = args_.back();
  a.name = name;
  a.help = help;
  a.set = std::move(set);
  a.range = std::move(range);
  return a;
}

Command::Arg* Command::find(const std::string& name) {
  for (auto& a : args_)
    if (a.name == name) return &a;
  return nullptr;
}

Command& Command::positional(const std::string& name, std::string* out, const std::string& help) {
  add(name, help, text_into(out)).positional = true;
  return *this;
}

Command& Command::option(const std::string& name, std::string* out, const std::string& help) {
  add(name, help, text_into(out));
  return *this;
}

Command& Command::option(const std::string& name, int64_t* out, const std::string& help, int64_t lo,
                         int64_t hi) {
  add(name, help, integer_into(out, lo, hi), fmt::format("{}..{}", lo, hi));
  return *this;
}

Command& Command::option(const std::string& name, int* out, const std::string& help, int64_t lo, int64_t hi) {
  add(name, help, integer_into(out, lo, hi), fmt::format("{}..{}", lo, hi));
  return *this;
}

Command& Command::option(const std::string& name, uint64_t* out, const std::string& help) {
  add(name, help, [out](const std::string& v) {
    errno = 0;
    char* end = nullptr;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || v[0] == '+' || *end != '\0' || errno == ERANGE)
      return fmt::format("'{}' is not an integer in [0, 2^64)", v);
    *out = x;
    return std::string();
  });
  return *this;
}

Command& Command::option(const std::string& name, double* out, const std::string& help, double lo,
                         double hi) {
  auto set = [out, lo, hi](const std::string& text) -> std::string {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(v)) return fmt::format("'{}' is not a number", text);
    if (v < lo || v > hi) return fmt::format("{} is outside [{}, {}]", text, lo, hi);
    *out = v;
    return {};
  };
  add(name, help, set, fmt::format("{}..{}", lo, hi));
  return *this;
}

Command& Command::options(const std::string& name, std::vector<std::string>* out, const std::string& help) {
  add(name, help, [out](const std::string& v) {
    out->push_back(v);
    return std::string();
  }).multi = true;
  return *this;
}

Command& Command::flag(const std::string& name, bool* out, const std::string& help) {
  add(name, help, [out](const std::string&) {
    *out = true;
    return std::string();
  }).flag = true;
  return *this;
}

Command& Command::check(const std::string& name, std::function<std::string(const std::string&)> test) {
  Arg* a = find(name);
  if (a == nullptr) throw std::logic_error("args: check on an unknown argument " + name);
  a->checks.push_back(std::move(test));
  return *this;
}

std::string Command::usage(const std::string& program) const {
  std::string s = fmt::format("Usage: {} {}", program, name_);
  for (const auto& a : args_)
    if (a.positional) s += " " + a.name;
  s += " [OPTIONS]\n" + help_ + "\n";
  size_t width = 0;
  for (const auto& a : args_) width = std::max(width, a.name.size() + (a.positional || a.flag ? 0 : 2));
  auto line = [&](const Command::Arg& a) {
    const std::string head = a.positional || a.flag ? a.name : a.name + " X";
    std::string text = a.help;
    if (!a.range.empty()) text += " [" + a.range + "]";
    if (a.multi) text += " (one or more)";
    return fmt::format("  {:<{}}  {}\n", head, width, text);
  };
  bool any = false;
  for (const auto& a : args_)
    if (a.positional) s += (any ? "" : (any = true, "\nArguments:\n")) + line(a);
  s += "\nOptions:\n";
  for (const auto& a : args_)
    if (!a.positional) s += line(a);
  s += fmt::format("  {:<{}}  {}\n", "--help", width, "This text");
  return s;
}

std::string Command::parse(const std::vector<std::string>& args, size_t begin) {
  parsed_ = true;
  size_t next_positional = 0;
  auto run = [](Arg& a, const std::string& value) {
    std::string e = a.set(value);
    for (const auto& test : a.checks)
      if (e.empty()) e = test(value);
    return e.empty() ? e : a.name + ": " + e;
  };
  for (size_t i = begin; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word.rfind("--", 0) != 0 || word == "--") {
      size_t seen = 0;
      Arg* target = nullptr;
      for (auto& a : args_)
        if (a.positional && seen++ == next_positional) target = &a;
      if (target == nullptr) return fmt::format("unexpected argument '{}'", word);
      ++next_positional;
      if (auto e = run(*target, word); !e.empty()) return e;
      continue;
    }
    const size_t eq = word.find('=');
    const std::string name = word.substr(0, eq);
    Arg* a = find(name);
    if (a == nullptr || a->positional) return fmt::format("unknown option {}", name);
    if (a->seen && !a->multi) return fmt::format("{} given twice", name);
    a->seen = true;
    if (a->flag) {
      if (eq != std::string::npos) return fmt::format("{} takes no value", name);
      if (auto e = run(*a, ""); !e.empty()) return e;
      continue;
    }
    std::vector<std::string> values;
    if (eq != std::string::npos) {
      values.push_back(word.substr(eq + 1));
    } else {
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
        values.push_back(args[++i]);
        if (!a->multi) break;
      }
    }
    if (values.empty()) return fmt::format("{} needs a value", name);
    for (const auto& v : values)
      if (auto e = run(*a, v); !e.empty()) return e;
  }
  size_t positionals = 0;
  for (const auto& a : args_)
    if (a.positional && positionals++ >= next_positional) return fmt::format("{} is required", a.name);
  return {};
}

Parser::Parser(std::string program, std::string description, std::string version)
    : program_(std::move(program)), description_(std::move(description)), version_(std::move(version)) {}

Command& Parser::add(const std::string& name, const std::string& help) {
  commands_.push_back(std::make_unique<Command>(name, help));
  return *commands_.back();
}

std::string Parser::usage() const {
  std::string s =
      fmt::format("{}\nUsage: {} COMMAND [ARGUMENTS] ({} COMMAND --help: its options)\n\nCommands:\n",
                  description_, program_, program_);
  size_t width = 0;
  for (const auto& c : commands_) width = std::max(width, c->name().size());
  for (const auto& c : commands_) s += fmt::format("  {:<{}}  {}\n", c->name(), width, c->help());
  s += fmt::format("\nOptions:\n  --help     This text\n  --version  {}'s version\n", program_);
  return s;
}

Outcome Parser::parse(const std::vector<std::string>& args) {
  Outcome o;
  auto misuse = [&](const std::string& what, const std::string& help) {
    o.exit_code = 2;
    o.error = fmt::format("{}: error: {} ({} --help)", program_, what, help);
    return o;
  };
  if (args.empty()) return misuse("a command is required", program_);
  if (is_help(args[0])) {
    o.exit_code = 0;
    o.out = usage();
    return o;
  }
  if (args[0] == "--version") {
    o.exit_code = 0;
    o.out = version_ + "\n";
    return o;
  }
  Command* command = nullptr;
  for (const auto& c : commands_)
    if (c->name() == args[0]) command = c.get();
  if (command == nullptr) return misuse(fmt::format("unknown command '{}'", args[0]), program_);
  for (size_t i = 1; i < args.size(); ++i) {
    if (is_help(args[i])) {
      o.exit_code = 0;
      o.out = command->usage(program_);
      return o;
    }
  }
  if (auto e = command->parse(args, 1); !e.empty())
    return misuse(command->name() + ": " + e, program_ + " " + command->name());
  return o;
}

int Parser::parse(int argc, char** argv) {
  const Outcome o = parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!o.out.empty()) std::fputs(o.out.c_str(), stdout);
  if (!o.error.empty()) std::fprintf(stderr, "%s\n", o.error.c_str());
  return o.exit_code;
}

}  // namespace mighty::args
