#include "compress/passes/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "compress/models/lower.h"
#include "compress/ops/torch_op.h"
#include "compress/passes/export.h"
#include "runtime/error.h"
#include "runtime/exec/u8_chain.h"

namespace mighty::compress {
namespace {

constexpr double kNormEps =
    1e-5;  // LibTorch's BatchNorm2d default, as in the runtime (a node may say otherwise)

// A layer the quantizer considers (a depthwise convolution is then kept only with static activations).
bool quantizable(const Node& n) { return int8_layer(n, /*static_activation=*/true); }

torch::Tensor param(GraphModule& m, const std::string& name) {
  if (auto* p = m->named_parameters(true).find(name)) return *p;
  if (auto* b = m->named_buffers(true).find(name)) return *b;
  throw Error(fmt::format("quantize: the model has no tensor '{}'", name));
}

// The channel dimension of a layer's output: 1 for [B, C, H, W], the last otherwise.
int64_t channel_dim(const torch::Tensor& y) { return y.dim() == 4 ? 1 : y.dim() - 1; }

// Per-channel mean over every other dimension.
torch::Tensor channel_mean(const torch::Tensor& y) {
  const int64_t c = channel_dim(y);
  return y.transpose(c, -1).reshape({-1, y.size(c)}).mean(0);
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& name) {
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

double sqnr_db(const torch::Tensor& reference, const torch::Tensor& test) {
  const double signal = reference.to(torch::kFloat64).pow(2).sum().item<double>();
  const double noise = (test.to(torch::kFloat64) - reference.to(torch::kFloat64)).pow(2).sum().item<double>();
  if (noise == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

// ---- BatchNorm folding ----

GraphModule fold_batchnorm(GraphModule& model) {
  const Graph& g = model->graph();
  const auto& nodes = g.nodes();
  std::vector<int> remap(nodes.size(), -1);
  std::vector<int> folded_into(nodes.size(), -1);  // conv index -> its BatchNorm
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.op != OpKind::kBatchNorm2d) continue;
    const int src = n.inputs[0];
    if (nodes[src].op == OpKind::kConv2d && g.users(src).size() == 1) folded_into[src] = static_cast<int>(i);
  }
  Graph out;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    if (n.op == OpKind::kBatchNorm2d && folded_into[n.inputs[0]] == static_cast<int>(i)) {
      remap[i] = remap[n.inputs[0]];
      continue;
    }
    std::vector<int> inputs;
    for (int in : n.inputs) inputs.push_back(remap[in]);
    nlohmann::json attrs = n.attrs;
    if (folded_into[i] >= 0) attrs["bias"] = true;
    remap[i] = out.add(n.name, n.op, inputs, attrs);
  }
  out.set_output(remap[g.output()]);
  GraphModule folded(out);
  copy_parameters(model, folded);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (folded_into[i] < 0) continue;
    const std::string conv = nodes[i].name, bn = nodes[folded_into[i]].name;
    const auto w = param(model, conv + ".weight");
    const auto gamma = param(model, bn + ".weight"), beta = param(model, bn + ".bias");
    const auto mean = param(model, bn + ".running_mean"), var = param(model, bn + ".running_var");
    const auto factor = gamma / torch::sqrt(var + nodes[folded_into[i]].attrs.value("eps", kNormEps));
    auto bias =
        nodes[i].attrs.value("bias", true) ? param(model, conv + ".bias").clone() : torch::zeros_like(mean);
    param(folded, conv + ".weight").copy_(w * factor.view({-1, 1, 1, 1}));
    param(folded, conv + ".bias").copy_((bias - mean) * factor + beta);
  }
  folded->eval();
  return folded;
}

GraphModule split_attention(GraphModule& model) {
  const Graph& g = model->graph();
  Graph out;
  std::vector<int> remap(g.nodes().size(), -1);
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    std::vector<int> inputs;
    for (int in : n.inputs) inputs.push_back(remap[static_cast<size_t>(in)]);
    if (n.op != OpKind::kMultiHeadAttention) {
      remap[i] = out.add(n.name, n.op, inputs, n.attrs);
      continue;
    }
    const int64_t d = n.attrs.at("d_model").get<int64_t>(), e = attention_inner(n);
    int x =
        out.add(n.name + ".in_proj", OpKind::kLinear, inputs, {{"in_features", d}, {"out_features", 3 * e}});
    x = out.add(n.name, OpKind::kScaledDotProductAttention, {x},
                {{"heads", n.attrs.at("heads")},
                 {"head_dim", attention_head_dim(n)},
                 {"causal", n.attrs.value("causal", false)}});
    remap[i] = out.add(n.name + ".out_proj", OpKind::kLinear, {x}, {{"in_features", e}, {"out_features", d}});
  }
  out.set_output(remap[static_cast<size_t>(g.output())]);
  GraphModule split(out);
  copy_parameters(model, split);  // the projections keep their tensor names
  split->eval();
  return split;
}

