#include "runtime/text/email_text.h"

#include "runtime/text/text_corpus.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

namespace mighty {
namespace {

// The "C" locale's std::isspace and std::tolower, inline (the library calls cost a fifth of email_text).
bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    i = skip_ascii(s, i);
    if (i == s.size()) break;
    const Utf8Char c = decode_utf8(s, i);
    if (c.error != Utf8Error::kNone) return false;
    i += c.length;
  }
  return true;
}

// A message or part: headers (lower-case names, unfolded values) and the body.
struct Part {
  std::map<std::string, std::string> headers;
  std::string_view body;
};

Part parse_part(std::string_view s) {
  Part p;
  size_t end = s.find("\n\n");
  if (!s.empty() && s.front() == '\n') end = 0;  // no headers at all
  const std::string_view head = end == std::string_view::npos ? s : s.substr(0, end);
  p.body = end == std::string_view::npos ? std::string_view() : s.substr(end + (end == 0 ? 1 : 2));
  std::string name, value;
  auto flush = [&] {
    if (!name.empty() && !p.headers.count(name)) p.headers[name] = std::string(trim(value));
    name.clear();
    value.clear();
  };
  size_t at = 0;
  while (at < head.size()) {
    size_t nl = head.find('\n', at);
    if (nl == std::string_view::npos) nl = head.size();
    const std::string_view line = head.substr(at, nl - at);
    at = nl + 1;
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      value += ' ';
      value += trim(line);
      continue;
    }
    flush();
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    name = lower(trim(line.substr(0, colon)));
    value = std::string(line.substr(colon + 1));
  }
  flush();
  return p;
}

std::string header(const Part& p, const std::string& name) {
  const auto it = p.headers.find(name);
  return it == p.headers.end() ? std::string() : it->second;
}

// A parameter of a structured header value, e.g. boundary="..." of Content-Type.
std::string parameter(const std::string& value, const std::string& name) {
  const std::string low = lower(value);
  size_t at = 0;
  while ((at = low.find(name, at)) != std::string::npos) {
    const bool start = at == 0 || low[at - 1] == ';' || is_space(low[at - 1]);
    size_t eq = at + name.size();
    while (eq < low.size() && low[eq] == ' ') ++eq;
    if (!start || eq >= low.size() || low[eq] != '=') {
      at += name.size();
      continue;
    }
    size_t v = eq + 1;
    while (v < value.size() && value[v] == ' ') ++v;
    if (v < value.size() && value[v] == '"') {
      const size_t close = value.find('"', v + 1);
      return value.substr(v + 1, close == std::string::npos ? std::string::npos : close - v - 1);
    }
    size_t e = v;
    while (e < value.size() && value[e] != ';' && !is_space(value[e])) ++e;
    return value.substr(v, e - v);
  }
  return {};
}

std::string decode_body(const Part& p) {
  const std::string cte = lower(trim(header(p, "content-transfer-encoding")));
  if (cte == "quoted-printable") return decode_quoted_printable(p.body);
  if (cte == "base64") return decode_base64(p.body);
  return std::string(p.body);
}

// RFC 2047 encoded words in a header value.
std::string decode_words(const std::string& s) {
  std::string out;
  size_t at = 0;
  while (at < s.size()) {
    const size_t start = s.find("=?", at);
    if (start == std::string::npos) break;
    const size_t q1 = s.find('?', start + 2);
    const size_t q2 = q1 == std::string::npos ? q1 : s.find('?', q1 + 1);
    const size_t end = q2 == std::string::npos ? q2 : s.find("?=", q2 + 1);
    if (end == std::string::npos || q2 != q1 + 2) {
      out += s.substr(at, start + 2 - at);
      at = start + 2;
      continue;
    }
    std::string between = s.substr(at, start - at);
    if (!trim(between).empty() || out.empty()) out += between;  // whitespace between encoded words goes
    const char enc = to_lower(s[q1 + 1]);
    std::string text = s.substr(q2 + 1, end - q2 - 1);
    if (enc == 'q') {
      for (char& c : text) c = c == '_' ? ' ' : c;
      out += to_utf8(decode_quoted_printable(text));
    } else if (enc == 'b') {
      out += to_utf8(decode_base64(text));
    } else {
      out += s.substr(start, end + 2 - start);
    }
    at = end + 2;
  }
  out += s.substr(std::min(at, s.size()));
  return out;
}

// The text of a part: {plain, html}; recursion into multiparts (bounded depth).
void collect(const Part& p, int depth, std::string& plain, std::string& html) {
  const std::string type_value = header(p, "content-type");
  const std::string type = lower(trim(type_value.substr(0, type_value.find(';'))));
  if (type.rfind("multipart/", 0) == 0 && depth < 8) {
    const std::string boundary = parameter(type_value, "boundary");
    if (!boundary.empty()) {
      const std::string delimiter = "--" + boundary;
      std::string_view body = p.body;
      size_t at = body.find(delimiter);
      while (at != std::string_view::npos) {
        size_t begin = body.find('\n', at);
        if (begin == std::string_view::npos) break;
        if (body.substr(at + delimiter.size(), 2) == "--") break;  // the closing delimiter
        ++begin;
        const size_t next = body.find("\n" + delimiter, begin);
        const std::string_view inner =
            body.substr(begin, next == std::string_view::npos ? std::string_view::npos : next - begin);
        collect(parse_part(inner), depth + 1, plain, html);
        at = next == std::string_view::npos ? next : next + 1;
      }
      return;
    }
  }
  if (!type.empty() && type != "text/plain" && type != "text/html" && type.rfind("multipart/", 0) != 0)
    return;
  const std::string decoded = to_utf8(decode_body(p));
  if (type == "text/html") {
    html += html_to_text(decoded);
    html += '\n';
  } else {
    plain += decoded;
    plain += '\n';
  }
}

}  // namespace

