// Add: the elementwise sum of two values of the same shape (residual connections).
#include <fmt/ranges.h>

#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  if (ctx.input(1) != ctx.input(0)) {
    ctx.fail(fmt::format("operand shapes [{}] and [{}] differ", fmt::join(ctx.input(0), ", "),
                         fmt::join(ctx.input(1), ", ")));
  }
  return ctx.input(0);
}

void run(exec::OpContext& ctx) {
  const exec::Value &a = ctx.in(0), &b = ctx.in(1);
  exec::Value& out = ctx.out();
  out.shape = a.shape;
  out.data.resize(a.data.size());
  for (size_t j = 0; j < a.data.size(); ++j) out.data[j] = a.data[j] + b.data[j];
}

}  // namespace

extern const OpDef kAddOp = {OpKind::kAdd, "Add", 2, infer, nullptr, run, false};

}  // namespace mighty
