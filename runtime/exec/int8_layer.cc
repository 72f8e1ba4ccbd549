#include "runtime/exec/int8_layer.h"

#include <array>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <Eigen/Core>

#include "kernels/conv.h"
#include "kernels/dispatch.h"
#include "kernels/transpose.h"
#include "runtime/error.h"
#include "runtime/exec/u8_chain.h"
#include "runtime/format/artifact.h"

namespace mighty::exec {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRows = Eigen::Map<const RowMatrix>;
using Rows = Eigen::Map<RowMatrix>;

// A calibrated scale and zero point, as stored in a node's "quant" attribute.
kernels::QuantParams read_params(const MetaValue& quant, const char* scale, const char* zero_point) {
  kernels::QuantParams p;
  p.scale = static_cast<float>(quant.at(scale).number(1e-30, 1e30));
  p.zero_point = static_cast<int32_t>(quant.at(zero_point).integer(0, 255));
  return p;
}

// The per-output-channel scales `<node>.weight_scale`: float32 [out], finite and positive.
const float* weight_scales(const Artifact& artifact, const Node& n, int64_t out) {
  const std::string name = n.name + ".weight_scale";
  if (!artifact.has_tensor(name))
    throw Error(fmt::format("{}: int8 node '{}' has no tensor '{}'", artifact.name(), n.name, name));
  const auto& sc = artifact.tensor(name);
  if (sc.type != TensorType::kFloat32 || sc.shape != std::vector<int64_t>{out}) {
    throw Error(fmt::format("{}: tensor '{}' is {} [{}], expected float32 [{}]", artifact.name(), name,
                            tensor_type_name(sc.type), fmt::join(sc.shape, ", "), out));
  }
  for (int64_t c = 0; c < out; ++c) {
    const float v = sc.as<float>()[c];
    if (!(std::isfinite(v) && v > 0.0f)) {
      throw Error(fmt::format("{}: tensor '{}' entry {}: expected a finite positive scale, found {}",
                              artifact.name(), name, c, v));
    }
  }
  return sc.as<float>();
}

// Repacks a static Linear's weights to read a channels-last uint8 `map` [C, H, W] flattened.
void read_hwc(const Artifact& artifact, const Node& n, const Shape& map, Int8Layer& layer) {
  const int64_t out = layer.packed.n, k = layer.packed.k;
  if (map.size() != 3 || map[0] * map[1] * map[2] != k) {
    throw Error(fmt::format("{}: graph node '{}': a uint8 map of shape [{}] cannot feed {} inputs",
                            artifact.name(), n.name, fmt::join(map, ", "), k));
  }
  const int64_t channels = map[0], pixels = map[1] * map[2];
  const int8_t* w = artifact.tensor(n.name + ".weight").as<int8_t>();
  std::vector<int8_t> hwc(static_cast<size_t>(out * k));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < pixels; ++p) hwc[o * k + p * channels + c] = w[o * k + c * pixels + p];
  layer.packed = kernels::pack_weights(hwc.data(), out, k, k);
  layer.hwc_input = true;
}

}  // namespace

