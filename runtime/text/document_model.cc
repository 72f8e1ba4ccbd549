#include "runtime/text/document_model.h"

#include <algorithm>

#if !defined(MIGHTY_NO_ZLIB)
#include <zlib.h>
#endif

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/text/email_text.h"

namespace mighty {

bool pads_documents(const Session& session) {
  const Graph& g = session.graph();
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    if (g.nodes()[i].op != OpKind::kInput) continue;
    for (int user : g.users(static_cast<int>(i)))
      if (g.nodes()[static_cast<size_t>(user)].op != OpKind::kEmbeddingBag) return false;
  }
  return true;
}

DocumentModel::DocumentModel(const Session& session) : session_(&session), pads_(pads_documents(session)) {
  const Artifact& a = session.artifact();
  if (!session.has_input_spec() || session.input_spec().kind != "documents")
    throw Error(fmt::format("{}: not a document classifier", a.name()));
  const InputSpec& spec = session.input_spec();
  const std::string name = "tokenizer.vocab_json";
  if (!a.has_tensor(name)) {
    throw Error(fmt::format("{}: a document classifier needs tensor '{}', which the file does not have",
                            a.name(), name));
  }
  const TensorView& t = a.tensor(name);
  if (t.type != TensorType::kUint8 || t.shape.size() != 1)
    throw Error(fmt::format("{}: tensor '{}' must be uint8 [bytes]", a.name(), name));
  std::string json(static_cast<size_t>(spec.vocab_json_bytes), '\0');
#if defined(MIGHTY_NO_ZLIB)
  throw Error(
      fmt::format("{}: document classifiers need zlib for tensor '{}', which this build (WebAssembly) "
                  "does not have",
                  a.name(), name));
#else
  uLongf size = static_cast<uLongf>(json.size());
  const int rc =
      uncompress(reinterpret_cast<Bytef*>(json.data()), &size, t.as<Bytef>(), static_cast<uLong>(t.bytes));
  if (rc != Z_OK || size != json.size()) {
    throw Error(
        fmt::format("{}: tensor '{}' does not inflate to the {} bytes of vocab.json the metadata states",
                    a.name(), name, json.size()));
  }
#endif
  const auto vocab = nlohmann::json::parse(json, nullptr, false);
  if (vocab.is_discarded()) throw Error(fmt::format("{}: tensor '{}' is not JSON", a.name(), name));
  tokenizer_ = std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_json(vocab, a.name() + ": " + name));
}

std::vector<int64_t> DocumentModel::ids(std::string_view raw) const {
  const InputSpec& spec = session_->input_spec();
  const auto ids = tokenizer_->encode(email_text(raw, static_cast<size_t>(spec.max_bytes)));
  const size_t kept = std::min(ids.size(), static_cast<size_t>(spec.max_tokens));
  return {ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kept)};
}

std::vector<float> DocumentModel::run(std::string_view raw) const {
  std::vector<int64_t> ids = this->ids(raw);
  if (ids.empty() && !pads_) throw Error("the document has no tokens");  // the tokenizer always gives one
  if (ids.empty()) ids.push_back(-1);  // no tokens: one padding position (the bag's mean is zeros)
  return session_->run_tokens(ids.data(), 1, static_cast<int64_t>(ids.size()));
}

}  // namespace mighty
