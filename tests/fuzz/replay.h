// The test suite's replay of a fuzzer's corpus (tests/fuzz/corpus/<target>, kept by scripts/fuzz): every file
// through the fuzzer's own check, which returns "" when the input was handled right. Catch2 tests only; the
// including target defines MIGHTY_SOURCE_DIR.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace mighty::fuzz {

// Checks every file; returns how many there were.
template <typename Check>
int replay_corpus(const std::string& target, Check check) {
  const auto corpus = std::filesystem::path(MIGHTY_SOURCE_DIR) / "tests/fuzz/corpus" / target;
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(e.path().filename().string());
    CHECK(check(bytes) == "");
    ++files;
  }
  return files;
}

}  // namespace mighty::fuzz