// ---- simulation ----

namespace {

// The runtime's per-output-channel multipliers of a static layer, computed by the same expressions.
torch::Tensor static_multipliers(const LayerQuant& q, int64_t out) {
  const auto ws = q.weight_scale.contiguous();
  const float* wsp = ws.data_ptr<float>();
  auto multiplier = torch::empty({1, out}, torch::kFloat32);
  float* m = multiplier.data_ptr<float>();
  for (int64_t c = 0; c < out; ++c)
    m[c] = q.u8_output ? q.input.scale * wsp[c] / q.output.scale : q.input.scale * wsp[c];
  return multiplier;
}

// The kernels' quantizer on a static layer's input (any shape; one scale and zero point), centered: q - zp
// in float64, which holds every integer sum of the layer exactly.
torch::Tensor centered_static(const LayerQuant& q, const torch::Tensor& x_in) {
  const auto x = x_in.to(torch::kFloat32).contiguous();
  auto a = torch::empty(x.sizes(), torch::kUInt8);
  kernels::quantize_rows(x.data_ptr<float>(), 1, x.numel(), x.numel(), q.input, a.data_ptr<uint8_t>(),
                         x.numel());
  return a.to(torch::kFloat64) - static_cast<double>(q.input.zero_point);
}

// The epilogue on exact accumulators acc [rows, out] (float64), as the kernels compute it:
// requantize_value(acc
// + int32 bias, multiplier, zp, clamp) and back to the float it stands for, or float(acc) * multiplier +
// bias.
torch::Tensor finish(const LayerQuant& q, const torch::Tensor& acc, const torch::Tensor& multiplier) {
  const int64_t out = acc.size(1);
  if (q.u8_output) {
    const auto ws = q.weight_scale.contiguous();
    const float* wsp = ws.data_ptr<float>();
    auto int_bias = torch::zeros({1, out}, torch::kFloat64);
    if (q.bias.defined()) {
      const auto b = q.bias.contiguous();
      for (int64_t c = 0; c < out; ++c) {
        const double acc_scale = static_cast<double>(q.input.scale) * static_cast<double>(wsp[c]);
        int_bias[0][c] = std::nearbyint(static_cast<double>(b.data_ptr<float>()[c]) / acc_scale);
      }
    }
    const double zp = q.output.zero_point;
    const double lo = q.clamp_lo - zp, hi = q.clamp_hi - zp;
    auto v = (acc + int_bias).to(torch::kFloat32) * multiplier;
    v = v.clamp(lo, hi).round();  // round half to even, as cvtps2dq
    return v * q.output.scale;    // (q - zp) * scale
  }
  auto y = acc.to(torch::kFloat32) * multiplier;
  if (q.bias.defined()) y = y + q.bias.unsqueeze(0);
  return y;
}

// y[rows, out] from x[rows, in] exactly as Session::linear_int8 computes it: the kernels' quantizer, an exact
// integer dot product (float64 holds it exactly), then the epilogue.
torch::Tensor simulate_rows(const LayerQuant& q, const torch::Tensor& x2d, const torch::Tensor& w2d) {
  const auto x = x2d.to(torch::kFloat32).contiguous();
  const int64_t rows = x.size(0), in = x.size(1), out = w2d.size(0);
  torch::Tensor centered, multiplier;
  if (q.static_activation) {
    centered = centered_static(q, x);
    multiplier = static_multipliers(q, out);
  } else {
    auto a = torch::empty({rows, in}, torch::kUInt8);
    auto scales = torch::empty({rows}, torch::kFloat32);
    auto zeros = torch::empty({rows}, torch::kInt32);
    kernels::quantize_rows_dynamic(x.data_ptr<float>(), rows, in, in, a.data_ptr<uint8_t>(), in,
                                   scales.data_ptr<float>(), zeros.data_ptr<int32_t>());
    centered = a.to(torch::kFloat64) - zeros.to(torch::kFloat64).unsqueeze(1);
    multiplier = scales.unsqueeze(1) * q.weight_scale.unsqueeze(0);  // row scale x weight scale
  }
  return finish(q, centered.matmul(w2d.t()), multiplier);  // exact integers, then the epilogue
}

}  // namespace

