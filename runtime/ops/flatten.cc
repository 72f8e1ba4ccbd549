// Flatten: [d...] -> [product]; on a uint8 chain the channels-last map passes as it is to a Linear whose
// weights were packed to read it (exec/int8_layer.h, hwc_input).
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) { return {ops::product(ctx.input())}; }

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  out.shape = {ops::product(in.shape)};
  if (in.is_u8) {
    out.params = in.params;
    out.u8 = ctx.take_u8();
    out.is_u8 = true;
    return;
  }
  out.data = in.data;
}

}  // namespace

extern const OpDef kFlattenOp = {OpKind::kFlatten, "Flatten", 1, infer, nullptr, run, true};

}  // namespace mighty
