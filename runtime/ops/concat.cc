// Concat: one or more values joined along dimension `axis` of the per-example shape (0: channels of a
// [C, H, W] map); every other dimension must agree.
#include <fmt/ranges.h>

#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  const Shape& first = ctx.input(0);
  if (first.empty()) ctx.fail("cannot concatenate scalars");
  const auto axis =
      static_cast<size_t>(ctx.attr_int_or("axis", 0, 0, static_cast<int64_t>(first.size()) - 1));
  Shape out = first;
  out[axis] = 0;
  for (int k = 0; k < static_cast<int>(ctx.node().inputs.size()); ++k) {
    const Shape& s = ctx.input(k);
    bool ok = s.size() == first.size();
    for (size_t d = 0; ok && d < s.size(); ++d) ok = d == axis || s[d] == first[d];
    if (!ok) {
      ctx.fail(fmt::format("input {} has shape [{}], which does not join [{}] along axis {}", k,
                           fmt::join(s, ", "), fmt::join(first, ", "), axis));
    }
    out[axis] += s[axis];
    if (out[axis] > kMaxDim) ctx.fail("the joined dimension is too large");
  }
  return out;
}

void run(exec::OpContext& ctx) {
  const Node& n = ctx.node();
  const size_t axis = static_cast<size_t>(n.attrs.value("axis", int64_t{0}));
  exec::Value& out = ctx.out();
  out.shape = ctx.in(0).shape;
  out.shape[axis] = 0;
  for (size_t k = 0; k < n.inputs.size(); ++k) out.shape[axis] += ctx.in(static_cast<int>(k)).shape[axis];
  // Each example is `outer` blocks; input k contributes a run of shape[axis] * inner floats to each.
  const int64_t outer = ops::product({out.shape.begin(), out.shape.begin() + static_cast<int64_t>(axis)});
  const int64_t inner = ops::product(out.shape, axis + 1);
  const int64_t total = ops::product(out.shape);
  out.data.resize(static_cast<size_t>(ctx.batch() * total));
  for (int64_t b = 0; b < ctx.batch(); ++b) {
    for (int64_t o = 0; o < outer; ++o) {
      float* y = out.data.data() + b * total + o * out.shape[axis] * inner;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const exec::Value& in = ctx.in(static_cast<int>(k));
        const int64_t run = in.shape[axis] * inner;
        const float* x = in.data.data() + b * ops::product(in.shape) + o * run;
        y = std::copy(x, x + run, y);
      }
    }
  }
}

}  // namespace

extern const OpDef kConcatOp = {OpKind::kConcat, "Concat", kVariadic, infer, nullptr, run, false};

}  // namespace mighty