torch::Tensor simulate_layer(const Node& n, const LayerQuant& q, const torch::Tensor& x) {
  const auto w2d = q.weight_q.reshape({q.weight_q.size(0), -1}).to(torch::kFloat64);
  if (n.op == OpKind::kLinear) {
    const int64_t in = x.size(-1);
    auto shape = x.sizes().vec();
    shape.back() = w2d.size(0);
    return simulate_rows(q, x.reshape({-1, in}), w2d).reshape(shape);
  }
  const int64_t k = n.attrs.at("kernel").get<int64_t>();
  const int64_t stride = n.attrs.value("stride", 1), pad = n.attrs.value("padding", 0);
  const int64_t groups = n.attrs.value("groups", int64_t{1});
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  if (groups != 1) {
    // Depthwise (static only): exact integer sums of the centered input (zero padding = the zero point),
    // then the epilogue over [pixels, channels] rows as the kernel's. In float32 while every partial sum is
    // an integer below 2^24 (taps * 255 * 128, so kernels up to 22x22): exact, and LibTorch's float64
    // grouped convolution is a slow generic loop.
    const int64_t taps = k * k * (x.size(1) / groups);
    const auto type = taps * 255 * 128 < (int64_t{1} << 24) ? torch::kFloat32 : torch::kFloat64;
    const auto acc =
        torch::conv2d(centered_static(q, x).to(type), q.weight_q.to(type), {}, stride, pad, 1, groups)
            .to(torch::kFloat64);  // [B, C, oh, ow]
    const int64_t c = acc.size(1);
    const auto y = finish(q, acc.permute({0, 2, 3, 1}).reshape({-1, c}), static_multipliers(q, c));
    return y.reshape({b, oh, ow, c}).permute({0, 3, 1, 2}).contiguous();
  }
  // One row per output pixel, patch order (channel, ky, kx): the runtime's im2col; a few images at a time,
  // so the float64 rows (pixels x patch) stay near 16 MB: a whole evaluation batch's would be gigabytes,
  // and the time would go to page faults. Rows are independent: the result is the same.
  const int64_t patch = x.size(1) * k * k;
  const int64_t step = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, oh * ow * patch * 8));
  std::vector<torch::Tensor> parts;
  for (int64_t lo = 0; lo < b; lo += step) {
    const auto xs = x.slice(0, lo, std::min(b, lo + step));
    const auto cols = torch::nn::functional::unfold(
        xs, torch::nn::functional::UnfoldFuncOptions({k, k}).padding(pad).stride(stride));  // [b, patch, L]
    const auto y = simulate_rows(q, cols.transpose(1, 2).reshape({-1, patch}), w2d);        // [b * L, out]
    parts.push_back(y.reshape({xs.size(0), oh, ow, -1}).permute({0, 3, 1, 2}));
  }
  return torch::cat(parts, 0).contiguous();
}

