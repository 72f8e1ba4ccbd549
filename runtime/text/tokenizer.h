// Text -> token ids, the way Universal Sentence Encoder Lite's own JavaScript tokenizer does it
// (@energetic-ai/embeddings 0.2.0): a SentencePiece unigram model decoded greedily by Viterbi over code
// points. Training (compress/) and deployment (the runtime, the C API) call this one implementation, so a
// deployed model sees exactly the ids it was trained on. Every quirk of the reference is kept on purpose (see
// docs/spam.md): NFKC, spaces -> U+2581 with one U+2581 in front, pieces below id `reserved` never matched,
// ties to the later start, an unmatched character -> id 0 (consecutive ones merged), backtracking by the
// piece's UTF-16 length.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mighty {

// NFKC of UTF-8 text; invalid UTF-8 bytes become U+FFFD first (as a browser's TextDecoder does).
std::string nfkc(std::string_view utf8);

// UTF-8 -> code points, invalid bytes -> U+FFFD.
std::vector<char32_t> utf8_code_points(std::string_view utf8);

class UnigramTokenizer {
 public:
  // `pieces`: (piece, log-probability score) in id order. Throws mighty::Error on an empty or invalid
  // vocabulary.
  explicit UnigramTokenizer(std::vector<std::pair<std::string, double>> pieces, int reserved = 6);
  // vocab.json's layout: [[piece, score], ...]. `where` names the source in errors.
  static UnigramTokenizer from_json(const nlohmann::json& vocab, const std::string& where, int reserved = 6);

  std::vector<int32_t> encode(std::string_view utf8) const;

  size_t size() const { return scores_.size(); }
  const std::string& piece(int32_t id) const { return pieces_.at(static_cast<size_t>(id)); }
  int reserved() const { return reserved_; }

 private:
  int32_t child(int32_t node, char32_t c) const;

  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  std::vector<int32_t> utf16_lengths_;
  int reserved_;
  // The trie: node 0 is the root; edges keyed by (node << 21) | code point, in an open-addressing table
  // (linear probing, power-of-two size; slot keys store key + 1, 0 = empty).
  std::vector<uint64_t> edge_keys_;
  std::vector<int32_t> edge_nodes_;
  int edge_shift_ = 64;
  std::vector<int32_t> node_piece_;  // id of the piece ending at the node, or -1
};

}  // namespace mighty