std::unique_ptr<Int8Layer> prepare_int8(const Artifact& artifact, const Graph& graph, int index,
                                        const MetaValue& quant) {
  const Node& n = graph.nodes()[static_cast<size_t>(index)];
  auto unsupported = [&] {
    throw Error(fmt::format("{}: graph node {} ('{}'): unsupported quantization {}", artifact.name(), index,
                            n.name, describe_json(quant.json())));
  };
  quant.expect_object();
  if (quant.string_or("weight", "") != "int8") unsupported();
  auto layer = std::make_unique<Int8Layer>();
  const auto& w = artifact.tensor(n.name + ".weight");
  const int64_t out = w.shape[0], in = w.numel() / out;
  if (n.op == OpKind::kEmbeddingBag) {
    if (quant.string_or("scale", "") != "per_row") unsupported();
    layer->table = w.as<int8_t>();
    layer->scales = weight_scales(artifact, n, out);
    return layer;
  }
  const std::string activation = quant.string_or("activation", "");
  if ((n.op != OpKind::kLinear && n.op != OpKind::kConv2d) ||
      (activation != "dynamic" && activation != "static"))
    unsupported();
  layer->static_activation = activation == "static";
  layer->outputs = out;
  const int64_t groups = n.op == OpKind::kConv2d ? n.attrs.value("groups", int64_t{1}) : 1;
  if (groups != 1) {
    const int64_t cin = n.attrs.at("in_channels").get<int64_t>();
    if (groups != cin || out != cin) {
      throw Error(fmt::format(
          "{}: graph node {} ('{}'): int8 grouped convolution is supported only depthwise (groups = in = out "
          "channels); this one has {} groups of {} -> {} channels",
          artifact.name(), index, n.name, groups, cin, out));
    }
    if (!layer->static_activation) {
      throw Error(
          fmt::format("{}: graph node {} ('{}'): an int8 depthwise convolution needs static activations",
                      artifact.name(), index, n.name));
    }
    layer->depthwise = true;
    layer->depthwise_weights =
        kernels::pack_depthwise(w.as<int8_t>(), out, n.attrs.at("kernel").get<int64_t>());
  }
  // Static: the input is quantized with the calibrated scale and zero point stored here.
  if (layer->static_activation) layer->input = read_params(quant, "input_scale", "input_zero_point");
  layer->scales = weight_scales(artifact, n, out);
  if (layer->depthwise) {
    // packed (the GEMM's weights) stays empty.
  } else if (n.op == OpKind::kConv2d && layer->static_activation) {
    // Static convolutions read their patches from channels-last uint8 images (implicit im2col): K ordered
    // (ky, kx, c), each kernel row padded to whole 4-deep groups.
    const int64_t cin = n.attrs.at("in_channels").get<int64_t>(), k = n.attrs.at("kernel").get<int64_t>();
    const int64_t run = kernels::implicit_run_bytes(k, cin);
    std::vector<int8_t> hwc(static_cast<size_t>(out * k * run));
    kernels::conv_weight_hwc(w.as<int8_t>(), out, cin, k, run, hwc.data());
    layer->packed = kernels::pack_weights(hwc.data(), out, k * run, k * run);
    if (kernels::kernel_table(kernels::selected_isa()).direct_conv)
      layer->packed_runs64 = kernels::pack_weights_runs64(hwc.data(), out, k, run, k * run);
  } else {
    layer->packed = kernels::pack_weights(w.as<int8_t>(), out, in, in);
  }
  if (layer->static_activation) {
    // The dequantization multiplier of a static layer: input scale x weight scale, per output channel.
    layer->multipliers.resize(static_cast<size_t>(out));
    for (int64_t c = 0; c < out; ++c) layer->multipliers[c] = layer->input.scale * layer->scales[c];
  }
  return layer;
}

void prepare_u8_output(const Artifact& artifact, const Graph& graph, int index, const MetaValue& quant,
                       const std::vector<Int8Layer*>& layers) {
  const auto& nodes = graph.nodes();
  const Node& n = nodes[static_cast<size_t>(index)];
  auto fail = [&](const std::string& what) {
    throw Error(fmt::format("{}: graph node {} ('{}'): {}", artifact.name(), index, n.name, what));
  };
  Int8Layer* layer = layers[static_cast<size_t>(index)];
  if (!layer || !layer->static_activation || n.op != OpKind::kConv2d)
    fail("quant.output_scale is only for Conv2d with static activations");
  layer->output = read_params(quant, "output_scale", "output_zero_point");
  layer->relu = quant.boolean_or("output_relu", false);
  const U8Chain chain = follow_u8_chain(graph, index);
  if (chain.end < 0) {
    fail(
        "a uint8 output must have exactly one consumer chain (ReLU, Clip, MaxPool2d, Flatten) ending at an "
        "int8 "
        "conv "
        "or Linear");
  }
  const Int8Layer* next = layers[static_cast<size_t>(chain.end)];
  if (!chain.consumer || !next || !next->static_activation || next->input.scale != layer->output.scale ||
      next->input.zero_point != layer->output.zero_point) {
    fail(fmt::format(
        "uint8 output feeds '{}', which is not a static int8 {} with input scale {} and zero point {}",
        nodes[static_cast<size_t>(chain.end)].name, chain.flatten < 0 ? "conv" : "Linear (after Flatten)",
        layer->output.scale, layer->output.zero_point));
  }
  if (chain.flatten >= 0) {
    const Shape& map = nodes[static_cast<size_t>(nodes[static_cast<size_t>(chain.flatten)].inputs[0])].shape;
    read_hwc(artifact, nodes[static_cast<size_t>(chain.end)], map, *layers[static_cast<size_t>(chain.end)]);
  }
  if (chain.relu != layer->relu) fail("quant.output_relu must say whether a ReLU follows");
  // A Clip on the chain: the artifact names its interval, which must be the graph's.
  if (chain.clip != quant.has("output_clip"))
    fail("quant.output_clip must be given exactly when a Clip follows");
  if (chain.clip) {
    const MetaValue clip = quant.at("output_clip");
    if (clip.size() != 2) clip.fail("expected [min, max]");
    const double lo = clip.at(size_t{0}).number(-1e38, 1e38), hi = clip.at(size_t{1}).number(-1e38, 1e38);
    if (static_cast<float>(lo) != static_cast<float>(chain.lo) ||
        static_cast<float>(hi) != static_cast<float>(chain.hi))
      fail(fmt::format("quant.output_clip [{}, {}] differs from the chain's [{}, {}]", lo, hi, chain.lo,
                       chain.hi));
  }
  u8_clamp(chain, layer->output, layer->clamp_lo, layer->clamp_hi);
  const int64_t out = layer->outputs;
  const float* bias = n.attrs.value("bias", true) ? artifact.tensor(n.name + ".bias").as<float>() : nullptr;
  layer->int_bias.assign(static_cast<size_t>(out), 0);
  layer->requant_multipliers.resize(static_cast<size_t>(out));
  for (int64_t c = 0; c < out; ++c) {
    if (bias && !accumulator_bias(bias[c], layer->input.scale, layer->scales[c], layer->int_bias[c]))
      fail(fmt::format("bias of channel {} does not fit int32 at the accumulator's scale", c));
    layer->requant_multipliers[c] = layer->input.scale * layer->scales[c] / layer->output.scale;
  }
  layer->u8_output = true;
}

