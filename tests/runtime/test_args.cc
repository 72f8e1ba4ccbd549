// mighty-run's command line (apps/args.h): values, ranges, multi-value options, flags, help, and one line
// with exit code 2 for each misuse.
#include <catch2/catch.hpp>

#include "apps/args.h"

namespace {

struct Cli {
  mighty::args::Parser parser{"prog", "prog: a test", "prog 1.2"};
  std::string path, name;
  int threads = 1;
  int64_t runs = 5;
  uint64_t seed = 0;
  double temperature = 0.0;
  std::vector<std::string> emails;
  bool logits = false;
  mighty::args::Command* go = nullptr;
  mighty::args::Command* other = nullptr;

  Cli() {
    go = &parser.add("go", "Do it");
    go->positional("path", &path, "a file")
        .option("--name", &name, "a name")
        .option("--threads", &threads, "threads", 1, 8)
        .option("--runs", &runs, "runs", 1, 1000)
        .option("--seed", &seed, "seed")
        .option("--temperature", &temperature, "temperature", 0.0, 100.0)
        .options("--email", &emails, "emails")
        .flag("--logits", &logits, "logits")
        .check("--threads",
               [](const std::string& v) { return v == "7" ? std::string("not 7") : std::string(); });
    other = &parser.add("other", "Something else");
  }
  mighty::args::Outcome parse(std::vector<std::string> a) { return parser.parse(a); }
};

}  // namespace

TEST_CASE("args: values of every kind reach their variables") {
  Cli c;
  const auto o =
      c.parse({"go", "--runs", "12", "file.bin", "--name=x y", "--threads", "3", "--seed",
               "18446744073709551615", "--temperature", "0.5", "--email", "a", "b", "c", "--logits"});
  REQUIRE(o.exit_code == -1);
  REQUIRE(o.error.empty());
  REQUIRE(c.go->parsed());
  REQUIRE_FALSE(c.other->parsed());
  REQUIRE(c.path == "file.bin");
  REQUIRE(c.name == "x y");
  REQUIRE(c.threads == 3);
  REQUIRE(c.runs == 12);
  REQUIRE(c.seed == UINT64_MAX);
  REQUIRE(c.temperature == 0.5);
  REQUIRE(c.emails == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(c.logits);
}

TEST_CASE("args: defaults stay when an option is not given") {
  Cli c;
  REQUIRE(c.parse({"other"}).exit_code == -1);
  REQUIRE(c.other->parsed());
  REQUIRE(c.runs == 5);
  REQUIRE(c.threads == 1);
  REQUIRE_FALSE(c.logits);
}

TEST_CASE("args: help and version exit 0 with their text") {
  Cli c;
  auto o = c.parse({"--help"});
  REQUIRE(o.exit_code == 0);
  REQUIRE_THAT(o.out,
               Catch::Contains("go") && Catch::Contains("Something else") && Catch::Contains("--version"));
  o = c.parse({"go", "--help"});  // the positional may be missing when help is asked for
  REQUIRE(o.exit_code == 0);
  REQUIRE_THAT(o.out, Catch::Contains("Usage: prog go path") && Catch::Contains("--runs X") &&
                          Catch::Contains("[1..1000]") && Catch::Contains("(one or more)"));
  REQUIRE_FALSE(c.go->parsed());
  o = c.parse({"--version"});
  REQUIRE(o.exit_code == 0);
  REQUIRE(o.out == "prog 1.2\n");
}

TEST_CASE("args: every misuse is one line, exit code 2, naming the argument") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "a command is required"},
      {{"nope"}, "unknown command 'nope'"},
      {{"go"}, "go: path is required"},
      {{"go", "f", "g"}, "go: unexpected argument 'g'"},
      {{"go", "f", "--bogus"}, "go: unknown option --bogus"},
      {{"go", "f", "--runs"}, "go: --runs needs a value"},
      {{"go", "f", "--runs", "--logits"}, "go: --runs needs a value"},
      {{"go", "f", "--runs", "0"}, "go: --runs: 0 is outside [1, 1000]"},
      {{"go", "f", "--runs", "1001"}, "go: --runs: 1001 is outside [1, 1000]"},
      {{"go", "f", "--runs", "99999999999999999999"}, "go: --runs: 99999999999999999999 is outside"},
      {{"go", "f", "--runs", "12x"}, "go: --runs: '12x' is not an integer"},
      {{"go", "f", "--runs="}, "go: --runs: an empty value is not an integer"},
      {{"go", "f", "--runs", "3", "--runs", "4"}, "go: --runs given twice"},
      {{"go", "f", "--threads", "9"}, "go: --threads: 9 is outside [1, 8]"},
      {{"go", "f", "--threads", "7"}, "go: --threads: not 7"},
      {{"go", "f", "--seed", "-1"}, "go: --seed: '-1' is not an integer in [0, 2^64)"},
      {{"go", "f", "--seed", "18446744073709551616"}, "go: --seed: '18446744073709551616' is not an integer"},
      {{"go", "f", "--temperature", "nan"}, "go: --temperature: 'nan' is not a number"},
      {{"go", "f", "--temperature", "-0.5"}, "go: --temperature: -0.5 is outside [0, 100]"},
      {{"go", "f", "--logits=1"}, "go: --logits takes no value"},
      {{"go", "f", "--email"}, "go: --email needs a value"},
  };
  for (const auto& [argv, expected] : cases) {
    Cli c;
    const auto o = c.parse(argv);
    INFO(expected);
    REQUIRE(o.exit_code == 2);
    REQUIRE(o.out.empty());
    REQUIRE(o.error.find('\n') == std::string::npos);
    REQUIRE_THAT(o.error, Catch::StartsWith("prog: error: " + expected));
  }
}
