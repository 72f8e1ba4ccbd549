// Pooling: MaxPool2d and AvgPool2d (square window, stride defaulting to the window, symmetric `padding` up to
// half the window: max pooling ignores padded positions; average pooling divides by the whole window with
// `count_include_pad` (default, PyTorch's), else by the positions inside the image; max pooling also on a
// uint8 chain, since it commutes with the monotonic quantization: padded with 0, the smallest uint8) and
// GlobalAvgPool (over H and W of [C, H, W], to [C] or with `keepdim` to [C, 1, 1]; or over the sequence of
// [T, D]).
#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/conv.h"
#include "kernels/fp32_math.h"
#include "kernels/fp32_ops.h"
#include "runtime/error.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer_pool(const ShapeContext& ctx) {
  ctx.need_rank(3);
  const Shape& in = ctx.input();
  const int64_t k = ctx.attr_int("kernel", 1, 64);
  const int64_t s = ctx.attr_int_or("stride", k, 1, 64);
  const int64_t p = ctx.attr_int_or("padding", 0, 0, k / 2);
  static_cast<void>(ctx.attr_bool_or("count_include_pad", true));  // checked: a boolean if given
  if (in[1] + 2 * p < k || in[2] + 2 * p < k)
    ctx.fail(fmt::format("pool {} is larger than the padded input {}x{}", k, in[1] + 2 * p, in[2] + 2 * p));
  return {in[0], (in[1] + 2 * p - k) / s + 1, (in[2] + 2 * p - k) / s + 1};
}

void run_pool(exec::OpContext& ctx, bool is_max) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const int64_t k = ctx.attrs().kernel, stride = ctx.attrs().stride < 0 ? k : ctx.attrs().stride;
  const int64_t pad = ctx.attrs().padding;
  const int64_t c = in.shape[0], h = in.shape[1], w = in.shape[2];
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1, batch = ctx.batch();
  out.shape = {c, oh, ow};
  if (in.is_u8) {  // only max pooling is part of a uint8 chain (OpDef::takes_u8)
    out.u8.resize(static_cast<size_t>(batch * c * oh * ow));
    thread_local std::vector<uint8_t> padded;
    kernels::ConvGeometry g;
    g.height = h;
    g.width = w;
    g.channels = c;
    g.padding = pad;
    if (pad > 0) padded.resize(static_cast<size_t>(kernels::padded_image_bytes(g)));
    for (int64_t b = 0; b < batch; ++b) {
      const uint8_t* image = in.u8.data() + b * h * w * c;
      if (pad > 0) {
        kernels::pad_hwc(image, g, 0, padded.data());
        image = padded.data();
      }
      kernels::max_pool_hwc(image, h + 2 * pad, w + 2 * pad, c, k, stride, out.u8.data() + b * oh * ow * c);
    }
    out.is_u8 = true;
    out.params = in.params;
    return;
  }
  const bool include_pad = ctx.attr_bool("count_include_pad", true);
  out.data.resize(static_cast<size_t>(batch * c * oh * ow));
  if (pad == 0 && is_max && k == 2 && stride == 2) {
    kernels::fp32_math().max_pool2(in.data.data(), batch * c, h, w, out.data.data());
    return;
  }
  // Each window clipped to the image once (no per-element bounds tests: with them the default student's fp32
  // pools took 18% of its batch-1 time); the maxima and sums run over the pixels inside in row order.
  for (int64_t plane = 0; plane < batch * c; ++plane) {
    const float* x = in.data.data() + plane * h * w;
    float* y = out.data.data() + plane * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy) {
      const int64_t y0 = std::max<int64_t>(0, oy * stride - pad), y1 = std::min(h, oy * stride - pad + k);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t x0 = std::max<int64_t>(0, ox * stride - pad), x1 = std::min(w, ox * stride - pad + k);
        float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) {
            const float v = x[iy * w + ix];
            acc = is_max ? std::max(acc, v) : acc + v;
          }
        const int64_t inside = (y1 - y0) * (x1 - x0);
        y[oy * ow + ox] = is_max ? acc : acc / static_cast<float>(include_pad ? k * k : inside);
      }
    }
  }
}

void run_max(exec::OpContext& ctx) { run_pool(ctx, true); }
void run_avg(exec::OpContext& ctx) { run_pool(ctx, false); }

Shape infer_global(const ShapeContext& ctx) {
  if (ctx.input().size() == 3) {
    if (ctx.attr_bool_or("keepdim", false)) return {ctx.input()[0], 1, 1};
    return {ctx.input()[0]};
  }
  if (ctx.attr_bool_or("keepdim", false)) ctx.fail("keepdim applies to a [C, H, W] map only");
  ctx.need_rank(2);
  return {ctx.input()[1]};
}

void run_global(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const bool spatial = in.shape.size() == 3;
  const int64_t groups = spatial ? in.shape[0] : in.shape[1];
  const int64_t count = spatial ? in.shape[1] * in.shape[2] : in.shape[0];
  out.shape = {groups};
  if (spatial && ctx.attr_bool("keepdim", false)) out.shape = {groups, 1, 1};
  out.data.assign(static_cast<size_t>(ctx.batch() * groups), 0.0f);
  for (int64_t b = 0; b < ctx.batch(); ++b) {
    const float* x = in.data.data() + b * groups * count;
    float* y = out.data.data() + b * groups;
    for (int64_t g = 0; g < groups; ++g) {
      double sum = 0.0;
      for (int64_t j = 0; j < count; ++j) sum += spatial ? x[g * count + j] : x[j * groups + g];
      y[g] = static_cast<float>(sum / count);
    }
  }
}

}  // namespace

extern const OpDef kMaxPool2dOp = {OpKind::kMaxPool2d, "MaxPool2d", 1, infer_pool, nullptr, run_max, true};
extern const OpDef kAvgPool2dOp = {OpKind::kAvgPool2d, "AvgPool2d", 1, infer_pool, nullptr, run_avg, false};
extern const OpDef kGlobalAvgPoolOp = {
    OpKind::kGlobalAvgPool, "GlobalAvgPool", 1, infer_global, nullptr, run_global, false};

}  // namespace mighty
