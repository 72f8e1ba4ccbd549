// Add and Mul: the elementwise sum and product of two values of the same rank whose dimensions agree or are
// 1 (broadcast, as NumPy and LibTorch do it over the batch: residual connections, squeeze-and-excite gates of
// [C, 1, 1] over [C, H, W]).
#include <fmt/ranges.h>

#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  const Shape &a = ctx.input(0), &b = ctx.input(1);
  Shape out = a;
  bool ok = a.size() == b.size();
  for (size_t d = 0; ok && d < a.size(); ++d) {
    ok = a[d] == b[d] || a[d] == 1 || b[d] == 1;
    out[d] = std::max(a[d], b[d]);
  }
  if (!ok) {
    ctx.fail(
        fmt::format("operand shapes [{}] and [{}] do not broadcast (same rank, each dimension equal or 1)",
                    fmt::join(a, ", "), fmt::join(b, ", ")));
  }
  return out;
}

// out[i] = f(a[i'], b[i'']) over the broadcast shape; an odometer over every dimension but the last, whose
// run is contiguous in each operand (stride 1) or repeats one element (stride 0).
template <class F>
void broadcast(const exec::Value& a, const exec::Value& b, exec::Value& out, int64_t batch, F f) {
  const size_t rank = a.shape.size();
  out.shape.assign(rank, 1);
  for (size_t d = 0; d < rank; ++d) out.shape[d] = std::max(a.shape[d], b.shape[d]);
  const int64_t total = ops::product(out.shape), na = ops::product(a.shape), nb = ops::product(b.shape);
  out.data.resize(static_cast<size_t>(batch * total));
  if (a.shape == b.shape) {
    for (size_t j = 0; j < out.data.size(); ++j) out.data[j] = f(a.data[j], b.data[j]);
    return;
  }
  // Element strides of each operand in the output's index space (0 where it broadcasts).
  std::vector<int64_t> sa(rank, 0), sb(rank, 0);
  for (int64_t d = static_cast<int64_t>(rank) - 1, ma = 1, mb = 1; d >= 0; --d) {
    sa[d] = a.shape[d] == 1 ? 0 : ma;
    sb[d] = b.shape[d] == 1 ? 0 : mb;
    ma *= a.shape[d];
    mb *= b.shape[d];
  }
  const int64_t inner = rank ? out.shape.back() : 1;
  const int64_t ia = rank ? sa.back() : 0, ib = rank ? sb.back() : 0;
  std::vector<int64_t> index(rank, 0);
  for (int64_t n = 0; n < batch; ++n) {
    const float* pa = a.data.data() + n * na;
    const float* pb = b.data.data() + n * nb;
    float* y = out.data.data() + n * total;
    std::fill(index.begin(), index.end(), 0);
    for (int64_t row = 0; row < total / inner; ++row) {
      int64_t oa = 0, ob = 0;
      for (size_t d = 0; d + 1 < rank; ++d) {
        oa += index[d] * sa[d];
        ob += index[d] * sb[d];
      }
      for (int64_t j = 0; j < inner; ++j) y[row * inner + j] = f(pa[oa + j * ia], pb[ob + j * ib]);
      for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {  // next row
        if (++index[d] < out.shape[d]) break;
        index[d] = 0;
      }
    }
  }
}

void run_add(exec::OpContext& ctx) {
  broadcast(ctx.in(0), ctx.in(1), ctx.out(), ctx.batch(), [](float x, float y) { return x + y; });
}

void run_mul(exec::OpContext& ctx) {
  broadcast(ctx.in(0), ctx.in(1), ctx.out(), ctx.batch(), [](float x, float y) { return x * y; });
}

}  // namespace

extern const OpDef kAddOp = {OpKind::kAdd, "Add", 2, infer, nullptr, run_add, false};
extern const OpDef kMulOp = {OpKind::kMul, "Mul", 2, infer, nullptr, run_mul, false};

}  // namespace mighty