QuantizedModel::QuantizedModel(GraphModule fp32, std::map<int, LayerQuant> layers)
    : fp32_(std::move(fp32)), layers_(std::move(layers)) {
  fp32_->eval();
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> QuantizedModel::forward_capture(
    const torch::Tensor& x, const std::vector<int>& nodes, bool captures_only) {
  torch::NoGradGuard no_grad;
  const auto& graph = fp32_->graph();
  const NodeOverride override_fn = [&](int node, const torch::Tensor& input) -> torch::Tensor {
    auto t = tables_.find(node);
    if (t != tables_.end()) {
      // The bag's mean over the dequantized rows of the real tokens.
      const auto table = t->second.weight_q.to(torch::kFloat32) * t->second.weight_scale.unsqueeze(1);
      const auto valid = input.ge(0);
      const auto rows = torch::embedding(table, input.clamp_min(0)) * valid.unsqueeze(-1);
      return rows.sum(1) / valid.sum(1, true).clamp_min(1).to(torch::kFloat32);
    }
    auto it = layers_.find(node);
    if (it == layers_.end()) return {};
    return simulate_layer(graph.nodes()[node], it->second, input);
  };
  return fp32_->forward_capture(x, nodes, &override_fn, captures_only);
}

torch::Tensor QuantizedModel::forward(const torch::Tensor& x) { return forward_capture(x, {}).first; }

ArtifactWriter QuantizedModel::export_artifact(const nlohmann::json& metadata) {
  const Graph& g = fp32_->graph();
  nlohmann::json graph = g.to_json();
  std::map<std::string, const LayerQuant*> by_weight;
  for (const auto& [i, q] : layers_) {
    nlohmann::json quant = {{"weight", "int8"}, {"activation", q.static_activation ? "static" : "dynamic"}};
    if (q.static_activation) {
      quant["input_scale"] = q.input.scale;
      quant["input_zero_point"] = q.input.zero_point;
    }
    if (q.u8_output) {
      quant["output_scale"] = q.output.scale;
      quant["output_zero_point"] = q.output.zero_point;
      quant["output_relu"] = q.relu;
      if (q.clip) quant["output_clip"] = {q.clip_lo, q.clip_hi};
    }
    graph["nodes"][static_cast<size_t>(i)]["attrs"]["quant"] = quant;
    by_weight[q.name + ".weight"] = &q;
  }
  std::map<std::string, const TableQuant*> tables;
  for (const auto& [i, t] : tables_) {
    graph["nodes"][static_cast<size_t>(i)]["attrs"]["quant"] = {{"weight", "int8"}, {"scale", "per_row"}};
    tables[t.name + ".weight"] = &t;
  }
  nlohmann::json meta = metadata;
  meta["graph"] = graph;
  ArtifactWriter writer;
  writer.set_metadata(meta);
  for (const auto& spec : g.all_tensors()) {
    auto table = tables.find(spec.name);
    if (table != tables.end()) {
      const auto wq = table->second->weight_q.contiguous();
      writer.add_tensor(spec.name, TensorType::kInt8, spec.shape, wq.data_ptr<int8_t>());
      const auto ws = table->second->weight_scale.contiguous();
      writer.add_tensor(table->second->name + ".weight_scale", TensorType::kFloat32, {spec.shape[0]},
                        ws.data_ptr<float>());
      continue;
    }
    auto it = by_weight.find(spec.name);
    if (it != by_weight.end()) {
      const LayerQuant& q = *it->second;
      const auto wq = q.weight_q.contiguous();
      writer.add_tensor(spec.name, TensorType::kInt8, spec.shape, wq.data_ptr<int8_t>());
      const auto ws = q.weight_scale.contiguous();
      writer.add_tensor(q.name + ".weight_scale", TensorType::kFloat32, {spec.shape[0]},
                        ws.data_ptr<float>());
      continue;
    }
    torch::Tensor t = param(fp32_, spec.name);
    // A corrected bias replaces the float model's.
    const std::string suffix = ".bias";
    if (spec.name.size() > suffix.size() && spec.name.compare(spec.name.size() - 5, 5, suffix) == 0) {
      for (const auto& [i, q] : layers_) {
        if (q.bias.defined() && spec.name == q.name + suffix) t = q.bias;
      }
    }
    const auto data = t.detach().to(torch::kFloat32).contiguous();
    writer.add_tensor(spec.name, TensorType::kFloat32, spec.shape, data.data_ptr<float>());
  }
  return writer;
}

// ---- the stage ----

std::vector<torch::Tensor> calibration_batches(const Dataset& data, int64_t max_examples) {
  std::vector<torch::Tensor> out;
  constexpr int64_t kBatch = 256;
  if (data.classifies()) {
    const auto& x = data.images.calib_x;
    const int64_t n = max_examples > 0 ? std::min(max_examples, x.size(0)) : x.size(0);
    for (int64_t lo = 0; lo < n; lo += kBatch) {
      out.push_back(
          normalize_images(x.slice(0, lo, std::min(lo + kBatch, n)), data.images.mean, data.images.std));
    }
  } else {
    const int64_t ctx = data.text.context;
    const int64_t windows =
        std::min<int64_t>(max_examples > 0 ? max_examples : 64, (data.text.train.size(0) - 1) / ctx);
    for (int64_t w = 0; w < windows; w += 16) {
      const int64_t b = std::min<int64_t>(16, windows - w);
      out.push_back(data.text.train.slice(0, w * ctx, (w + b) * ctx).view({b, ctx}));
    }
  }
  if (out.empty()) throw Error("quantize: the calibration split is empty (data.calibration_size)");
  return out;
}

namespace {

// SmoothQuant for LayerNorm -> Linear pairs: per input channel j, s_j = max|X_j|^a / max|W_.j|^(1 - a); the
// LayerNorm's affine parameters are divided by s and the Linear's columns multiplied by it, so the float
// function is unchanged and the activation outliers move into the weights.
nlohmann::json smooth(GraphModule& model, double alpha, const std::vector<torch::Tensor>& batches) {
  nlohmann::json done = nlohmann::json::array();
  const Graph& g = model->graph();
  std::vector<int> norms;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    if (g.nodes()[i].op != OpKind::kLayerNorm) continue;
    const auto& users = g.users(static_cast<int>(i));
    const bool all_linear = !users.empty() && std::all_of(users.begin(), users.end(), [&](int u) {
      return g.nodes()[u].op == OpKind::kLinear;
    });
    if (all_linear) norms.push_back(static_cast<int>(i));
  }
  if (norms.empty()) return done;
  std::vector<torch::Tensor> act_max(norms.size());
  torch::NoGradGuard no_grad;
  for (const auto& x : batches) {
    const auto feats = model->forward_capture(x, norms).second;
    for (size_t k = 0; k < norms.size(); ++k) {
      auto m = feats[k].abs().reshape({-1, feats[k].size(-1)}).amax(0);
      act_max[k] = act_max[k].defined() ? torch::maximum(act_max[k], m) : m;
    }
  }
  for (size_t k = 0; k < norms.size(); ++k) {
    const auto& users = g.users(norms[k]);
    torch::Tensor w_max;
    for (int u : users) {
      auto m = param(model, g.nodes()[u].name + ".weight").abs().amax(0);
      w_max = w_max.defined() ? torch::maximum(w_max, m) : m;
    }
    const auto s =
        (act_max[k].clamp_min(1e-5).pow(alpha) / w_max.clamp_min(1e-5).pow(1.0 - alpha)).clamp_min(1e-5);
    const std::string ln = g.nodes()[norms[k]].name;
    param(model, ln + ".weight").div_(s);
    param(model, ln + ".bias").div_(s);
    for (int u : users) param(model, g.nodes()[u].name + ".weight").mul_(s.unsqueeze(0));
    nlohmann::json names = nlohmann::json::array();
    for (int u : users) names.push_back(g.nodes()[u].name);
    done.push_back({{"layernorm", ln},
                    {"linears", names},
                    {"act_max_before", act_max[k].max().item<double>()},
                    {"act_max_after", (act_max[k] / s).max().item<double>()}});
  }
  return done;
}

}  // namespace

