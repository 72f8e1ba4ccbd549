// A character-level corpus: strict UTF-8, a vocabulary of the distinct code points (sorted), and the text as
// ids.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace mighty {

struct TextCorpus {
  std::vector<char32_t> vocab;  // id -> code point, ascending
  std::vector<int32_t> ids;
};

// Invalid UTF-8 is an error naming `what` and the byte offset; an empty text is an error.
TextCorpus parse_text_corpus(const std::string& bytes, const std::string& what);

std::string encode_utf8(char32_t cp);

// The UTF-8 sequence starting at s[i]: its code point, or what is wrong with it, checked in this order: a
// lead byte that starts no sequence, a sequence running past the end, a byte that does not continue it (at
// `error_at`), an overlong form / surrogate / value past U+10FFFF. `skip` is where a lenient reader resumes
// after one replacement character (the byte that broke the sequence, or past an invalid one).
enum class Utf8Error { kNone, kLeadByte, kTruncated, kContinuation, kCodePoint };
struct Utf8Char {
  char32_t cp = 0;
  size_t length = 1;  // bytes of a valid sequence
  size_t skip = 1;    // bytes to step over when invalid
  Utf8Error error = Utf8Error::kNone;
  size_t error_at = 0;
};
Utf8Char decode_utf8(std::string_view s, size_t i);

// The first position at or after i whose byte is not ASCII (s.size() if none); 8 bytes at a time, so the
// UTF-8 readers step over ASCII runs without decoding them.
inline size_t skip_ascii(std::string_view s, size_t i) {
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (word & 0x8080808080808080ull) break;
  }
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  return i;
}

}  // namespace mighty
