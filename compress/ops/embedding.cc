// Embedding and EmbeddingBag in LibTorch: one torch::nn::Embedding table (initialized N(0, 0.02)).
// Embedding looks up token ids, or position ids 0..T-1 when "positional"; EmbeddingBag is the mean of a
// document's token rows (ids < 0 are padding; a document without tokens gives zeros). The bag's table is
// pruned by magnitude only (its rows are tokens).
#include "compress/ops/torch_op.h"

namespace mighty::compress {
namespace {

std::shared_ptr<torch::nn::Module> module(const Node& n) {
  torch::nn::Embedding table(n.attrs.at("num_embeddings").get<int64_t>(), n.attrs.at("dim").get<int64_t>());
  torch::NoGradGuard no_grad;
  table->weight.normal_(0.0, 0.02);
  return table.ptr();
}

torch::Tensor embedding(const TorchCall& c) {
  auto& table = c.module<torch::nn::EmbeddingImpl>();
  const auto& ids = c.in();
  if (!c.node().attrs.value("positional", false)) return table.forward(ids);
  return table.forward(torch::arange(ids.size(1), torch::kInt64)).unsqueeze(0).expand({ids.size(0), -1, -1});
}

torch::Tensor bag(const TorchCall& c) {
  const auto& ids = c.in();
  const auto valid = ids.ge(0);
  const auto rows = c.module<torch::nn::EmbeddingImpl>().forward(ids.clamp_min(0)) * valid.unsqueeze(-1);
  return rows.sum(1) / valid.sum(1, true).clamp_min(1).to(rows.scalar_type());
}

std::vector<PrunableWeight> bag_table(const Node& n) {
  return {{n.name, n.name + ".weight", /*table=*/true}};
}

}  // namespace

extern const TorchOpDef kEmbeddingTorchOp = {OpKind::kEmbedding,  module,  embedding, {},    nullptr, nullptr,
                                             ChannelRole::kMixes, nullptr, nullptr,   false, nullptr, false};
extern const TorchOpDef kEmbeddingBagTorchOp = {
    OpKind::kEmbeddingBag, module,  bag,     {},    nullptr, bag_table,
    ChannelRole::kMixes,   nullptr, nullptr, false, nullptr, false};

}  // namespace mighty::compress
