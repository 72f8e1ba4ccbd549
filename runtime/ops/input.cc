// Input: node 0 of every graph; the model's input [shape...] as float32 (images) or int64 token ids.
#include <fmt/format.h>

#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  const Node& n = ctx.node();
  if (ctx.index() != 0) ctx.fail("only node 0 may be Input");
  if (!n.attrs.contains("shape") || !n.attrs["shape"].is_array() || n.attrs["shape"].empty())
    ctx.fail("attribute 'shape' must be a non-empty array");
  Shape shape;
  for (const auto& d : n.attrs["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > kMaxDim)
      ctx.fail("shape entries must be integers in [1, 2^31]");
    shape.push_back(d.get<int64_t>());
  }
  const auto dtype = n.attrs.find("dtype");
  if (dtype != n.attrs.end() && (!dtype->is_string() || (*dtype != "float32" && *dtype != "int64")))
    ctx.fail(fmt::format("attribute 'dtype' must be \"float32\" or \"int64\", found {}", dtype->dump()));
  return shape;
}

void run(exec::OpContext& ctx) {
  exec::Value& out = ctx.out();
  const exec::RunCall& call = ctx.call();
  if (call.tokens) {
    out.shape = {call.length};
  } else {
    out.shape = ctx.node().shape;
    out.data.assign(call.input, call.input + call.batch * ops::product(out.shape));
  }
}

}  // namespace

extern const OpDef kInputOp = {OpKind::kInput, "Input", 0, infer, nullptr, run, false};

}  // namespace mighty
