#include "runtime/text_corpus.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "runtime/atomic_file.h"
#include "runtime/error.h"

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

TextCorpus parse_text_corpus(const std::string& bytes, const std::string& what) {
  if (bytes.empty()) throw Error(what + ": the text is empty");
  std::vector<char32_t> cps;
  cps.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b0 = static_cast<uint8_t>(bytes[i]);
    int len = 0;
    char32_t cp = 0, min = 0;
    if (b0 < 0x80) {
      len = 1;
      cp = b0;
    } else if ((b0 & 0xe0) == 0xc0) {
      len = 2;
      cp = b0 & 0x1f;
      min = 0x80;
    } else if ((b0 & 0xf0) == 0xe0) {
      len = 3;
      cp = b0 & 0x0f;
      min = 0x800;
    } else if ((b0 & 0xf8) == 0xf0) {
      len = 4;
      cp = b0 & 0x07;
      min = 0x10000;
    } else
      throw Error(fmt::format("{}: invalid UTF-8 lead byte 0x{:02x} at byte offset {}", what, b0, i));
    if (i + len > bytes.size())
      throw Error(fmt::format("{}: truncated UTF-8 sequence at byte offset {}", what, i));
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<uint8_t>(bytes[i + k]);
      if ((b & 0xc0) != 0x80) {
        throw Error(
            fmt::format("{}: invalid UTF-8 continuation byte 0x{:02x} at byte offset {}", what, b, i + k));
      }
      cp = (cp << 6) | (b & 0x3f);
    }
    if (len > 1 && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) {
      throw Error(fmt::format("{}: invalid UTF-8 code point U+{:04X} at byte offset {}", what,
                              static_cast<uint32_t>(cp), i));
    }
    cps.push_back(cp);
    i += len;
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

TextCorpus load_text_corpus(const std::string& path) { return parse_text_corpus(read_file(path), path); }

}  // namespace mighty