namespace {

// Which layers are quantized, with what settings; the excluded ones are added to `excluded`.
struct Plan {
  int node;
  std::string observer, activations;
};

bool excluded_by(const QuantizeSpec& spec, const std::string& name) {
  return std::any_of(spec.exclude.begin(), spec.exclude.end(),
                     [&](const std::string& p) { return glob_match(p, name); });
}

std::vector<Plan> plan_layers(const Graph& g, const QuantizeSpec& spec, nlohmann::json& excluded) {
  std::vector<Plan> plan;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    if (!quantizable(n)) continue;
    if (excluded_by(spec, n.name)) {
      excluded.push_back(n.name);
      continue;
    }
    Plan p{static_cast<int>(i), spec.observer, spec.activations};
    for (const auto& o : spec.overrides) {
      if (!glob_match(o.layers, n.name)) continue;
      if (!o.observer.empty()) p.observer = o.observer;
      if (!o.activations.empty()) p.activations = o.activations;
    }
    if (!int8_layer(n, p.activations == "static")) {  // a depthwise conv asked for dynamic activations
      excluded.push_back(n.name);
      continue;
    }
    plan.push_back(p);
  }
  for (const auto& pattern : spec.exclude) {
    bool any = false;
    for (const auto& n : g.nodes()) {
      any = any || ((quantizable(n) || n.op == OpKind::kEmbeddingBag) && glob_match(pattern, n.name));
    }
    if (!any) {
      throw Error(fmt::format(
          "quantize: exclude pattern '{}' matches no Linear, Conv2d or EmbeddingBag layer", pattern));
    }
  }
  return plan;
}

