#include "runtime/text/text_corpus.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace mighty {

std::string encode_utf8(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

Utf8Char decode_utf8(std::string_view s, size_t i) {
  Utf8Char c;
  const auto b0 = static_cast<uint8_t>(s[i]);
  size_t len = 0;
  char32_t min = 0;
  if (b0 < 0x80) {
    c.cp = b0;
    return c;
  } else if ((b0 & 0xe0) == 0xc0) {
    len = 2, c.cp = b0 & 0x1f, min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, c.cp = b0 & 0x0f, min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, c.cp = b0 & 0x07, min = 0x10000;
  } else {
    c.error = Utf8Error::kLeadByte;
    return c;
  }
  size_t j = i + 1;
  for (; j < i + len && j < s.size() && (static_cast<uint8_t>(s[j]) & 0xc0) == 0x80; ++j) {
    c.cp = (c.cp << 6) | (static_cast<uint8_t>(s[j]) & 0x3f);
  }
  c.skip = j - i;
  if (i + len > s.size()) {
    c.error = Utf8Error::kTruncated;
  } else if (j < i + len) {
    c.error = Utf8Error::kContinuation;
    c.error_at = j;
  } else if (c.cp < min || c.cp > 0x10ffff || (c.cp >= 0xd800 && c.cp <= 0xdfff)) {
    c.error = Utf8Error::kCodePoint;
  } else {
    c.length = len;
  }
  return c;
}

TextCorpus parse_text_corpus(const std::string& bytes, const std::string& what) {
  if (bytes.empty()) throw Error(what + ": the text is empty");
  std::vector<char32_t> cps;
  cps.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const Utf8Char c = decode_utf8(bytes, i);
    switch (c.error) {
      case Utf8Error::kNone:
        break;
      case Utf8Error::kLeadByte:
        throw Error(fmt::format("{}: invalid UTF-8 lead byte 0x{:02x} at byte offset {}", what,
                                static_cast<uint8_t>(bytes[i]), i));
      case Utf8Error::kTruncated:
        throw Error(fmt::format("{}: truncated UTF-8 sequence at byte offset {}", what, i));
      case Utf8Error::kContinuation:
        throw Error(fmt::format("{}: invalid UTF-8 continuation byte 0x{:02x} at byte offset {}", what,
                                static_cast<uint8_t>(bytes[c.error_at]), c.error_at));
      case Utf8Error::kCodePoint:
        throw Error(fmt::format("{}: invalid UTF-8 code point U+{:04X} at byte offset {}", what,
                                static_cast<uint32_t>(c.cp), i));
    }
    cps.push_back(c.cp);
    i += c.length;
  }
  TextCorpus out;
  out.vocab = cps;
  std::sort(out.vocab.begin(), out.vocab.end());
  out.vocab.erase(std::unique(out.vocab.begin(), out.vocab.end()), out.vocab.end());
  out.ids.reserve(cps.size());
  for (char32_t cp : cps) {
    out.ids.push_back(
        static_cast<int32_t>(std::lower_bound(out.vocab.begin(), out.vocab.end(), cp) - out.vocab.begin()));
  }
  return out;
}

}  // namespace mighty
