// Embedding (token ids -> rows; positional tables are indexed by position) and EmbeddingBag (the mean of the
// rows of a document's ids; ids < 0 are padding; the table fp32 or int8 with one scale per row).
#include <algorithm>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

void need_token_input(const ShapeContext& ctx, const char* op) {
  ctx.need_rank(1);
  if (ctx.input_node().op != OpKind::kInput || ctx.graph().input_dtype() != DType::kInt64)
    ctx.fail(fmt::format("{} reads the int64 token input", op));
}

Shape infer_embedding(const ShapeContext& ctx) {
  const int64_t num = ctx.attr_int("num_embeddings", 1, kMaxDim);
  const int64_t dim = ctx.attr_int("dim", 1, kMaxDim);
  need_token_input(ctx, "Embedding");
  // A positional table is indexed by position 0..T-1, so it must cover the context length.
  if (ctx.attr_bool_or("positional", false) && ctx.input()[0] > num)
    ctx.fail(fmt::format("{} positions cannot cover a context of {}", num, ctx.input()[0]));
  return {ctx.input()[0], dim};
}

Shape infer_bag(const ShapeContext& ctx) {
  ctx.attr_int("num_embeddings", 1, kMaxDim);
  const int64_t dim = ctx.attr_int("dim", 1, kMaxDim);
  need_token_input(ctx, "EmbeddingBag");
  return {dim};
}

std::vector<TensorSpec> tensors(const Node& n) {
  return {
      {n.name + ".weight", {n.attrs.at("num_embeddings").get<int64_t>(), n.attrs.at("dim").get<int64_t>()}}};
}

[[noreturn]] void outside(int64_t id, int64_t t, int64_t num) {
  throw Error(fmt::format("token {} at position {} is outside the vocabulary of {}", id, t, num));
}

void run_embedding(exec::OpContext& ctx) {
  exec::Value& out = ctx.out();
  const exec::RunCall& call = ctx.call();
  const int64_t num = ctx.attr("num_embeddings"), dim = ctx.attr("dim"), length = call.length;
  const int64_t start = call.decode ? call.decode->position : 0;
  const float* table = ctx.tensor("weight");
  const bool positional = ctx.attr_bool("positional", false);
  out.shape = {length, dim};
  out.data.resize(static_cast<size_t>(call.batch * length * dim));
  for (int64_t b = 0; b < call.batch; ++b)
    for (int64_t t = 0; t < length; ++t) {
      const int64_t id = positional ? start + t : call.tokens[b * length + t];
      if (id < 0 || id >= num) outside(id, t, num);
      std::copy(table + id * dim, table + (id + 1) * dim, out.data.data() + (b * length + t) * dim);
    }
}

void run_bag(exec::OpContext& ctx) {
  exec::Value& out = ctx.out();
  const exec::RunCall& call = ctx.call();
  const int64_t num = ctx.attr("num_embeddings"), dim = ctx.attr("dim"), length = call.length;
  const exec::Int8Layer* q = ctx.int8();
  const float* table = q ? nullptr : ctx.tensor("weight");
  out.shape = {dim};
  out.data.assign(static_cast<size_t>(call.batch * dim), 0.0f);
  for (int64_t b = 0; b < call.batch; ++b) {
    float* sum = out.data.data() + b * dim;
    int64_t count = 0;
    for (int64_t t = 0; t < length; ++t) {
      const int64_t id = call.tokens[b * length + t];
      if (id < 0) continue;
      if (id >= num) outside(id, t, num);
      if (q) {  // int8 rows: q * row scale, as the simulation dequantizes them
        const int8_t* row = q->table + id * dim;
        const float scale = q->scales[id];
        for (int64_t k = 0; k < dim; ++k) sum[k] += static_cast<float>(row[k]) * scale;
      } else {
        const float* row = table + id * dim;
        for (int64_t k = 0; k < dim; ++k) sum[k] += row[k];
      }
      ++count;
    }
    const float inv = 1.0f / static_cast<float>(std::max<int64_t>(count, 1));
    for (int64_t k = 0; k < dim; ++k) sum[k] *= inv;
  }
}

}  // namespace

extern const OpDef kEmbeddingOp = {OpKind::kEmbedding, "Embedding", 1, infer_embedding, tensors,
                                   run_embedding,      false};
extern const OpDef kEmbeddingBagOp = {
    OpKind::kEmbeddingBag, "EmbeddingBag", 1, infer_bag, tensors, run_bag, false};

}  // namespace mighty
