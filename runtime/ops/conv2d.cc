// Conv2d: square kernel, stride, zero padding, groups (in and out channels split into `groups` equal
// parts, each convolved on its own: depthwise when groups = in_channels), NCHW; fp32 (stride 1: one
// implicit-im2col GEMM per group, else im2col + GEMM, both on kernels/sgemm.h; a folded BatchNorm2d and a
// fused ReLU from exec/fp32_fusion.h), or int8 (exec/int8_layer.h: implicit im2col over channels-last uint8
// for static activations, float patches quantized per row for dynamic ones).
#include <algorithm>
#include <array>
#include <deque>
#include <vector>

#include "kernels/sgemm.h"
#include "runtime/exec/op_context.h"
#include "runtime/graph/op_def.h"
#include "runtime/ops/common.h"

namespace mighty {
namespace {

Shape infer(const ShapeContext& ctx) {
  ctx.need_rank(3);
  const Shape& in = ctx.input();
  const int64_t cin = ctx.attr_int("in_channels", 1, kMaxDim);
  const int64_t cout = ctx.attr_int("out_channels", 1, kMaxDim);
  const int64_t k = ctx.attr_int("kernel", 1, 64);
  const int64_t s = ctx.attr_int_or("stride", 1, 1, 64);
  const int64_t p = ctx.attr_int_or("padding", 0, 0, 64);
  const int64_t groups = ctx.attr_int_or("groups", 1, 1, cin);
  ctx.need_dim(in[0], cin, "input channels");
  if (cin % groups != 0 || cout % groups != 0)
    ctx.fail(fmt::format("{} groups do not divide {} input and {} output channels", groups, cin, cout));
  if (in[1] + 2 * p < k || in[2] + 2 * p < k)
    ctx.fail(fmt::format("kernel {} is larger than the padded input {}x{}", k, in[1], in[2]));
  return {cout, (in[1] + 2 * p - k) / s + 1, (in[2] + 2 * p - k) / s + 1};
}

std::vector<TensorSpec> tensors(const Node& n) {
  auto a = [&](const char* key) { return n.attrs.at(key).get<int64_t>(); };
  std::vector<TensorSpec> t = {{n.name + ".weight",
                                {a("out_channels"), a("in_channels") / n.attrs.value("groups", int64_t{1}),
                                 a("kernel"), a("kernel")}}};
  if (n.attrs.value("bias", true)) t.push_back({n.name + ".bias", {a("out_channels")}});
  return t;
}

// cols[(c * k + ky) * k + kx][oy * ow + ox] of one image: the layout of LibTorch's weight [O][C][k][k].
void im2col_nchw(const float* x, int64_t cin, int64_t h, int64_t w, int64_t k, int64_t stride, int64_t pad,
                 int64_t oh, int64_t ow, float* cols) {
  const int64_t pixels = oh * ow;
  for (int64_t c = 0; c < cin; ++c)
    for (int64_t ky = 0; ky < k; ++ky)
      for (int64_t kx = 0; kx < k; ++kx) {
        float* row = cols + ((c * k + ky) * k + kx) * pixels;
        // Output columns [lo, hi) read inside the image row (ix = ox * stride - pad + kx in [0, w)); the
        // others are padding. At stride 1 the inside run is one contiguous copy.
        const int64_t first = pad - kx, last = w - 1 + pad - kx;  // ox * stride in [first, last]
        const int64_t lo = std::min(ow, first <= 0 ? 0 : (first + stride - 1) / stride);
        const int64_t hi = last < 0 ? lo : std::max(lo, std::min(ow, last / stride + 1));
        for (int64_t oy = 0; oy < oh; ++oy) {
          const int64_t iy = oy * stride - pad + ky;
          float* dst = row + oy * ow;
          if (iy < 0 || iy >= h) {
            std::fill(dst, dst + ow, 0.0f);
            continue;
          }
          std::fill(dst, dst + lo, 0.0f);
          const float* src = x + (c * h + iy) * w + lo * stride - pad + kx;
          if (stride == 1) {
            std::copy(src, src + (hi - lo), dst + lo);
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[(ox - lo) * stride];
          }
          std::fill(dst + hi, dst + ow, 0.0f);
        }
      }
}

// A depthwise convolution (one input and one output channel per group) of one image: for each output row
// and tap, a run over the output columns (contiguous in x at stride 1, so the compiler vectorizes it).
void depthwise_fp32(const float* x, int64_t channels, int64_t h, int64_t w, const float* weight,
                    const float* bias, int64_t k, int64_t stride, int64_t pad, int64_t oh, int64_t ow,
                    float* y) {
  for (int64_t c = 0; c < channels; ++c) {
    const float* xc = x + c * h * w;
    const float* wc = weight + c * k * k;
    float* yc = y + c * oh * ow;
    std::fill(yc, yc + oh * ow, bias ? bias[c] : 0.0f);
    for (int64_t oy = 0; oy < oh; ++oy) {
      float* row = yc + oy * ow;
      for (int64_t ky = 0; ky < k; ++ky) {
        const int64_t iy = oy * stride - pad + ky;
        if (iy < 0 || iy >= h) continue;
        const float* in = xc + iy * w;
        for (int64_t kx = 0; kx < k; ++kx) {
          const float wt = wc[ky * k + kx];
          // Output columns whose input column ox * stride - pad + kx lies inside the image.
          const int64_t first = pad - kx, last = w - 1 + pad - kx;  // ox * stride in [first, last]
          const int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
          const int64_t hi = last < 0 ? 0 : std::min<int64_t>(ow, last / stride + 1);
          if (stride == 1) {
            const float* src = in - pad + kx;
            for (int64_t ox = lo; ox < hi; ++ox) row[ox] += wt * src[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) row[ox] += wt * in[ox * stride - pad + kx];
          }
        }
      }
    }
  }
}

// A zero-padded copy of gin planes of h x w at row pitch pw, pad rows and columns of zeros around each:
// one buffer per layout on each thread, so that its zeros are written once and each run copies only the
// rows (the few layouts of the models this thread runs are kept; the oldest goes past eight).
std::vector<float>& padded_scratch(int64_t gin, int64_t h, int64_t w, int64_t pad, int64_t pw) {
  struct Layout {
    std::array<int64_t, 5> key;
    std::vector<float> data;
  };
  thread_local std::deque<Layout> layouts;
  const std::array<int64_t, 5> key = {gin, h, w, pad, pw};
  for (Layout& l : layouts)
    if (l.key == key) return l.data;
  if (layouts.size() == 8) layouts.pop_front();
  // The last channel's last row reads up to pad floats past its plane (its right padding), and nothing
  // further: the grid stops at the last kept column.
  layouts.push_back({key, std::vector<float>(static_cast<size_t>(gin * (h + 2 * pad) * pw + pad), 0.0f)});
  return layouts.back().data;
}

// A stride-1 convolution as one GEMM with implicit im2col: over a zero-padded copy of the input (none for
// 1x1 without padding) with rows of pw = w + pad floats (the pad zeros after a row are also the ones before
// the next; w + 2 * pad when pad > k - 1), output pixel (oy, ox) at grid position q = oy * pw + ox reads tap
// (ky, kx) of channel c at padded[c][q + ky * pw + kx], so patch row (tap, c) of B is the padded input from
// offset c * plane + ky * pw + kx (SgemmArgs::b_rows) and the weights [gout][taps][gin] are A. The register
// tiles keep their sums over all taps and channels and store the ow kept columns of each grid row straight
// into the output (SgemmArgs::c_pitch); the other pw - ow are computed and dropped. Per output the sum starts
// from the bias and takes the taps in (ky, kx) order, each over the channels in order; a fused ReLU
// (exec/fp32_fusion.h) is applied as the tiles are stored.
// `taps`: the weights per group, [groups][gout][k * k][gin] (prepare).
void conv_implicit(exec::OpContext& ctx, const float* taps, const float* x, int64_t batch, int64_t groups,
                   int64_t gin, int64_t gout, int64_t h, int64_t w, int64_t k, int64_t pad, const float* bias,
                   float* y) {
  const int64_t cin = groups * gin, cout = groups * gout, ph = h + 2 * pad;
  const int64_t oh = ph - k + 1, ow = w + 2 * pad - k + 1, patch = k * k * gin;
  const int64_t pw = pad <= k - 1 ? w + pad : w + 2 * pad, plane = ph * pw;
  const bool direct = k == 1 && pad == 0;  // B is the input itself
  thread_local std::vector<int64_t> rows;
  rows.resize(static_cast<size_t>(patch));
  for (int64_t t = 0; t < k * k; ++t)
    for (int64_t c = 0; c < gin; ++c) rows[static_cast<size_t>(t * gin + c)] = c * plane + t / k * pw + t % k;
  float* padded = direct ? nullptr : padded_scratch(gin, h, w, pad, pw).data();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      const float* xb = x + (b * cin + g * gin) * h * w;
      float* yb = y + (b * cout + g * gout) * oh * ow;
      if (!direct)  // over the previous rows: the zeros stay
        for (int64_t c = 0; c < gin; ++c)
          for (int64_t iy = 0; iy < h; ++iy)
            std::copy(xb + (c * h + iy) * w, xb + (c * h + iy + 1) * w,
                      padded + c * plane + (iy + pad) * pw + pad);
      kernels::SgemmArgs p;
      p.a = taps + g * gout * patch;
      p.lda = p.k = patch;
      p.b = direct ? xb : padded;
      p.b_rows = rows.data();
      p.c = yb;
      p.ldc = oh * ow;
      p.n = direct ? oh * ow : (oh - 1) * pw + ow;
      if (!direct) p.c_pitch = pw, p.c_keep = ow;
      p.m = gout;
      p.row_bias = bias ? bias + g * gout : nullptr;
      p.relu = ctx.attrs().relu;
      kernels::sgemm(p, ctx.call().pool);
    }
}

void run(exec::OpContext& ctx) {
  const exec::Value& in = ctx.in();
  exec::Value& out = ctx.out();
  const exec::LayerAttrs& la = ctx.attrs();
  const int64_t cin = la.in, cout = la.out, k = la.kernel, groups = la.groups;
  const int64_t stride = la.stride < 0 ? 1 : la.stride, pad = la.padding;
  const int64_t h = in.shape[1], w = in.shape[2];
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  out.shape = {cout, oh, ow};
  const float* bias = la.bias ? ctx.tensor("bias") : nullptr;
  if (const exec::Int8Layer* q = ctx.int8()) {
    exec::conv_int8(*q, ctx.node(), k, stride, pad, in, ctx.batch(), bias, out, ctx.call().pool);
    return;
  }
  out.data.resize(static_cast<size_t>(ctx.batch() * cout * oh * ow));
  // Group g reads input channels [g * gin, (g + 1) * gin) and writes outputs [g * gout, (g + 1) * gout).
  const int64_t gin = cin / groups, gout = cout / groups;
  if (gin == 1 && gout == 1) {
    for (int64_t b = 0; b < ctx.batch(); ++b)
      depthwise_fp32(in.data.data() + b * cin * h * w, cin, h, w, ctx.tensor("weight"), bias, k, stride, pad,
                     oh, ow, out.data.data() + b * cout * oh * ow);
    if (la.relu)
      for (float& v : out.data) v = ops::relu(v);
    return;
  }
  if (const float* taps = ctx.find_repacked("taps")) {
    conv_implicit(ctx, taps, in.data.data(), ctx.batch(), groups, gin, gout, h, w, k, pad, bias,
                  out.data.data());
    return;
  }
  const int64_t patch = gin * k * k, pixels = oh * ow;
  thread_local std::vector<float> cols;  // scratch reused across runs on this thread
  cols.resize(static_cast<size_t>(patch * pixels));
  for (int64_t b = 0; b < ctx.batch(); ++b) {
    for (int64_t g = 0; g < groups; ++g) {
      im2col_nchw(in.data.data() + (b * cin + g * gin) * h * w, gin, h, w, k, stride, pad, oh, ow,
                  cols.data());
      // [gout][pixels] = weights [gout][patch] x patches [patch][pixels], from the bias (kernels/sgemm.h).
      kernels::SgemmArgs p;
      p.a = ctx.tensor("weight") + g * gout * patch;
      p.lda = p.k = patch;
      p.b = cols.data();
      p.ldb = p.n = p.ldc = pixels;
      p.c = out.data.data() + (b * cout + g * gout) * pixels;
      p.m = gout;
      p.row_bias = bias ? bias + g * gout : nullptr;
      p.relu = la.relu;
      kernels::sgemm(p, ctx.call().pool);
    }
  }
}

// An fp32 stride-1 convolution that is not depthwise runs as one implicit-im2col GEMM (conv_implicit): its
// weights [gout][gin][k][k] per group rearranged once to [groups][gout][k * k][gin].
void prepare(const Node&, exec::PreparedNode& p) {
  const exec::LayerAttrs& la = p.attrs;
  const int64_t k = la.kernel, gin = la.in / la.groups, gout = la.out / la.groups;
  if (p.int8 || la.stride > 1 || (gin == 1 && gout == 1)) return;
  const float* weight = p.find("weight");
  std::vector<float> taps(static_cast<size_t>(la.out * gin * k * k));
  for (int64_t g = 0; g < la.groups; ++g)
    for (int64_t o = 0; o < gout; ++o)
      for (int64_t t = 0; t < k * k; ++t)
        for (int64_t c = 0; c < gin; ++c)
          taps[static_cast<size_t>(((g * gout + o) * k * k + t) * gin + c)] =
              weight[((g * gout + o) * gin + c) * k * k + t];
  p.repacked.emplace_back("taps", std::move(taps));
}

}  // namespace

extern const OpDef kConv2dOp = {OpKind::kConv2d, "Conv2d", 1, infer, tensors, run, true, prepare};

}  // namespace mighty
