#include "runtime/session.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <zlib.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <Eigen/Core>

#include "kernels/conv.h"
#include "kernels/fp32_ops.h"
#include "kernels/quantize.h"
#include "runtime/email_text.h"
#include "runtime/error.h"

namespace mighty {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRows = Eigen::Map<const RowMatrix>;
using Rows = Eigen::Map<RowMatrix>;

int64_t product(const std::vector<int64_t>& shape, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < shape.size(); ++i) n *= shape[i];
  return n;
}

constexpr float kNormEps = 1e-5f;  // LibTorch's default for BatchNorm2d and LayerNorm

}  // namespace

Session::Session(Session&&) noexcept = default;

void Session::load_tokenizer() {
  const std::string name = "tokenizer.vocab_json";
  if (!artifact_.has_tensor(name)) {
    throw Error(fmt::format("{}: a document classifier needs tensor '{}', which the file does not have",
                            artifact_.name(), name));
  }
  const TensorView& t = artifact_.tensor(name);
  if (t.type != TensorType::kUint8 || t.shape.size() != 1) {
    throw Error(fmt::format("{}: tensor '{}' must be uint8 [bytes]", artifact_.name(), name));
  }
  std::string json(static_cast<size_t>(documents_.vocab_json_bytes), '\0');
  uLongf size = static_cast<uLongf>(json.size());
  const int rc =
      uncompress(reinterpret_cast<Bytef*>(json.data()), &size, t.as<Bytef>(), static_cast<uLong>(t.bytes));
  if (rc != Z_OK || size != json.size()) {
    throw Error(
        fmt::format("{}: tensor '{}' does not inflate to the {} bytes of vocab.json the metadata states",
                    artifact_.name(), name, json.size()));
  }
  const auto vocab = nlohmann::json::parse(json, nullptr, false);
  if (vocab.is_discarded()) throw Error(fmt::format("{}: tensor '{}' is not JSON", artifact_.name(), name));
  tokenizer_ =
      std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_json(vocab, artifact_.name() + ": " + name));
}

std::vector<int64_t> Session::document_ids(std::string_view raw) const {
  if (!tokenizer_) throw Error(fmt::format("{}: not a document classifier", artifact_.name()));
  const auto ids = tokenizer_->encode(email_text(raw, static_cast<size_t>(documents_.max_bytes)));
  const size_t kept = std::min(ids.size(), static_cast<size_t>(documents_.max_tokens));
  return {ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(kept)};
}

std::vector<float> Session::run_document(std::string_view raw) const {
  std::vector<int64_t> ids = document_ids(raw);
  if (ids.empty()) ids.push_back(-1);  // no tokens: one padding position (the bag's mean is zeros)
  return run_tokens(ids.data(), 1, static_cast<int64_t>(ids.size()));
}
Session::~Session() = default;

