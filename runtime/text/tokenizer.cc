#include "runtime/text/tokenizer.h"

#if !defined(MIGHTY_NO_UTF8PROC)
#include <utf8proc.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <unordered_map>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/text/text_corpus.h"

namespace mighty {
namespace {

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kSeparator = 0x2581;  // SentencePiece's word boundary

}  // namespace

std::vector<char32_t> utf8_code_points(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    for (const size_t ascii_end = skip_ascii(s, i); i < ascii_end; ++i)
      out.push_back(static_cast<uint8_t>(s[i]));
    if (i == s.size()) break;
    const Utf8Char c = decode_utf8(s, i);
    out.push_back(c.error == Utf8Error::kNone ? c.cp : kReplacement);
    i += c.error == Utf8Error::kNone ? c.length : c.skip;
  }
  return out;
}

std::string nfkc(std::string_view utf8) {
  // ASCII is its own NFKC (and valid UTF-8): most email text takes this path.
  if (skip_ascii(utf8, 0) == utf8.size()) return std::string(utf8);
  std::string clean;
  clean.reserve(utf8.size());
  for (char32_t c : utf8_code_points(utf8)) clean += encode_utf8(c);
#if defined(MIGHTY_NO_UTF8PROC)
  throw Error(
      "NFKC normalization of non-ASCII text needs utf8proc, which this build (WebAssembly) does not have");
#else
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(clean.data()), static_cast<utf8proc_ssize_t>(clean.size()),
      &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (n < 0) throw Error(fmt::format("NFKC normalization failed: {}", utf8proc_errmsg(n)));
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
#endif
}

UnigramTokenizer::UnigramTokenizer(std::vector<std::pair<std::string, double>> pieces, int reserved)
    : reserved_(reserved) {
  if (pieces.empty()) throw Error("tokenizer: the vocabulary is empty");
  if (reserved < 1 || static_cast<size_t>(reserved) > pieces.size()) {
    throw Error(fmt::format("tokenizer: {} reserved pieces in a vocabulary of {}", reserved, pieces.size()));
  }
  node_piece_.push_back(-1);
  std::unordered_map<uint64_t, int32_t> edges;  // while building; then flattened for lookups
  for (size_t id = 0; id < pieces.size(); ++id) {
    const auto& [text, score] = pieces[id];
    pieces_.push_back(text);
    scores_.push_back(score);
    const auto cps = utf8_code_points(text);
    int32_t units = 0;
    for (char32_t c : cps) units += c >= 0x10000 ? 2 : 1;
    utf16_lengths_.push_back(units);
    if (static_cast<int>(id) < reserved || cps.empty()) continue;
    int32_t node = 0;
    for (char32_t c : cps) {
      const uint64_t key = (static_cast<uint64_t>(node) << 21) | c;
      auto it = edges.find(key);
      if (it == edges.end()) {
        it = edges.emplace(key, static_cast<int32_t>(node_piece_.size())).first;
        node_piece_.push_back(-1);
      }
      node = it->second;
    }
    node_piece_[static_cast<size_t>(node)] = static_cast<int32_t>(id);  // a repeated piece: the last one wins
  }
  size_t capacity = 16;
  while (capacity < 2 * edges.size()) capacity *= 2;
  edge_shift_ = 64 - __builtin_ctzll(capacity);
  edge_keys_.assign(capacity, 0);
  edge_nodes_.assign(capacity, -1);
  for (const auto& [key, child] : edges) {
    size_t slot = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> edge_shift_);
    while (edge_keys_[slot] != 0) slot = (slot + 1) & (capacity - 1);
    edge_keys_[slot] = key + 1;
    edge_nodes_[slot] = child;
  }
}

UnigramTokenizer UnigramTokenizer::from_json(const nlohmann::json& vocab, const std::string& where,
                                             int reserved) {
  if (!vocab.is_array()) throw Error(fmt::format("{}: a vocabulary is an array of [piece, score]", where));
  std::vector<std::pair<std::string, double>> pieces;
  pieces.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    const auto& e = vocab[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !(e[1].is_number() || e[1].is_null())) {
      throw Error(fmt::format("{}: entry {} is not [piece, score]", where, i));
    }
    // USE-Lite's vocabulary has null scores (the pieces with ':'); JavaScript adds null as 0.
    pieces.emplace_back(e[0].get<std::string>(), e[1].is_null() ? 0.0 : e[1].get<double>());
  }
  return UnigramTokenizer(std::move(pieces), reserved);
}

int32_t UnigramTokenizer::child(int32_t node, char32_t c) const {
  const uint64_t key = (static_cast<uint64_t>(node) << 21) | c;
  const size_t mask = edge_keys_.size() - 1;
  for (size_t slot = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> edge_shift_);;
       slot = (slot + 1) & mask) {
    if (edge_keys_[slot] == key + 1) return edge_nodes_[slot];
    if (edge_keys_[slot] == 0) return -1;
  }
}

std::vector<int32_t> UnigramTokenizer::encode(std::string_view utf8) const {
  const std::string normalized = nfkc(utf8);
  if (normalized.empty()) return {};
  std::vector<char32_t> symbols{kSeparator};
  for (char32_t c : utf8_code_points(normalized)) symbols.push_back(c == U' ' ? kSeparator : c);
  const size_t n = symbols.size();

  // Viterbi, relaxing forward from each start in ascending order: every position receives its arcs in the
  // reference's order (by end, then ascending start) and is final before arcs leave it, so this equals the
  // reference's lattice pass without building the lattice. 0 means "not reached yet" (scores are
  // log-probabilities, below 0), and ties go to the later arc.
  std::vector<double> best(n + 1, 0.0);
  std::vector<int32_t> words(n + 1, 0);
  auto relax = [&](size_t end, double score, int32_t id) {
    if (best[end] == 0.0 || score >= best[end]) {
      best[end] = score;
      words[end] = id;
    }
  };
  for (size_t i = 0; i < n; ++i) {
    bool matched = false;
    int32_t node = child(0, symbols[i]);
    for (size_t j = i; j < n && node >= 0;) {
      const int32_t id = node_piece_[static_cast<size_t>(node)];
      if (id >= 0) {
        relax(j + 1, scores_[static_cast<size_t>(id)] + best[i], id);
        matched = true;
      }
      ++j;
      node = j < n ? child(node, symbols[j]) : -1;
    }
    if (!matched) relax(i + 1, 0.0 + best[i], 0);  // unknown: one character, id 0, score 0
  }
  std::vector<int32_t> reversed;
  for (auto at = static_cast<int64_t>(n); at > 0;) {
    const int32_t id = words[static_cast<size_t>(at)];
    reversed.push_back(id);
    at -= std::max(1, utf16_lengths_[static_cast<size_t>(id)]);
  }
  std::vector<int32_t> ids;
  bool previous_unknown = false;
  for (int32_t id : reversed) {
    if (!(previous_unknown && id == 0)) ids.push_back(id);
    previous_unknown = id == 0;
  }
  return {ids.rbegin(), ids.rend()};
}

}  // namespace mighty
