// One fuzz input through the text path of a document classifier (runtime/text/): email_text (RFC 822 / MIME:
// headers, encoded words, multipart, quoted-printable, base64, HTML), NFKC, and a unigram tokenizer, as
// `mighty-run run` on emails, the C API and `mighty-run serve` do before the model. None of these may throw
// or crash on any bytes; their outputs must keep their promises: at most max_bytes of valid UTF-8 without
// whitespace runs, ids inside the vocabulary. Shared by the libFuzzer target (fuzz_text.cc) and the replay of
// its corpus in the runtime tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/text/email_text.h"
#include "runtime/text/tokenizer.h"

namespace mighty::fuzz {

// Whether `s` is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(n) >= s.size()) return false;  // the sequence is cut off
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const char32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

inline const UnigramTokenizer& fuzz_tokenizer() {
  static const UnigramTokenizer t = [] {
    std::vector<std::pair<std::string, double>> pieces = {
        {"<pad>", 0}, {"<s>", 0},       {"</s>", 0},       {"<unk>", 0},   {"<r1>", 0},
        {"<r2>", 0},  {"\u2581", -2},   {"\u2581the", -3}, {"e", -4},      {"s", -4},
        {"free", -5}, {"\u2581fr", -5}, {"ee", -4.5},      {"\u00e9", -6}, {"1", -6}};
    return UnigramTokenizer(std::move(pieces));
  }();
  return t;
}

// "" when every step kept its promises; else what went wrong.
inline std::string text_one(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  std::string text;  // at the default 4096 bytes, which NFKC and the tokenizer then read
  for (const size_t max_bytes : {size_t{7}, size_t{4096}}) {
    text = email_text(raw, max_bytes);
    if (text.size() > max_bytes)
      return fmt::format("email_text gave {} bytes, over {}", text.size(), max_bytes);
    if (!valid_utf8(text)) return "email_text gave invalid UTF-8";
    if (text.find("  ") != std::string::npos) return "email_text left a run of spaces";
  }
  // Its pieces on the raw bytes too (they must not throw); to_utf8 promises valid UTF-8.
  decode_quoted_printable(raw);
  decode_base64(raw);
  html_to_text(raw);
  if (!valid_utf8(to_utf8(raw))) return "to_utf8 gave invalid UTF-8";
  try {
    const std::string normalized = nfkc(text);
    if (!valid_utf8(normalized)) return "nfkc gave invalid UTF-8";
    const UnigramTokenizer& tokenizer = fuzz_tokenizer();
    for (const int32_t id : tokenizer.encode(text))
      if (id < 0 || static_cast<size_t>(id) >= tokenizer.size())
        return fmt::format("token id {} outside the vocabulary", id);
  } catch (const Error& e) {
#if defined(MIGHTY_NO_UTF8PROC)
    // This build (WebAssembly) has no NFKC tables: non-ASCII text is refused with this one line, by design.
    if (std::string_view(e.what()).find("needs utf8proc") != std::string_view::npos) return "";
#endif
    return std::string("NFKC or the tokenizer threw: ") + e.what();
  }
  return "";
}

}  // namespace mighty::fuzz
