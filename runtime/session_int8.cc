// The int8 half of Session: quantized Linear layers (dynamic or static activations) and convolutions, and the
// uint8 chains between static convolutions (requantizing epilogues, fused ReLU).
#include <array>
#include <cmath>
#include <mutex>

#include <fmt/format.h>
#include <Eigen/Core>

#include "kernels/conv.h"
#include "kernels/quantize.h"
#include "runtime/error.h"
#include "runtime/session.h"

namespace mighty {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRows = Eigen::Map<const RowMatrix>;
using Rows = Eigen::Map<RowMatrix>;

}  // namespace

void Session::setup_u8_outputs() {
  const auto& nodes = graph_.nodes();
  std::vector<std::vector<int>> users(nodes.size());
  for (size_t j = 0; j < nodes.size(); ++j)
    for (int in : nodes[j].inputs) users[static_cast<size_t>(in)].push_back(static_cast<int>(j));
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (!n.attrs.contains("quant") || !n.attrs["quant"].contains("output_scale")) continue;
    const auto& q = n.attrs["quant"];
    auto fail = [&](const std::string& what) {
      throw Error(fmt::format("{}: graph node {} ('{}'): {}", artifact_.name(), i, n.name, what));
    };
    if (!int8_[i] || !int8_[i]->static_activation || n.op != OpKind::kConv2d) {
      fail("quant.output_scale is only for Conv2d with static activations");
    }
    const auto& sc = q["output_scale"];
    const auto& zp = q.contains("output_zero_point") ? q["output_zero_point"] : nlohmann::json();
    if (!sc.is_number() ||
        !(std::isfinite(sc.get<double>()) && sc.get<double>() > 0 && sc.get<double>() < 1e30)) {
      fail(fmt::format("quant.output_scale: expected a finite positive number, found {}", sc.dump()));
    }
    if (!zp.is_number_integer() || zp.get<int64_t>() < 0 || zp.get<int64_t>() > 255) {
      fail(fmt::format("quant.output_zero_point: expected an integer in [0, 255], found {}", zp.dump()));
    }
    if (q.contains("output_relu") && !q["output_relu"].is_boolean())
      fail("quant.output_relu: expected a boolean");
    Int8Weights& layer = *int8_[i];
    layer.output.scale = sc.get<float>();
    layer.output.zero_point = static_cast<int32_t>(zp.get<int64_t>());
    layer.relu = q.value("output_relu", false);
    // The chain to the consumer: single users through ReLU and max pooling, ending at a static int8 conv
    // whose input parameters are these, or through Flatten at a static int8 Linear.
    int at = static_cast<int>(i), flatten = -1;
    bool relu_seen = false;
    while (true) {
      if (users[static_cast<size_t>(at)].size() != 1 || at == graph_.output()) {
        fail(
            "a uint8 output must have exactly one consumer chain (ReLU, MaxPool2d, Flatten) ending at an "
            "int8 conv or Linear");
      }
      at = users[static_cast<size_t>(at)][0];
      const OpKind op = nodes[static_cast<size_t>(at)].op;
      if (op == OpKind::kReLU) {
        relu_seen = true;
        continue;
      }
      if (op == OpKind::kMaxPool2d && flatten < 0) continue;
      if (op == OpKind::kFlatten && flatten < 0) {
        flatten = at;
        continue;
      }
      const auto& next = int8_[static_cast<size_t>(at)];
      const bool consumer = flatten < 0 ? op == OpKind::kConv2d : op == OpKind::kLinear;
      if (!consumer || !next || !next->static_activation || next->input.scale != layer.output.scale ||
          next->input.zero_point != layer.output.zero_point) {
        fail(fmt::format(
            "uint8 output feeds '{}', which is not a static int8 {} with input scale {} and zero point {}",
            nodes[static_cast<size_t>(at)].name, flatten < 0 ? "conv" : "Linear (after Flatten)",
            layer.output.scale, layer.output.zero_point));
      }
      if (flatten >= 0)
        read_hwc(at, nodes[static_cast<size_t>(nodes[static_cast<size_t>(flatten)].inputs[0])].shape);
      break;
    }
    if (relu_seen != layer.relu) fail("quant.output_relu must say whether a ReLU follows");
    const int64_t out = layer.packed.n;
    const float* bias = n.attrs.value("bias", true) ? weights(n.name + ".bias") : nullptr;
    layer.int_bias.assign(static_cast<size_t>(out), 0);
    layer.requant_multipliers.resize(static_cast<size_t>(out));
    for (int64_t c = 0; c < out; ++c) {
      const double acc_scale = static_cast<double>(layer.input.scale) * static_cast<double>(layer.scales[c]);
      const double b = bias ? std::nearbyint(static_cast<double>(bias[c]) / acc_scale) : 0.0;
      if (!(std::abs(b) < 1e9))
        fail(fmt::format("bias of channel {} does not fit int32 at the accumulator's scale", c));
      layer.int_bias[c] = static_cast<int32_t>(b);
      layer.requant_multipliers[c] = layer.input.scale * layer.scales[c] / layer.output.scale;
    }
    layer.u8_output = true;
  }
}