bool accumulator_bias(float bias, float input_scale, float weight_scale, int32_t& q) {
  const double acc_scale = static_cast<double>(input_scale) * static_cast<double>(weight_scale);
  const double b = std::nearbyint(static_cast<double>(bias) / acc_scale);
  if (!(std::abs(b) < 1e9)) return false;
  q = static_cast<int32_t>(b);
  return true;
}

void linear_int8(const Int8Layer& layer, const float* x, int64_t rows, const float* bias, float* y,
                 const uint8_t* xq, kernels::ThreadPool* pool) {
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
  kernels::gemm_u8s8(g, pool);
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

// The input as channels-last uint8 at the layer's input parameters: as it is on a uint8 chain, else quantized
// and transposed from NCHW float into `planes` / `converted`.
const uint8_t* channels_last_u8(const Int8Layer& layer, const Value& in, const kernels::ConvGeometry& g,
                                int64_t batch) {
  if (in.is_u8) return in.u8.data();
  thread_local std::vector<uint8_t> planes, converted;
  const int64_t cin = g.channels, hw = g.height * g.width;
  planes.resize(static_cast<size_t>(batch * cin * hw));
  converted.resize(planes.size());
  kernels::quantize_rows(in.data.data(), batch * cin, hw, hw, layer.input, planes.data(), hw);
  for (int64_t b = 0; b < batch; ++b)
    kernels::transpose(planes.data() + b * cin * hw, cin, hw, converted.data() + b * cin * hw);
  return converted.data();
}

// The GEMM over implicit-im2col rows, or for a depthwise layer its own kernel image by image with the same
// epilogue into the same [rows][cout] output.
void run_static(const Int8Layer& layer, const kernels::GemmArgs& args, const kernels::ConvGeometry& g,
                int64_t batch, int64_t image, kernels::ThreadPool* pool) {
  if (!layer.depthwise) return kernels::gemm_u8s8(args, pool);
  const int64_t pixels = g.out_height() * g.out_width();
  const size_t elem = args.epilogue.kind == kernels::OutputKind::kUint8 ? 1 : 4;
  for (int64_t b = 0; b < batch; ++b) {
    kernels::DepthwiseArgs d;
    d.image = args.a + b * image;
    d.geometry = g;
    d.zero_point = args.a_zero_point;
    d.w = &layer.depthwise_weights;
    d.epilogue = args.epilogue;
    d.c = static_cast<uint8_t*>(args.c) + static_cast<size_t>(b * pixels * args.ldc) * elem;
    d.ldc = args.ldc;
    kernels::depthwise_u8s8(d, pool);
  }
}

// Static activations: patches gathered from the padded channels-last uint8 images (implicit im2col, the zero
// point as padding: it stands for 0.0 exactly), one GEMM over every pixel of the batch. Writes uint8
// [batch][oh][ow][cout] into `out` for a uint8 output (returns false), else float [rows][cout] into `result`.
bool conv_static(const Int8Layer& layer, const Value& in, const kernels::ConvGeometry& g, int64_t batch,
                 const float* bias, Value& out, std::vector<float>& result, kernels::ThreadPool* pool) {
  thread_local std::vector<uint8_t> a;  // scratch reused across runs on this thread
  const uint8_t* hwc = channels_last_u8(layer, in, g, batch);
  // The last run may read kRunSlack bytes past the last image, the AMX direct convolution direct_conv_slack.
  const auto pad = static_cast<uint8_t>(layer.input.zero_point);
  const int64_t image = kernels::padded_image_bytes(g), rows = batch * g.out_height() * g.out_width();
  const int64_t cout = layer.outputs;
  const bool direct = !layer.depthwise && layer.packed_runs64.n > 0;
  a.resize(static_cast<size_t>(batch * image + (direct ? kernels::direct_conv_slack(g) : kernels::kRunSlack)),
           pad);
  for (int64_t b = 0; b < batch; ++b)
    kernels::pad_hwc(hwc + b * g.channels * g.height * g.width, g, pad, a.data() + b * image);
  kernels::GemmArgs args;
  args.w = &layer.packed;
  args.epilogue.per_channel = true;
  if (!layer.depthwise) {
    args.a_rows = implicit_rows_cached(g, batch, &args.a_segment_stride);
    args.a_segments = g.kernel;
    if (direct) {
      args.w_runs64 = &layer.packed_runs64;
      args.a_readable = static_cast<int64_t>(a.size());
    }
  }
  args.a = a.data();
  args.m = rows;
  args.a_zero_point = layer.input.zero_point;
  args.ldc = cout;
  if (layer.u8_output) {
    out.u8.resize(static_cast<size_t>(rows * cout));
    out.is_u8 = true;
    out.params = layer.output;
    args.epilogue.kind = kernels::OutputKind::kUint8;
    args.epilogue.bias = layer.int_bias.data();
    args.epilogue.multiplier = layer.requant_multipliers.data();
    args.epilogue.out_zero_point = layer.output.zero_point;
    args.epilogue.clamp_lo = layer.clamp_lo;
    args.epilogue.clamp_hi = layer.clamp_hi;
    args.c = out.u8.data();
    run_static(layer, args, g, batch, image, pool);
    return false;
  }
  result.resize(static_cast<size_t>(rows * cout));
  args.epilogue.kind = kernels::OutputKind::kFloat32;
  args.epilogue.multiplier = layer.multipliers.data();
  args.epilogue.fp_bias = bias;
  args.c = result.data();
  run_static(layer, args, g, batch, image, pool);
  return true;
}

// Dynamic activations: float patches, one row per output pixel in (c, ky, kx) order, each quantized on its
// own range; float [rows][cout] into `result`.
void conv_dynamic(const Int8Layer& layer, const Value& in, const kernels::ConvGeometry& g, int64_t batch,
                  const float* bias, std::vector<float>& result, kernels::ThreadPool* pool) {
  const int64_t cin = g.channels, h = g.height, w = g.width, k = g.kernel;
  const int64_t oh = g.out_height(), ow = g.out_width(), patch = g.patch(), rows = batch * oh * ow;
  std::vector<float> cols(static_cast<size_t>(rows * patch));
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
  result.resize(static_cast<size_t>(rows * layer.outputs));
  linear_int8(layer, cols.data(), rows, bias, result.data(), nullptr, pool);
}

}  // namespace