std::string decode_quoted_printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      const size_t run_end = std::min(s.find('=', i), s.size());
      out.append(s.substr(i, run_end - i));
      i = run_end - 1;
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '\n') {  // soft line break
      ++i;
      continue;
    }
    if (i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
      continue;
    }
    out += '=';
  }
  return out;
}

std::string decode_base64(std::string_view s) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (c == '=') break;
    if (v < 0) continue;  // line breaks, stray characters
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::string to_utf8(std::string_view bytes) {
  if (valid_utf8(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    const auto b = static_cast<uint8_t>(ch);
    if (b < 0x80) {
      out += ch;
    } else {
      out += static_cast<char>(0xC0 | (b >> 6));
      out += static_cast<char>(0x80 | (b & 0x3F));
    }
  }
  return out;
}

std::string html_to_text(std::string_view html) {
  static const std::vector<std::pair<std::string, std::string>> entities = {
      {"&nbsp;", " "}, {"&amp;", "&"}, {"&lt;", "<"},          {"&gt;", ">"},        {"&quot;", "\""},
      {"&apos;", "'"}, {"&#39;", "'"}, {"&copy;", "\xC2\xA9"}, {"&reg;", "\xC2\xAE"}};
  std::string out;
  size_t i = 0;
  while (i < html.size()) {
    const char c = html[i];
    if (c == '<') {
      if (html.substr(i, 4) == "<!--") {
        const size_t end = html.find("-->", i + 4);
        i = end == std::string_view::npos ? html.size() : end + 3;
        continue;
      }
      const size_t end = html.find('>', i + 1);
      if (end == std::string_view::npos) break;
      const std::string tag = lower(html.substr(i + 1, std::min<size_t>(end - i - 1, 8)));
      i = end + 1;
      for (const char* skip : {"script", "style"}) {
        if (tag.rfind(skip, 0) == 0) {
          const size_t close = lower(html.substr(i)).find(std::string("</") + skip);
          i = close == std::string::npos ? html.size() : i + close;
        }
      }
      out += ' ';
      continue;
    }
    if (c == '&') {
      bool replaced = false;
      for (const auto& [name, text] : entities) {
        if (html.substr(i, name.size()) == name) {
          out += text;
          i += name.size();
          replaced = true;
          break;
        }
      }
      if (!replaced && i + 2 < html.size() && html[i + 1] == '#') {
        size_t j = i + 2;
        uint32_t code = 0;
        while (j < html.size() && j < i + 9 && html[j] >= '0' && html[j] <= '9') {
          code = code * 10 + static_cast<uint32_t>(html[j] - '0');
          ++j;
        }
        if (j < html.size() && html[j] == ';' && j > i + 2 && code > 0 && code < 0x110000) {
          out += encode_utf8(static_cast<char32_t>(code));
          i = j + 1;
          replaced = true;
        }
      }
      if (replaced) continue;
    }
    out += c;
    ++i;
  }
  return out;
}

std::string email_text(std::string_view raw, size_t max_bytes) {
  std::string normalized;
  normalized.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      if (i + 1 < raw.size() && raw[i + 1] == '\n') continue;
      normalized += '\n';
      continue;
    }
    const size_t run_end = std::min(raw.find('\r', i), raw.size());
    normalized.append(raw.substr(i, run_end - i));
    i = run_end - 1;
  }
  const Part message = parse_part(normalized);
  std::string plain, html;
  if (message.headers.empty()) {
    plain = to_utf8(normalized);  // not an email at all: the text as it is
  } else {
    collect(message, 0, plain, html);
  }
  const std::string text = decode_words(to_utf8(header(message, "subject"))) + "\n" +
                           (plain.find_first_not_of(" \n\t") != std::string::npos ? plain : html);
  // Whitespace runs -> one space; trimmed; cut at a character boundary.
  std::string out;
  bool space = false;
  for (char c : text) {
    if (is_space(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
    if (out.size() >= max_bytes) break;
  }
  if (out.size() > max_bytes) out.resize(max_bytes);
  if (!out.empty()) {  // drop a last character the cut left incomplete
    size_t lead = out.size() - 1;
    while (lead > 0 && (static_cast<uint8_t>(out[lead]) & 0xC0) == 0x80) --lead;
    const auto b = static_cast<uint8_t>(out[lead]);
    const size_t need = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (out.size() - lead < need) out.resize(lead);
  }
  return out;
}

}  // namespace mighty