void Session::read_hwc(int node, const Shape& map) {
  Int8Weights& layer = *int8_[static_cast<size_t>(node)];
  const Node& n = graph_.nodes()[static_cast<size_t>(node)];
  const int64_t out = layer.packed.n, k = layer.packed.k;
  if (map.size() != 3 || map[0] * map[1] * map[2] != k) {
    throw Error(fmt::format("{}: graph node '{}': a uint8 map of shape [{}] cannot feed {} inputs",
                            artifact_.name(), n.name, fmt::join(map, ", "), k));
  }
  const int64_t channels = map[0], pixels = map[1] * map[2];
  const int8_t* w = artifact_.tensor(n.name + ".weight").as<int8_t>();
  std::vector<int8_t> hwc(static_cast<size_t>(out * k));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < pixels; ++p) hwc[o * k + p * channels + c] = w[o * k + c * pixels + p];
  layer.packed = kernels::pack_weights(hwc.data(), out, k, k);
  layer.hwc_input = true;
}

void Session::linear_int8(int node, const float* x, int64_t rows, const float* bias, float* y,
                          const uint8_t* xq) const {
  const Int8Weights& layer = *int8_[node];
  const int64_t in = layer.packed.k, out = layer.packed.n;
  thread_local std::vector<uint8_t> a;  // scratch reused across runs on this thread
  a.resize(static_cast<size_t>(rows * in));
  kernels::GemmArgs g;
  g.a = xq ? xq : a.data();
  g.lda = in;
  g.m = rows;
  g.w = &layer.packed;
  g.epilogue.kind = kernels::OutputKind::kFloat32;
  g.epilogue.per_channel = true;
  std::vector<float> row_scale;
  std::vector<int32_t> row_zero;
  if (layer.static_activation) {
    if (!xq) kernels::quantize_rows(x, rows, in, in, layer.input, a.data(), in);
    g.a_zero_point = layer.input.zero_point;
    g.epilogue.multiplier = layer.multipliers.data();
  } else {
    row_scale.resize(static_cast<size_t>(rows));
    row_zero.resize(static_cast<size_t>(rows));
    kernels::quantize_rows_dynamic(x, rows, in, in, a.data(), in, row_scale.data(), row_zero.data());
    g.a_zero_points = row_zero.data();
    g.epilogue.multiplier = layer.scales;
    g.epilogue.row_scale = row_scale.data();
  }
  g.epilogue.fp_bias = bias;
  g.c = y;
  g.ldc = out;
  std::unique_lock<std::mutex> lock(*pool_mutex_, std::try_to_lock);
  kernels::gemm_u8s8(g, lock.owns_lock() ? pool_.get() : nullptr);
}

namespace {

// The implicit im2col rows of a geometry and batch size, computed once per thread (a model has a handful of
// conv geometries).
const int64_t* implicit_rows_cached(const kernels::ConvGeometry& g, int64_t batch, int64_t* run_stride) {
  struct Entry {
    std::array<int64_t, 7> key;
    int64_t stride;
    std::vector<int64_t> rows;
  };
  thread_local std::vector<Entry> cache;
  const std::array<int64_t, 7> key = {g.height, g.width, g.channels, g.kernel, g.stride, g.padding, batch};
  for (const Entry& e : cache) {
    if (e.key == key) {
      *run_stride = e.stride;
      return e.rows.data();
    }
  }
  if (cache.size() >= 64) cache.clear();
  Entry e;
  e.key = key;
  e.rows.resize(static_cast<size_t>(batch * g.out_height() * g.out_width()));
  e.stride = kernels::implicit_rows(g, batch, e.rows.data());
  cache.push_back(std::move(e));
  *run_stride = cache.back().stride;
  return cache.back().rows.data();
}

}  // namespace