// Ranges of every planned layer's input in the float model (two passes: range, histogram).
std::vector<RangeObserver> calibrate(GraphModule& model, const std::vector<Plan>& plan,
                                     const std::vector<torch::Tensor>& batches) {
  std::vector<int> inputs;
  for (const auto& p : plan) inputs.push_back(model->graph().nodes()[p.node].inputs[0]);
  std::vector<RangeObserver> observers(plan.size());
  torch::NoGradGuard no_grad;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& x : batches) {
      const auto feats = model->forward_capture(x, inputs, nullptr, /*captures_only=*/true).second;
      for (size_t k = 0; k < plan.size(); ++k) {
        if (pass == 0)
          observers[k].observe_range(feats[k]);
        else
          observers[k].observe_histogram(feats[k]);
      }
    }
  }
  return observers;
}

// Each planned layer's input parameters, int8 weights and bias; then the uint8 chains, by the runtime's rule
// (runtime/exec/u8_chain.h), so simulation and runtime agree.
std::map<int, LayerQuant> quantize_layers(GraphModule& model, const std::vector<Plan>& plan,
                                          const std::vector<RangeObserver>& observers, double percentile) {
  const Graph& g = model->graph();
  std::map<int, LayerQuant> layers;
  for (size_t k = 0; k < plan.size(); ++k) {
    const Node& n = g.nodes()[plan[k].node];
    LayerQuant q;
    q.node = plan[k].node;
    q.name = n.name;
    q.observer = plan[k].observer;
    q.static_activation = plan[k].activations == "static";
    if (q.static_activation) {
      const auto [lo, hi] = observers[k].range(q.observer, percentile);
      q.input = kernels::choose_quant_params(lo, hi);
    }
    std::tie(q.weight_q, q.weight_scale) =
        quantize_weight_per_channel(param(model, n.name + ".weight").detach());
    q.weight_q = q.weight_q.reshape(param(model, n.name + ".weight").sizes());
    if (n.attrs.value("bias", true)) q.bias = param(model, n.name + ".bias").detach().clone();
    layers[q.node] = q;
  }
  for (auto& [i, q] : layers) {
    if (!q.static_activation || g.nodes()[i].op != OpKind::kConv2d) continue;
    const U8Chain chain = follow_u8_chain(g, i);
    if (chain.end < 0 || !chain.consumer) continue;
    auto next = layers.find(chain.end);
    if (next != layers.end() && next->second.static_activation) {
      q.u8_output = true;
      q.output = next->second.input;
      q.relu = chain.relu;
      q.clip = chain.clip;
      if (q.clip) {
        q.clip_lo = chain.lo;
        q.clip_hi = chain.hi;
      }
      u8_clamp(chain, q.output, q.clamp_lo, q.clamp_hi);
    }
  }
  return layers;
}