Session::Session(Artifact artifact, int threads) : artifact_(std::move(artifact)) {
  const auto& m = artifact_.metadata();
  if (!m.contains("graph")) throw Error(fmt::format("{}: metadata has no graph", artifact_.name()));
  try {
    graph_ = Graph::from_json(m["graph"]);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", artifact_.name(), e.what()));
  }
  if (m.contains("input") && m["input"].is_object() && m["input"].value("kind", "") == "documents") {
    documents_ = InputSpec::from_json(m["input"], artifact_.name());
    load_tokenizer();
  }
  const auto& nodes = graph_.nodes();
  int8_.resize(nodes.size());
  node_tensors_.resize(nodes.size());
  layer_attrs_.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const OpKind op = nodes[i].op;
    if (op != OpKind::kLinear && op != OpKind::kConv2d && op != OpKind::kMaxPool2d &&
        op != OpKind::kAvgPool2d)
      continue;  // only these read them; their values were checked by Graph::infer_shapes
    const auto& a = nodes[i].attrs;
    LayerAttrs& la = layer_attrs_[i];
    auto get = [&](const char* key, int64_t fallback) {
      return a.contains(key) ? a[key].get<int64_t>() : fallback;
    };
    la.in = get(op == OpKind::kConv2d ? "in_channels" : "in_features", 0);
    la.out = get(op == OpKind::kConv2d ? "out_channels" : "out_features", 0);
    la.kernel = get("kernel", 1);
    la.stride = get("stride", -1);
    la.padding = get("padding", 0);
    la.bias = a.value("bias", true);
  }
  for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
    const Node& n = nodes[i];
    const bool quantized = n.attrs.contains("quant");
    bool static_activation = false;
    kernels::QuantParams input_params;
    if (quantized) {
      const auto& q = n.attrs["quant"];
      const bool table = n.op == OpKind::kEmbeddingBag && q.is_object() && q.value("weight", "") == "int8" &&
                         q.value("scale", "") == "per_row";
      const bool known = table || ((n.op == OpKind::kLinear || n.op == OpKind::kConv2d) && q.is_object() &&
                                   q.value("weight", "") == "int8" && q.contains("activation") &&
                                   (q["activation"] == "dynamic" || q["activation"] == "static"));
      if (!known) {
        throw Error(fmt::format("{}: graph node {} ('{}'): unsupported quantization {}", artifact_.name(), i,
                                n.name, q.dump()));
      }
      static_activation = !table && q["activation"] == "static";
      if (static_activation) {
        // Static: the input is quantized with the calibrated scale and zero point stored here.
        const auto& sc = q.contains("input_scale") ? q["input_scale"] : nlohmann::json();
        const auto& zp = q.contains("input_zero_point") ? q["input_zero_point"] : nlohmann::json();
        if (!sc.is_number() ||
            !(std::isfinite(sc.get<double>()) && sc.get<double>() > 0 && sc.get<double>() < 1e30)) {
          throw Error(
              fmt::format("{}: graph node {} ('{}'): quant.input_scale: expected a finite positive "
                          "number, found {}",
                          artifact_.name(), i, n.name, sc.dump()));
        }
        if (!zp.is_number_integer() || zp.get<int64_t>() < 0 || zp.get<int64_t>() > 255) {
          throw Error(
              fmt::format("{}: graph node {} ('{}'): quant.input_zero_point: expected an integer in "
                          "[0, 255], found {}",
                          artifact_.name(), i, n.name, zp.dump()));
        }
        input_params.scale = sc.get<float>();
        input_params.zero_point = static_cast<int32_t>(zp.get<int64_t>());
      }
    }
    for (const auto& spec : graph_.tensors(i)) {
      if (!artifact_.has_tensor(spec.name)) {
        throw Error(fmt::format("{}: the graph needs tensor '{}', which the file does not have",
                                artifact_.name(), spec.name));
      }
      const auto& t = artifact_.tensor(spec.name);
      const bool int8_weight = quantized && spec.name == n.name + ".weight";
      const TensorType want = int8_weight ? TensorType::kInt8 : TensorType::kFloat32;
      if (t.shape != spec.shape || t.type != want) {
        throw Error(fmt::format("{}: tensor '{}' is {} [{}], the graph needs {} [{}]", artifact_.name(),
                                spec.name, tensor_type_name(t.type), fmt::join(t.shape, ", "),
                                tensor_type_name(want), fmt::join(spec.shape, ", ")));
      }
      if (!int8_weight) node_tensors_[i].emplace_back(spec.name.substr(n.name.size() + 1), t.as<float>());
    }
    if (!quantized) continue;
    const auto& w = artifact_.tensor(n.name + ".weight");
    const int64_t out = w.shape[0], in = w.numel() / out;
    const std::string scale_name = n.name + ".weight_scale";
    if (!artifact_.has_tensor(scale_name)) {
      throw Error(fmt::format("{}: int8 node '{}' has no tensor '{}'", artifact_.name(), n.name, scale_name));
    }
    const auto& sc = artifact_.tensor(scale_name);
    if (sc.type != TensorType::kFloat32 || sc.shape != std::vector<int64_t>{out}) {
      throw Error(fmt::format("{}: tensor '{}' is {} [{}], expected float32 [{}]", artifact_.name(),
                              scale_name, tensor_type_name(sc.type), fmt::join(sc.shape, ", "), out));
    }
    for (int64_t c = 0; c < out; ++c) {
      const float v = sc.as<float>()[c];
      if (!(std::isfinite(v) && v > 0.0f)) {
        throw Error(fmt::format("{}: tensor '{}' entry {}: expected a finite positive scale, found {}",
                                artifact_.name(), scale_name, c, v));
      }
    }
    auto layer = std::make_unique<Int8Weights>();
    if (n.op == OpKind::kEmbeddingBag) {
      layer->table = w.as<int8_t>();
      layer->scales = sc.as<float>();
      int8_[i] = std::move(layer);
      continue;
    }
    if (n.op == OpKind::kConv2d && static_activation) {
      // Static convolutions read their patches from channels-last uint8 images (implicit im2col): K ordered
      // (ky, kx, c), each kernel row padded to whole 4-deep groups.
      const int64_t cin = n.attrs.at("in_channels").get<int64_t>(), k = n.attrs.at("kernel").get<int64_t>();
      const int64_t run = kernels::implicit_run_bytes(k, cin);
      std::vector<int8_t> hwc(static_cast<size_t>(out * k * run));
      kernels::conv_weight_hwc(w.as<int8_t>(), out, cin, k, run, hwc.data());
      layer->packed = kernels::pack_weights(hwc.data(), out, k * run, k * run);
    } else {
      layer->packed = kernels::pack_weights(w.as<int8_t>(), out, in, in);
    }
    layer->scales = sc.as<float>();
    layer->static_activation = static_activation;
    layer->input = input_params;
    if (static_activation) {
      // The dequantization multiplier of a static layer: input scale x weight scale, per output channel.
      layer->multipliers.resize(static_cast<size_t>(out));
      for (int64_t c = 0; c < out; ++c) layer->multipliers[c] = input_params.scale * layer->scales[c];
    }
    int8_[i] = std::move(layer);
  }
  setup_u8_outputs();
  if (threads > 1) pool_ = std::make_unique<kernels::ThreadPool>(threads);
  pool_mutex_ = std::make_unique<std::mutex>();
}