void Session::conv_int8(int node, const Value& in, int64_t batch, const float* bias, Value& out) const {
  const Node& n = graph_.nodes()[static_cast<size_t>(node)];
  const Int8Weights& layer = *int8_[node];
  kernels::ConvGeometry g;
  g.channels = in.shape[0];
  g.height = in.shape[1];
  g.width = in.shape[2];
  const LayerAttrs& la = layer_attrs_[static_cast<size_t>(node)];
  g.kernel = la.kernel;
  g.stride = la.stride < 0 ? 1 : la.stride;
  g.padding = la.padding;
  const int64_t cin = g.channels, h = g.height, w = g.width;
  const int64_t oh = g.out_height(), ow = g.out_width(), pixels = oh * ow, patch = g.patch();
  const int64_t cout = layer.packed.n, rows = batch * pixels;
  kernels::GemmArgs args;
  args.w = &layer.packed;
  args.epilogue.per_channel = true;
  // Scratch reused across runs on this thread (no allocation, zeroing or page faults per call).
  thread_local std::vector<uint8_t> a, planes, converted;
  thread_local std::vector<float> result;
  if (layer.static_activation) {
    // uint8 channels-last input (from the previous conv, or quantized here), patches gathered with the zero
    // point as padding (it stands for 0.0 exactly), one GEMM over every pixel of the batch.
    const uint8_t* hwc = nullptr;
    if (in.is_u8) {
      hwc = in.u8.data();
    } else {
      planes.resize(static_cast<size_t>(batch * cin * h * w));
      converted.resize(planes.size());
      kernels::quantize_rows(in.data.data(), batch * cin, h * w, h * w, layer.input, planes.data(), h * w);
      for (int64_t b = 0; b < batch; ++b) {
        const uint8_t* src = planes.data() + b * cin * h * w;
        uint8_t* dst = converted.data() + b * cin * h * w;
        for (int64_t c = 0; c < cin; ++c)
          for (int64_t p = 0; p < h * w; ++p) dst[p * cin + c] = src[c * h * w + p];
      }
      hwc = converted.data();
    }
    // The GEMM reads the patches from the padded images (implicit im2col); the last run may read kRunSlack
    // bytes past the last image.
    const auto pad = static_cast<uint8_t>(layer.input.zero_point);
    const int64_t image = kernels::padded_image_bytes(g);
    a.resize(static_cast<size_t>(batch * image + kernels::kRunSlack), pad);
    for (int64_t b = 0; b < batch; ++b) kernels::pad_hwc(hwc + b * cin * h * w, g, pad, a.data() + b * image);
    args.a_rows = implicit_rows_cached(g, batch, &args.a_segment_stride);
    args.a_segments = g.kernel;
    args.a = a.data();
    args.m = rows;
    args.a_zero_point = layer.input.zero_point;
    if (layer.u8_output) {
      out.u8.resize(static_cast<size_t>(rows * cout));
      out.is_u8 = true;
      out.params = layer.output;
      args.epilogue.kind = kernels::OutputKind::kUint8;
      args.epilogue.bias = layer.int_bias.data();
      args.epilogue.multiplier = layer.requant_multipliers.data();
      args.epilogue.out_zero_point = layer.output.zero_point;
      args.epilogue.clamp_lo = layer.relu ? layer.output.zero_point : 0;
      args.epilogue.clamp_hi = 255;
      args.c = out.u8.data();
      args.ldc = cout;
      std::unique_lock<std::mutex> lock(*pool_mutex_, std::try_to_lock);
      kernels::gemm_u8s8(args, lock.owns_lock() ? pool_.get() : nullptr);
      return;  // stays [batch][oh][ow][cout] uint8
    }
    result.resize(static_cast<size_t>(rows * cout));
    args.epilogue.kind = kernels::OutputKind::kFloat32;
    args.epilogue.multiplier = layer.multipliers.data();
    args.epilogue.fp_bias = bias;
    args.c = result.data();
    args.ldc = cout;
    std::unique_lock<std::mutex> lock(*pool_mutex_, std::try_to_lock);
    kernels::gemm_u8s8(args, lock.owns_lock() ? pool_.get() : nullptr);
  } else {
    // Dynamic: float patches, one row per output pixel in (c, ky, kx) order, each quantized on its own range.
    if (in.is_u8) throw Error(fmt::format("graph node '{}': dynamic conv after a uint8 output", n.name));
    std::vector<float> cols(static_cast<size_t>(rows * patch));
    const int64_t k = g.kernel;
    for (int64_t b = 0; b < batch; ++b) {
      const float* xb = in.data.data() + b * cin * h * w;
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          float* row = cols.data() + ((b * oh + oy) * ow + ox) * patch;
          for (int64_t c = 0; c < cin; ++c)
            for (int64_t ky = 0; ky < k; ++ky) {
              const int64_t iy = oy * g.stride - g.padding + ky;
              for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t ix = ox * g.stride - g.padding + kx;
                *row++ = (iy < 0 || iy >= h || ix < 0 || ix >= w) ? 0.0f : xb[(c * h + iy) * w + ix];
              }
            }
        }
    }
    result.resize(static_cast<size_t>(rows * cout));
    linear_int8(node, cols.data(), rows, bias, result.data());
  }
  // [batch][pixels][cout] -> NCHW.
  out.data.resize(static_cast<size_t>(rows * cout));
  for (int64_t b = 0; b < batch; ++b) {
    const ConstRows r(result.data() + b * pixels * cout, pixels, cout);
    Rows(out.data.data() + b * cout * pixels, cout, pixels) = r.transpose();
  }
}

}  // namespace mighty
