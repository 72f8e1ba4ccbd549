// What a classifier reads from a raw email: Subject + body text, decoded, without routing headers.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "../fuzz/replay.h"
#include "../fuzz/text_one.h"
#include "runtime/text/email_text.h"
#include "runtime/text/tokenizer.h"

using namespace mighty;

TEST_CASE("email text: subject and plain body, routing headers left out, whitespace collapsed") {
  const std::string raw =
      "From someone@example.com  Thu Aug 22 13:17:22 2002\r\n"
      "Received: from mail.example.com\r\n"
      "\tby relay.example.org\r\n"
      "Subject: Life Insurance -\r\n"
      " Why Pay More?\r\n"
      "\r\n"
      "Dear   friend,\r\n\r\n  save  today.\r\n";
  REQUIRE(email_text(raw) == "Life Insurance - Why Pay More? Dear friend, save today.");
}

TEST_CASE("email text: quoted-printable, base64, Latin-1 and encoded-word subjects") {
  REQUIRE(decode_quoted_printable("caf=E9 =3D tea=\nparty") == "caf\xE9 = teaparty");
  REQUIRE(decode_base64("SGVsbG8s\nIHdvcmxkIQ==") == "Hello, world!");
  REQUIRE(to_utf8("caf\xE9") == "caf\xC3\xA9");
  REQUIRE(to_utf8("caf\xC3\xA9") == "caf\xC3\xA9");
  const std::string raw =
      "Subject: =?iso-8859-1?Q?Gr=FC=DFe_aus?= =?utf-8?B?V2llbg==?=\n"
      "Content-Type: text/plain; charset=iso-8859-1\n"
      "Content-Transfer-Encoding: quoted-printable\n\n"
      "Sch=F6ne =\nGr=FC=DFe\n";
  REQUIRE(email_text(raw) ==
          "Gr\xC3\xBC\xC3\x9F"
          "e ausWien Sch\xC3\xB6ne Gr\xC3\xBC\xC3\x9F"
          "e");
}

TEST_CASE("email text: multipart prefers text/plain, falls back to HTML without tags, skips attachments") {
  const std::string alternative =
      "Subject: offer\n"
      "Content-Type: multipart/alternative; boundary=\"XYZ\"\n\n"
      "preamble\n"
      "--XYZ\n"
      "Content-Type: text/plain\n\n"
      "plain words\n"
      "--XYZ\n"
      "Content-Type: text/html\n\n"
      "<p>html words</p>\n"
      "--XYZ--\n";
  REQUIRE(email_text(alternative) == "offer plain words");
  const std::string html_only =
      "Subject: deal\n"
      "Content-Type: multipart/mixed; boundary=b1\n\n"
      "--b1\n"
      "Content-Type: text/html\n"
      "Content-Transfer-Encoding: base64\n\n" +
      std::string(
          "PGh0bWw+PHN0eWxlPnAge2NvbG9yOnJlZH08L3N0eWxlPjxwPkJ1eSZuYnNwO25vdyAmYW1wOyBzYXZlJiMzMzs8L3A+"
          "PCEtLSB4IC0tPjwvaHRtbD4=") +
      "\n--b1\n"
      "Content-Type: application/octet-stream\n\n"
      "AAAAAAAA\n"
      "--b1--\n";
  // <html><style>p {color:red}</style><p>Buy&nbsp;now &amp; save&#33;</p><!-- x --></html>
  REQUIRE(email_text(html_only) == "deal Buy now & save!");
}

TEST_CASE("email text: not an email, truncation at a character boundary, and garbage never crashes") {
  REQUIRE(email_text("just some text\nwith lines") == "just some text with lines");
  REQUIRE(email_text("Subject: x\n\n\xC3\xA9\xC3\xA9\xC3\xA9", 6) == "x \xC3\xA9\xC3\xA9");
  REQUIRE(email_text("Subject: x\n\n\xC3\xA9\xC3\xA9\xC3\xA9", 5) == "x \xC3\xA9");
  REQUIRE(email_text("").empty());
  std::mt19937 rng(7);
  const std::string alphabet =
      "\n\r\t -=:;\"<>&#?ABCXYZboundary--Content-Type: multipart/text/html;base64\xC3\xFF";
  for (int trial = 0; trial < 2000; ++trial) {
    std::string raw;
    const int n = static_cast<int>(rng() % 300);
    for (int i = 0; i < n; ++i) raw += alphabet[rng() % alphabet.size()];
    if (trial % 3 == 0) raw = "Content-Type: multipart/mixed; boundary=--\n\n" + raw;
    const std::string text = email_text(raw, 64);
    REQUIRE(text.size() <= 64);
    REQUIRE(utf8_code_points(text).size() <= text.size());  // decodes (valid or replaced), no crash
  }
}

TEST_CASE(
    "email text: the text fuzzer's corpus replays: no throw, at most max_bytes of valid UTF-8, ids in "
    "range") {
  REQUIRE(fuzz::replay_corpus("text", [](const std::string& bytes) {
            return fuzz::text_one(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
          }) > 100);
  // The replay's UTF-8 oracle itself: overlong forms, surrogates, cut-off and out-of-range sequences fail.
  REQUIRE(fuzz::valid_utf8("plain \xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80"));
  for (const char* bad :
       {"\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "a\xe2\x96", "\x80", "\xff"})
    REQUIRE_FALSE(fuzz::valid_utf8(bad));
}
