// A document classifier (input kind "documents", the spam filter): raw text (an email) -> email_text (at most
// max_bytes) -> the artifact's own tokenizer (tensor "tokenizer.vocab_json", zlib-compressed vocab.json) ->
// at most max_tokens ids -> the session's bag model. The session itself knows nothing of text.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "runtime/exec/session.h"
#include "runtime/text/tokenizer.h"

namespace mighty {

class DocumentModel {
 public:
  // Reads and checks the tokenizer; an Error when the session's model is not a document classifier. The
  // session must outlive this object.
  explicit DocumentModel(const Session& session);

  const Session& session() const { return *session_; }
  std::vector<int64_t> ids(std::string_view raw) const;
  std::vector<float> run(std::string_view raw) const;  // class scores

 private:
  const Session* session_;
  std::unique_ptr<UnigramTokenizer> tokenizer_;
};

}  // namespace mighty