// Embedding tables of bags: int8 rows (the largest tensor of a document model). Returns their reports.
nlohmann::json quantize_tables(QuantizedModel& qm, const QuantizeSpec& spec, nlohmann::json& excluded) {
  const Graph& g = qm.fp32()->graph();
  nlohmann::json table_reports = nlohmann::json::array();
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    if (n.op != OpKind::kEmbeddingBag) continue;
    if (excluded_by(spec, n.name)) {
      excluded.push_back(n.name);
      continue;
    }
    TableQuant t;
    t.node = static_cast<int>(i);
    t.name = n.name;
    const auto w = param(qm.fp32(), n.name + ".weight").detach();
    std::tie(t.weight_q, t.weight_scale) = quantize_weight_per_channel(w);
    const auto back = t.weight_q.to(torch::kFloat32) * t.weight_scale.unsqueeze(1);
    table_reports.push_back({{"layer", n.name},
                             {"op", "EmbeddingBag"},
                             {"weight_shape", w.sizes().vec()},
                             {"scale", "per row"},
                             {"sqnr_db", sqnr_db(w, back)}});
    qm.tables()[t.node] = t;
  }
  return table_reports;
}

// The mean per-channel error of a layer's simulated output (earlier layers already quantized and corrected)
// against the float model's, measured on the float epilogue's output (before a fused ReLU's clamp).
torch::Tensor output_bias_error(QuantizedModel& qm, LayerQuant& q,
                                const std::vector<torch::Tensor>& batches) {
  const bool u8 = q.u8_output;
  q.u8_output = false;
  torch::Tensor diff;
  int64_t seen = 0;
  for (const auto& x : batches) {
    // Each layer's correction runs the model only up to that layer (the whole model would make the pass
    // quadratic in depth twice over).
    const auto yq = qm.forward_capture(x, {q.node}, /*captures_only=*/true).second[0];
    const auto yf = qm.fp32()->forward_capture(x, {q.node}, nullptr, /*captures_only=*/true).second[0];
    const auto d = channel_mean(yq - yf) * static_cast<double>(x.size(0));
    diff = diff.defined() ? diff + d : d;
    seen += x.size(0);
  }
  q.u8_output = u8;
  return diff / static_cast<double>(seen);
}

// Bias correction, layer by layer in graph order; returns each layer's report row.
nlohmann::json correct_biases(QuantizedModel& qm, const std::vector<Plan>& plan,
                              const std::vector<RangeObserver>& observers, const QuantizeSpec& spec,
                              const std::vector<torch::Tensor>& batches) {
  nlohmann::json layer_reports = nlohmann::json::array();
  for (size_t k = 0; k < plan.size(); ++k) {
    LayerQuant& q = qm.layers().at(plan[k].node);
    nlohmann::json lr = {{"layer", q.name},
                         {"op", op_name(qm.fp32()->graph().nodes()[q.node].op)},
                         {"activations", q.static_activation ? "static" : "dynamic"},
                         {"weight_shape", q.weight_q.sizes().vec()},
                         {"output", q.u8_output ? (q.clip   ? "uint8 (Clip fused)"
                                                   : q.relu ? "uint8 (ReLU fused)"
                                                            : "uint8")
                                                : "float32"}};
    if (q.static_activation) {
      lr.update({{"observer", q.observer},
                 {"observed_min", observers[k].min()},
                 {"observed_max", observers[k].max()},
                 {"input_scale", q.input.scale},
                 {"input_zero_point", q.input.zero_point}});
    }
    if (spec.bias_correction && q.bias.defined()) {
      const torch::Tensor diff = output_bias_error(qm, q, batches);
      q.bias = q.bias - diff;
      lr["bias_correction_max"] = diff.abs().max().item<double>();
    }
    layer_reports.push_back(lr);
  }
  return layer_reports;
}