void conv_int8(const Int8Layer& layer, const Node& node, int64_t kernel, int64_t stride, int64_t padding,
               const Value& in, int64_t batch, const float* bias, Value& out, kernels::ThreadPool* pool) {
  kernels::ConvGeometry g;
  g.channels = in.shape[0];
  g.height = in.shape[1];
  g.width = in.shape[2];
  g.kernel = kernel;
  g.stride = stride;
  g.padding = padding;
  thread_local std::vector<float> result;  // scratch reused across runs on this thread
  if (layer.static_activation) {
    if (!conv_static(layer, in, g, batch, bias, out, result, pool)) return;  // stays uint8 channels-last
  } else {
    if (in.is_u8) throw Error(fmt::format("graph node '{}': dynamic conv after a uint8 output", node.name));
    conv_dynamic(layer, in, g, batch, bias, result, pool);
  }
  // [batch][pixels][cout] -> NCHW.
  const int64_t pixels = g.out_height() * g.out_width(), cout = layer.outputs;
  out.data.resize(static_cast<size_t>(batch * pixels * cout));
  for (int64_t b = 0; b < batch; ++b) {
    const ConstRows r(result.data() + b * pixels * cout, pixels, cout);
    Rows(out.data.data() + b * cout * pixels, cout, pixels) = r.transpose();
  }
}

}  // namespace mighty::exec
