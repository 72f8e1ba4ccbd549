// The text a classifier reads from a raw email (RFC 822 / MIME): the Subject, then the body's text. Training
// (compress/) and deployment (mighty-run, the C API) call this one function, so a deployed model sees what it
// was trained on. Routing headers (Received, Return-Path, ...) are left out on purpose: they identify the
// corpus's mail servers, not spam.
//
//   - headers unfolded; the Subject's RFC 2047 encoded words (=?charset?Q|B?...?=) decoded;
//   - multipart bodies split on their boundary, recursively; text/plain parts preferred, text/html parts used
//     when a message has no plain text; other parts (attachments) skipped;
//   - quoted-printable and base64 decoded; HTML tags, comments, <script> and <style> removed, common entities
//     decoded;
//   - bytes that are not valid UTF-8 read as Latin-1; whitespace runs collapsed to one space;
//   - at most `max_bytes` bytes (cut at a character boundary).
// Never throws on malformed input: whatever cannot be parsed is taken as plain text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mighty {

std::string email_text(std::string_view raw, size_t max_bytes = 4096);

// Pieces, exposed for tests.
std::string decode_quoted_printable(std::string_view s);
std::string decode_base64(std::string_view s);
std::string html_to_text(std::string_view html);
std::string to_utf8(std::string_view bytes);  // valid UTF-8 as is, otherwise Latin-1

}  // namespace mighty