const float* Session::weights(const std::string& name) const { return artifact_.tensor(name).as<float>(); }

int64_t Session::output_size(int64_t length) const {
  Shape s = graph_.output_shape();
  if (graph_.input_dtype() == DType::kInt64 && s.size() == 2 && length > 0) s[0] = length;
  return product(s);
}

std::vector<float> Session::run(const float* input, int64_t batch) const {
  if (graph_.input_dtype() != DType::kFloat32) throw Error("this model takes tokens: use run_tokens");
  return execute(input, nullptr, batch, 0, nullptr);
}

std::vector<float> Session::run_tokens(const int64_t* tokens, int64_t batch, int64_t length) const {
  if (graph_.input_dtype() != DType::kInt64) throw Error("this model takes float input: use run");
  const int64_t context = graph_.input_shape()[0];
  if (length < 1 || length > context) {
    throw Error(fmt::format("token sequence of length {} does not fit the context of {}", length, context));
  }
  return execute(nullptr, tokens, batch, length, nullptr);
}

std::vector<float> Session::decode(const int64_t* tokens, int64_t length, DecodeState& state) const {
  if (graph_.input_dtype() != DType::kInt64) throw Error("decode needs a language model (token input)");
  for (const Node& n : graph_.nodes()) {
    if (n.op == OpKind::kMultiHeadAttention && !n.attrs.value("causal", false)) {
      throw Error("decode needs causal attention (a language model)");
    }
    if (n.op == OpKind::kGlobalAvgPool)
      throw Error("decode needs a language model, not a sequence classifier");
  }
  const int64_t context = graph_.input_shape()[0];
  if (length < 1 || state.position + length > context) {
    throw Error(fmt::format("decoding {} more tokens after {} exceeds the context of {}", length,
                            state.position, context));
  }
  if (state.keys.empty()) {
    state.keys.resize(graph_.nodes().size());
    state.values.resize(graph_.nodes().size());
  }
  auto logits = execute(nullptr, tokens, 1, length, &state);
  state.position += length;
  return logits;
}

