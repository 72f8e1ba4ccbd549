// A document classifier (input kind "documents", the spam filter): raw text (an email) -> email_text (at most
// max_bytes) -> the artifact's own tokenizer (tensor "tokenizer.vocab_json", zlib-compressed vocab.json) ->
// at most max_tokens ids -> the session's model: a bag model (EmbeddingBag, which skips ids < 0, so documents
// of different lengths share a run padded with -1) or a sequence model (Embedding, attention: each document
// runs alone at its own length, e.g. Universal Sentence Encoder Lite as a teacher). The session itself knows
// nothing of text.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "runtime/exec/session.h"
#include "runtime/text/tokenizer.h"

namespace mighty {

// Whether the model reads its token input only through EmbeddingBag: documents may then be batched with -1
// padding. Otherwise each runs alone, unpadded.
bool pads_documents(const Session& session);

class DocumentModel {
 public:
  // Reads and checks the tokenizer; an Error when the session's model is not a document classifier. The
  // session must outlive this object.
  explicit DocumentModel(const Session& session);

  const Session& session() const { return *session_; }
  std::vector<int64_t> ids(std::string_view raw) const;
  std::vector<float> run(std::string_view raw) const;  // class scores
  bool pads() const { return pads_; }

 private:
  const Session* session_;
  std::unique_ptr<UnigramTokenizer> tokenizer_;
  bool pads_ = true;
};

}  // namespace mighty