// How much each layer's output moved: simulation vs float on the calibration data, into each report row.
void measure_sqnr(QuantizedModel& qm, const std::vector<Plan>& plan,
                  const std::vector<torch::Tensor>& batches, nlohmann::json& layer_reports) {
  std::vector<int> quant_nodes;
  for (const auto& p : plan) quant_nodes.push_back(p.node);
  std::vector<double> signal(plan.size(), 0.0), noise(plan.size(), 0.0);
  for (const auto& x : batches) {
    const auto yq = qm.forward_capture(x, quant_nodes, /*captures_only=*/true).second;
    const auto yf = qm.fp32()->forward_capture(x, quant_nodes, nullptr, /*captures_only=*/true).second;
    for (size_t k = 0; k < plan.size(); ++k) {
      // A uint8 output with a fused ReLU or Clip is already clamped: compare it with the clamped float
      // output.
      const LayerQuant& lq = qm.layers().at(plan[k].node);
      auto ref = lq.relu ? torch::relu(yf[k]) : yf[k];
      if (lq.clip) ref = ref.clamp(lq.clip_lo, lq.clip_hi);
      signal[k] += ref.to(torch::kFloat64).pow(2).sum().item<double>();
      noise[k] += (yq[k].to(torch::kFloat64) - ref.to(torch::kFloat64)).pow(2).sum().item<double>();
    }
  }
  for (size_t k = 0; k < plan.size(); ++k) {
    layer_reports[k]["sqnr_db"] = noise[k] > 0 ? 10.0 * std::log10(signal[k] / noise[k]) : 999.0;
  }
}

}  // namespace

QuantizedModel quantize_model(GraphModule& student, const QuantizeSpec& spec, const Dataset& data,
                              nlohmann::json& report) {
  student->eval();
  GraphModule model = spec.fold_batchnorm ? fold_batchnorm(student) : GraphModule(Graph(student->graph()));
  if (!spec.fold_batchnorm) copy_parameters(student, model);
  if (spec.int8_attention) model = split_attention(model);
  model->eval();
  const auto batches = calibration_batches(data, spec.calibration_examples);
  report = {{"kind", "quantize"},
            {"fold_batchnorm", spec.fold_batchnorm},
            {"int8_attention", spec.int8_attention},
            {"calibration_batches", batches.size()},
            {"observer", spec.observer}};
  if (spec.smoothquant_alpha > 0) report["smoothquant"] = smooth(model, spec.smoothquant_alpha, batches);
  nlohmann::json excluded = nlohmann::json::array();
  const std::vector<Plan> plan = plan_layers(model->graph(), spec, excluded);
  const std::vector<RangeObserver> observers = calibrate(model, plan, batches);
  std::map<int, LayerQuant> layers = quantize_layers(model, plan, observers, spec.percentile);
  QuantizedModel qm(std::move(model), std::move(layers));
  report["tables"] = quantize_tables(qm, spec, excluded);
  report["excluded"] = excluded;
  nlohmann::json layer_reports = correct_biases(qm, plan, observers, spec, batches);
  measure_sqnr(qm, plan, batches, layer_reports);
  report["layers"] = layer_reports;
  return qm;
}

}  // namespace mighty::compress
