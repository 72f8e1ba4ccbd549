// A character-level corpus: strict UTF-8, a vocabulary of the distinct code points (sorted), and the text as
// ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mighty {

struct TextCorpus {
  std::vector<char32_t> vocab;  // id -> code point, ascending
  std::vector<int32_t> ids;
};

// Invalid UTF-8 is an error naming `what` and the byte offset; an empty text is an error.
TextCorpus parse_text_corpus(const std::string& bytes, const std::string& what);
TextCorpus load_text_corpus(const std::string& path);

std::string encode_utf8(char32_t cp);

}  // namespace mighty