std::vector<float> Session::execute(const float* input, const int64_t* tokens, int64_t batch, int64_t length,
                                    DecodeState* state) const {
  const int64_t start = state ? state->position : 0;
  const auto& nodes = graph_.nodes();
  std::vector<Value> values(nodes.size());
  // Liveness: a node's buffer goes back to a free list after its last consumer has run, and later nodes take
  // their buffers from that list, so peak memory follows the widest cut of the graph, not its length.
  std::vector<size_t> last_use(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i)
    for (int in : nodes[i].inputs) last_use[static_cast<size_t>(in)] = i;
  last_use[static_cast<size_t>(graph_.output())] = nodes.size();
  std::vector<std::vector<float>> free_buffers;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    Value& out = values[i];
    if (!free_buffers.empty()) {
      out.data = std::move(free_buffers.back());
      free_buffers.pop_back();
      out.data.clear();
    }
    const Value* in = n.inputs.empty() ? nullptr : &values[n.inputs[0]];
    if (in && in->is_u8 && n.op != OpKind::kReLU && n.op != OpKind::kMaxPool2d && n.op != OpKind::kConv2d &&
        n.op != OpKind::kFlatten && n.op != OpKind::kLinear) {
      throw Error(fmt::format("graph node '{}' ({}) cannot take a uint8 input", n.name, op_name(n.op)));
    }
    auto attr = [&](const char* key) { return n.attrs.at(key).get<int64_t>(); };
    auto tensor = [&](const char* suffix) {
      for (const auto& [name, data] : node_tensors_[i])
        if (name == suffix) return data;
      // Not a tensor of the node's op: the artifact's lookup names what is missing.
      return weights(n.name + "." + suffix);
    };
    switch (n.op) {
      case OpKind::kInput:
        if (tokens) {
          out.shape = {length};
        } else {
          out.shape = n.shape;
          out.data.assign(input, input + batch * product(n.shape));
        }
        break;
      case OpKind::kLinear: {
        const LayerAttrs& la = layer_attrs_[i];
        const int64_t fin = la.in, fout = la.out;
        out.shape = in->shape;
        out.shape.back() = fout;
        const int64_t rows = batch * product(in->shape) / fin;
        out.data.resize(static_cast<size_t>(rows * fout));
        const float* bias = la.bias ? tensor("bias") : nullptr;
        if (in->is_u8 != (int8_[i] && int8_[i]->hwc_input)) {
          throw Error(
              fmt::format("graph node '{}': uint8 input and channels-last weights go together", n.name));
        }
        if (in->is_u8) {
          linear_int8(static_cast<int>(i), nullptr, rows, bias, out.data.data(), in->u8.data());
        } else if (int8_[i]) {
          linear_int8(static_cast<int>(i), in->data.data(), rows, bias, out.data.data());
        } else {
          kernels::linear_fp32(in->data.data(), rows, fin, tensor("weight"), bias, fout, out.data.data());
        }
        break;
      }
      case OpKind::kConv2d: {
        const LayerAttrs& la = layer_attrs_[i];
        const int64_t cin = la.in, cout = la.out, k = la.kernel;
        const int64_t stride = la.stride < 0 ? 1 : la.stride, pad = la.padding;
        const int64_t h = in->shape[1], w = in->shape[2];
        const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
        out.shape = {cout, oh, ow};
        if (!int8_[i]) out.data.resize(static_cast<size_t>(batch * cout * oh * ow));
        const int64_t patch = cin * k * k, pixels = oh * ow;
        const float* bias = la.bias ? tensor("bias") : nullptr;
        if (int8_[i]) {
          conv_int8(static_cast<int>(i), *in, batch, bias, out);
          break;
        }
        std::vector<float> cols(static_cast<size_t>(patch * pixels));
        for (int64_t b = 0; b < batch; ++b) {
          const float* x = in->data.data() + b * cin * h * w;
          // cols[(c * k + ky) * k + kx][oy * ow + ox], the layout of LibTorch's weight [O][C][k][k].
          for (int64_t c = 0; c < cin; ++c)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                float* row = cols.data() + ((c * k + ky) * k + kx) * pixels;
                for (int64_t oy = 0; oy < oh; ++oy) {
                  const int64_t iy = oy * stride - pad + ky;
                  for (int64_t ox = 0; ox < ow; ++ox) {
                    const int64_t ix = ox * stride - pad + kx;
                    row[oy * ow + ox] =
                        (iy < 0 || iy >= h || ix < 0 || ix >= w) ? 0.0f : x[(c * h + iy) * w + ix];
                  }
                }
              }
          Rows y(out.data.data() + b * cout * pixels, cout, pixels);
          y.noalias() = ConstRows(tensor("weight"), cout, patch) * ConstRows(cols.data(), patch, pixels);
          if (bias) y.colwise() += Eigen::Map<const Eigen::VectorXf>(bias, cout);
        }
        break;
      }
      case OpKind::kBatchNorm2d: {
        const int64_t c = attr("channels"), plane = in->shape[1] * in->shape[2];
        out.shape = in->shape;
        out.data.resize(in->data.size());
        const float *wt = tensor("weight"), *bs = tensor("bias"), *mean = tensor("running_mean"),
                    *var = tensor("running_var");
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t ch = 0; ch < c; ++ch) {
            const float inv = 1.0f / std::sqrt(var[ch] + kNormEps);
            const float* x = in->data.data() + (b * c + ch) * plane;
            float* y = out.data.data() + (b * c + ch) * plane;
            for (int64_t p = 0; p < plane; ++p) y[p] = (x[p] - mean[ch]) * inv * wt[ch] + bs[ch];
          }
        break;
      }
      case OpKind::kReLU:
        if (in->is_u8) {  // already clamped at the zero point by the producing conv (its only consumer)
          out.shape = in->shape;
          out.u8 = std::move(values[static_cast<size_t>(n.inputs[0])].u8);
          out.is_u8 = true;
          out.params = in->params;
          break;
        }
        out.shape = in->shape;
        out.data.resize(in->data.size());
        std::transform(in->data.begin(), in->data.end(), out.data.begin(),
                       [](float v) { return v > 0.0f ? v : 0.0f; });
        break;
      case OpKind::kGELU:
        out.shape = in->shape;
        out.data.resize(in->data.size());
        kernels::gelu(in->data.data(), static_cast<int64_t>(in->data.size()), out.data.data());
        break;
      case OpKind::kSoftmax: {
        out.shape = in->shape;
        out.data.resize(in->data.size());
        const int64_t cols = in->shape.back();
        kernels::softmax_rows(in->data.data(), static_cast<int64_t>(in->data.size()) / cols, cols,
                              out.data.data());
        break;
      }
      case OpKind::kMaxPool2d:
      case OpKind::kAvgPool2d: {
        const int64_t k = layer_attrs_[i].kernel,
                      stride = layer_attrs_[i].stride < 0 ? k : layer_attrs_[i].stride;
        const int64_t c = in->shape[0], h = in->shape[1], w = in->shape[2];
        const int64_t oh = (h - k) / stride + 1, ow = (w - k) / stride + 1;
        out.shape = {c, oh, ow};
        if (in->is_u8) {  // max pooling commutes with the (monotonic) quantization
          out.u8.resize(static_cast<size_t>(batch * c * oh * ow));
          for (int64_t b = 0; b < batch; ++b) {
            kernels::max_pool_hwc(in->u8.data() + b * h * w * c, h, w, c, k, stride,
                                  out.u8.data() + b * oh * ow * c);
          }
          out.is_u8 = true;
          out.params = in->params;
          break;
        }
        out.data.resize(static_cast<size_t>(batch * c * oh * ow));
        const bool is_max = n.op == OpKind::kMaxPool2d;
        for (int64_t plane = 0; plane < batch * c; ++plane) {
          const float* x = in->data.data() + plane * h * w;
          float* y = out.data.data() + plane * oh * ow;
          for (int64_t oy = 0; oy < oh; ++oy)
            for (int64_t ox = 0; ox < ow; ++ox) {
              float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
              for (int64_t ky = 0; ky < k; ++ky)
                for (int64_t kx = 0; kx < k; ++kx) {
                  const float v = x[(oy * stride + ky) * w + ox * stride + kx];
                  acc = is_max ? std::max(acc, v) : acc + v;
                }
              y[oy * ow + ox] = is_max ? acc : acc / static_cast<float>(k * k);
            }
        }
        break;
      }
      case OpKind::kGlobalAvgPool: {
        // [C, H, W] -> [C] (mean of each plane); [T, D] -> [D] (mean over the sequence).
        const bool spatial = in->shape.size() == 3;
        const int64_t groups = spatial ? in->shape[0] : in->shape[1];
        const int64_t count = spatial ? in->shape[1] * in->shape[2] : in->shape[0];
        out.shape = {groups};
        out.data.assign(static_cast<size_t>(batch * groups), 0.0f);
        for (int64_t b = 0; b < batch; ++b) {
          const float* x = in->data.data() + b * groups * count;
          float* y = out.data.data() + b * groups;
          for (int64_t g = 0; g < groups; ++g) {
            double sum = 0.0;
            for (int64_t j = 0; j < count; ++j) sum += spatial ? x[g * count + j] : x[j * groups + g];
            y[g] = static_cast<float>(sum / count);
          }
        }
        break;
      }
      case OpKind::kFlatten:
        out.shape = {product(in->shape)};
        if (in->is_u8) {  // a channels-last uint8 map on its way to a Linear that reads it as it is
          out.u8 = std::move(values[static_cast<size_t>(n.inputs[0])].u8);
          out.is_u8 = true;
          out.params = in->params;
          break;
        }
        out.data = in->data;
        break;
      case OpKind::kAdd: {
        const Value& other = values[n.inputs[1]];
        out.shape = in->shape;
        out.data.resize(in->data.size());
        for (size_t j = 0; j < in->data.size(); ++j) out.data[j] = in->data[j] + other.data[j];
        break;
      }
      case OpKind::kEmbedding: {
        const int64_t num = attr("num_embeddings"), dim = attr("dim");
        const float* table = tensor("weight");
        const bool positional = n.attrs.value("positional", false);
        out.shape = {length, dim};
        out.data.resize(static_cast<size_t>(batch * length * dim));
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t t = 0; t < length; ++t) {
            const int64_t id = positional ? start + t : tokens[b * length + t];
            if (id < 0 || id >= num) {
              throw Error(fmt::format("token {} at position {} is outside the vocabulary of {}", id, t, num));
            }
            std::copy(table + id * dim, table + (id + 1) * dim, out.data.data() + (b * length + t) * dim);
          }
        break;
      }
      case OpKind::kEmbeddingBag: {
        // The mean of the rows of the real tokens; ids < 0 are padding.
        const int64_t num = attr("num_embeddings"), dim = attr("dim");
        const Int8Weights* q = int8_[i].get();
        const float* table = q ? nullptr : tensor("weight");
        out.shape = {dim};
        out.data.assign(static_cast<size_t>(batch * dim), 0.0f);
        for (int64_t b = 0; b < batch; ++b) {
          float* sum = out.data.data() + b * dim;
          int64_t count = 0;
          for (int64_t t = 0; t < length; ++t) {
            const int64_t id = tokens[b * length + t];
            if (id < 0) continue;
            if (id >= num) {
              throw Error(fmt::format("token {} at position {} is outside the vocabulary of {}", id, t, num));
            }
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
        break;
      }
      case OpKind::kLayerNorm: {
        const int64_t dim = attr("dim");
        out.shape = in->shape;
        out.data.resize(in->data.size());
        kernels::layer_norm(in->data.data(), static_cast<int64_t>(in->data.size()) / dim, dim,
                            tensor("weight"), tensor("bias"), kNormEps, out.data.data());
        break;
      }
      case OpKind::kMultiHeadAttention: {
        // d: the model width (input and output); e = heads * dh: the projections' width (smaller than d
        // once heads were pruned away).
        const int64_t d = attr("d_model"), heads = attr("heads"), dh = attention_head_dim(n), e = heads * dh;
        const int64_t t = in->shape[0];
        const bool causal = n.attrs.value("causal", false);
        out.shape = in->shape;
        out.data.resize(in->data.size());
        std::vector<float> qkv(static_cast<size_t>(t * 3 * e)), context(static_cast<size_t>(t * e)),
            scores(static_cast<size_t>(t * t));
        const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
        for (int64_t b = 0; b < batch; ++b) {
          kernels::linear_fp32(in->data.data() + b * t * d, t, d, tensor("in_proj.weight"),
                               tensor("in_proj.bias"), 3 * e, qkv.data());
          // Keys and values: this call's rows, or (decoding) the cache with this call's rows appended.
          const float* keys = qkv.data() + e;
          const float* vals = qkv.data() + 2 * e;
          int64_t kv_stride = 3 * e, total = t;
          if (state) {
            auto& kc = state->keys[i];
            auto& vc = state->values[i];
            const int64_t context_length = graph_.input_shape()[0];
            if (kc.empty()) {
              kc.assign(static_cast<size_t>(context_length * e), 0.0f);
              vc.assign(static_cast<size_t>(context_length * e), 0.0f);
            }
            for (int64_t r = 0; r < t; ++r) {
              std::copy(qkv.data() + r * 3 * e + e, qkv.data() + r * 3 * e + 2 * e,
                        kc.data() + (start + r) * e);
              std::copy(qkv.data() + r * 3 * e + 2 * e, qkv.data() + r * 3 * e + 3 * e,
                        vc.data() + (start + r) * e);
            }
            keys = kc.data();
            vals = vc.data();
            kv_stride = e;
            total = start + t;
          }
          scores.resize(static_cast<size_t>(t * total));
          for (int64_t hd = 0; hd < heads; ++hd) {
            // q, k and v of head hd start at columns hd*dh (q in qkv, rows 3e apart; k and v in qkv or the
            // cache).
            using Strided = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
            const Strided q(qkv.data() + hd * dh, t, dh, Eigen::OuterStride<>(3 * e));
            const Strided k(keys + hd * dh, total, dh, Eigen::OuterStride<>(kv_stride));
            const Strided v(vals + hd * dh, total, dh, Eigen::OuterStride<>(kv_stride));
            Rows s(scores.data(), t, total);
            s.noalias() = q * k.transpose();
            s *= scale;
            if (causal) {
              // Query row r sits at absolute position start + r and sees keys 0 .. start + r.
              for (int64_t r = 0; r < t; ++r)
                for (int64_t c = start + r + 1; c < total; ++c)
                  s(r, c) = -std::numeric_limits<float>::infinity();
            }
            kernels::softmax_rows(scores.data(), t, total, scores.data());
            Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>> ctx(context.data() + hd * dh, t, dh,
                                                               Eigen::OuterStride<>(e));
            ctx.noalias() = s * v;
          }
          kernels::linear_fp32(context.data(), t, e, tensor("out_proj.weight"), tensor("out_proj.bias"), d,
                               out.data.data() + b * t * d);
        }
        break;
      }
    }
    for (int in : n.inputs) {
      if (last_use[static_cast<size_t>(in)] == i && !values[static_cast<size_t>(in)].data.empty()) {
        free_buffers.push_back(std::move(values[static_cast<size_t>(in)].data));
        values[static_cast<size_t>(in)].data.clear();
      }
    }
  }
  return std::move(values[graph_.output()].data);
}

}  // namespace mighty
