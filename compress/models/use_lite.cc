#include "compress/models/use_lite.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "compress/models/lower.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/progress.h"

namespace mighty::compress {
namespace {

using Weights = std::vector<std::pair<std::string, torch::Tensor>>;

// The one weight whose name contains every part (names are long TF scopes; the parts pick one out).
const torch::Tensor& find(const Weights& w, const std::string& file,
                          std::initializer_list<std::string> parts) {
  const torch::Tensor* found = nullptr;
  std::string joined;
  for (const auto& p : parts) joined += (joined.empty() ? "" : " + ") + p;
  for (const auto& [name, t] : w) {
    bool all = true;
    for (const auto& p : parts) all = all && name.find(p) != std::string::npos;
    if (!all) continue;
    if (found != nullptr) throw Error(fmt::format("{}: more than one weight matches '{}'", file, joined));
    found = &t;
  }
  if (found == nullptr) {
    throw Error(
        fmt::format("{}: no weight matches '{}' (not Universal Sentence Encoder Lite?)", file, joined));
  }
  return *found;
}

torch::Tensor matrix(const Weights& w, const std::string& file, std::initializer_list<std::string> parts) {
  const auto& t = find(w, file, parts);
  return t.reshape({t.size(-2), t.size(-1)});  // [1, 1, in, out] convolution kernels are matrices
}

double scalar(const Weights& w, const std::string& file, std::initializer_list<std::string> parts) {
  const auto& t = find(w, file, parts);
  if (t.numel() != 1) throw Error(fmt::format("{}: expected a scalar for '{}'", file, *parts.begin()));
  return t.to(torch::kFloat64).item<double>();
}

}  // namespace

Weights read_tfjs_weights(const std::string& model_json) {
  const auto model = nlohmann::json::parse(read_file(model_json), nullptr, false);
  if (!model.is_object() || !model.contains("weightsManifest") || !model["weightsManifest"].is_array()) {
    throw Error(fmt::format("{}: not a TensorFlow.js model (no weightsManifest)", model_json));
  }
  const auto dir = std::filesystem::path(model_json).parent_path();
  Weights out;
  for (const auto& group : model["weightsManifest"]) {
    std::string bytes;
    for (const auto& p : group.at("paths")) {
      const auto path = (dir / p.get<std::string>()).string();
      if (!std::filesystem::exists(path)) {
        throw Error(fmt::format("{}: weight shard {} is missing", model_json, path));
      }
      bytes += read_file(path);
    }
    size_t offset = 0;
    for (const auto& w : group.at("weights")) {
      const std::string name = w.at("name").get<std::string>();
      const std::string dtype = w.at("dtype").get<std::string>();
      std::vector<int64_t> shape = w.at("shape").get<std::vector<int64_t>>();
      int64_t n = 1;
      for (int64_t s : shape) n *= s;
      if (dtype != "float32" && dtype != "int32") {
        throw Error(fmt::format("{}: weight {} has dtype {} (only float32 and int32 are read)", model_json,
                                name, dtype));
      }
      if (w.contains("quantization")) {
        throw Error(fmt::format("{}: weight {} is quantized (not supported)", model_json, name));
      }
      const size_t need = static_cast<size_t>(n) * 4;
      if (offset + need > bytes.size()) {
        throw Error(fmt::format("{}: the shards hold {} bytes, but weight {} ends at byte {}", model_json,
                                bytes.size(), name, offset + need));
      }
      auto t = torch::empty(shape, dtype == "float32" ? torch::kFloat32 : torch::kInt32);
      std::memcpy(t.data_ptr(), bytes.data() + offset, need);
      offset += need;
      out.emplace_back(name, t);
    }
    if (offset != bytes.size()) {
      throw Error(fmt::format("{}: the shards hold {} bytes, the manifest describes {}", model_json,
                              bytes.size(), offset));
    }
  }
  return out;
}

UseLiteEncoderImpl::UseLiteEncoderImpl(const std::string& model_json) {
  const Weights w = read_tfjs_weights(model_json);
  const std::string& f = model_json;
  embeddings_ = register_buffer("embeddings", find(w, f, {"module/Embeddings_en"}).clone());
  inv_timescales_ = register_buffer("inv_timescales",
                                    find(w, f, {"AddTimingSignal/TimingSignal/ExpandDims_1"}).reshape({-1}));
  tanh_w_ = register_parameter("tanh_w", find(w, f, {"tanh_layer_0/weights"}).clone());
  tanh_b_ = register_parameter("tanh_b", find(w, f, {"tanh_layer_0/bias"}).clone());
  ln_epsilon_ = scalar(w, f, {"Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x"});
  l2_epsilon_ = scalar(w, f, {"l2_normalize/Maximum/y"});
  const int64_t heads = static_cast<int64_t>(scalar(
      w, f,
      {"Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2"}));
  for (int l = 0;; ++l) {
    const std::string enc = fmt::format("Encode/Layer_{}/TransformerLayer/", l);
    const std::string stack = fmt::format("TransformerStack/Layer_{}/TransformerLayer/", l);
    bool present = false;
    for (const auto& [name, t] : w) present = present || name.find(enc) != std::string::npos;
    if (!present) break;
    UseLiteLayer L;
    const std::string p = fmt::format("layer{}_", l);
    auto reg = [&](const std::string& n, const torch::Tensor& t) {
      return register_parameter(p + n, t.clone());
    };
    L.ln_scale = reg("ln_scale", find(w, f, {enc + "layer_prepostprocess/layer_norm/layer_norm_scale"}));
    L.ln_bias = reg("ln_bias", find(w, f, {enc + "layer_prepostprocess/layer_norm/layer_norm_bias"}));
    L.qkv_w = reg("qkv_w", matrix(w, f, {enc + "MultiheadAttention/qkv_transform_single/kernel"}));
    L.qkv_b = reg("qkv_b", find(w, f, {enc + "MultiheadAttention/qkv_transform_single/bias"}));
    L.out_w = reg("out_w", matrix(w, f, {enc + "MultiheadAttention/output_transform_single/kernel"}));
    L.out_b = reg("out_b", find(w, f, {enc + "MultiheadAttention/output_transform_single/bias"}));
    bool has_dense = false;
    for (const auto& [name, t] : w)
      has_dense = has_dense || name.find(enc + "dense/kernel") != std::string::npos;
    if (has_dense) {
      L.dense_w = reg("dense_w", matrix(w, f, {enc + "dense/kernel"}));
      L.dense_b = reg("dense_b", find(w, f, {enc + "dense/bias"}));
    }
    L.ffn_ln_scale =
        reg("ffn_ln_scale", find(w, f, {enc + "FFN/layer_prepostprocess/layer_norm/layer_norm_scale"}));
    L.ffn_ln_bias =
        reg("ffn_ln_bias", find(w, f, {enc + "FFN/layer_prepostprocess/layer_norm/layer_norm_bias"}));
    L.conv1_w = reg("conv1_w", matrix(w, f, {stack + "FFN/conv1/Tensordot/Reshape_1"}));
    L.conv1_b = reg("conv1_b", find(w, f, {enc + "FFN/conv1/bias"}));
    L.conv2_w = reg("conv2_w", matrix(w, f, {stack + "FFN/conv2/Tensordot/Reshape_1"}));
    L.conv2_b = reg("conv2_b", find(w, f, {enc + "FFN/conv2/bias"}));
    L.scale = scalar(w, f, {stack + "MultiheadAttention/mul/y"});
    L.heads = heads;
    const int64_t width = L.qkv_w.size(1) / 3;
    if (width * 3 != L.qkv_w.size(1) || width % heads != 0) {
      throw Error(fmt::format("{}: layer {}: qkv width {} does not split into 3 x {} heads", f, l,
                              L.qkv_w.size(1), heads));
    }
    L.head_dim = width / heads;
    layers_.push_back(L);
  }
  if (layers_.empty()) throw Error(fmt::format("{}: no transformer layers found", f));
  for (auto& p : parameters()) p.set_requires_grad(false);  // a frozen encoder unless a recipe fine-tunes it
}

torch::Tensor UseLiteEncoderImpl::layer_norm(const torch::Tensor& x, const torch::Tensor& scale,
                                             const torch::Tensor& bias) const {
  // As the graph: (x - mean) * rsqrt(mean((x - mean)^2) + eps) * scale + bias.
  const auto mean = x.mean(-1, true);
  const auto centered = x - mean;
  const auto var = centered.square().mean(-1, true);
  return centered * (scale * torch::rsqrt(var + ln_epsilon_)) + bias;
}

torch::Tensor UseLiteEncoderImpl::timing(int64_t positions) const {
  const auto position = torch::arange(positions, torch::kFloat32).unsqueeze(1) * inv_timescales_.unsqueeze(0);
  return torch::cat({position.sin(), position.cos()}, 1);
}

torch::Tensor UseLiteEncoderImpl::forward(const torch::Tensor& ids_in) {
  TORCH_CHECK(ids_in.dim() == 2, "USE-Lite takes token ids [batch, tokens]");
  const auto ids = ids_in.slice(1, 0, std::min<int64_t>(ids_in.size(1), kMaxTokens));
  const int64_t B = ids.size(0), T = ids.size(1);
  const auto valid = ids.ge(0);                                      // [B, T]
  const auto validf = valid.to(torch::kFloat32).unsqueeze(-1);       // [B, T, 1]
  const auto emb = torch::embedding(embeddings_, ids.clamp_min(0));  // [B, T, 256]
  auto x = (emb * 2.0 + timing(T)) * validf;                         // timing [T, 256]
  const auto key_bias = (1.0 - valid.to(torch::kFloat32)).mul(-1e9).view({B, 1, 1, T});
  for (const UseLiteLayer& L : layers_) {
    const auto h = layer_norm(x, L.ln_scale, L.ln_bias);
    const auto qkv = torch::matmul(h, L.qkv_w) + L.qkv_b;
    const auto parts = qkv.chunk(3, -1);
    auto split = [&](const torch::Tensor& t) { return t.view({B, T, L.heads, L.head_dim}).transpose(1, 2); };
    const auto q = split(parts[0]) * L.scale, k = split(parts[1]), v = split(parts[2]);
    const auto weights = torch::softmax(torch::matmul(q, k.transpose(-1, -2)) + key_bias, -1);
    const auto context = torch::matmul(weights, v).transpose(1, 2).reshape({B, T, L.heads * L.head_dim});
    const auto attended = torch::matmul(context, L.out_w) + L.out_b;
    const auto residual = L.dense_w.defined() ? (torch::matmul(x, L.dense_w) + L.dense_b) * validf : x;
    x = attended + residual;
    const auto f = layer_norm(x, L.ffn_ln_scale, L.ffn_ln_bias);
    const auto ffn =
        torch::matmul(torch::relu(torch::matmul(f, L.conv1_w) + L.conv1_b), L.conv2_w) + L.conv2_b;
    x = x + ffn * validf;
  }
  const auto lengths = valid.sum(1, true).clamp_min(1).to(torch::kFloat32);  // [B, 1]
  const auto pooled = (x * validf).sum(1) / lengths;
  const auto t = torch::tanh(torch::matmul(pooled, tanh_w_) + tanh_b_);
  return t * torch::rsqrt(t.square().sum(-1, true).clamp_min(l2_epsilon_));
}

}  // namespace mighty::compress

namespace mighty::compress {

UseLiteClassifierImpl::UseLiteClassifierImpl(const std::string& model_json,
                                             const std::vector<int64_t>& hidden, int64_t classes) {
  encoder = register_module("encoder", UseLiteEncoder(model_json));
  head_ = torch::nn::Sequential();
  int64_t width = encoder->embedding_dim();
  for (int64_t h : hidden) {
    head_->push_back(torch::nn::Linear(width, h));
    head_->push_back(torch::nn::ReLU());
    width = h;
  }
  head_->push_back(torch::nn::Linear(width, classes));
  register_module("head", head_);
}

torch::Tensor UseLiteClassifierImpl::head(const torch::Tensor& embedding) {
  return head_->forward(embedding);
}

torch::Tensor UseLiteClassifierImpl::forward(const torch::Tensor& ids) { return head(encoder->forward(ids)); }

GraphModule use_lite_graph(UseLiteClassifier& model, int64_t context) {
  const UseLiteEncoderImpl& enc = *model->encoder;
  if (context < 1 || context > UseLiteEncoderImpl::kMaxTokens)
    throw Error(fmt::format("USE-Lite graph: a context of {} tokens (1 .. {})", context,
                            UseLiteEncoderImpl::kMaxTokens));
  Graph g;
  std::map<std::string, torch::Tensor> weights;  // IR tensor name -> value
  const int64_t width0 = enc.embeddings_width();
  const int input = g.add("input", OpKind::kInput, {}, {{"dtype", "int64"}, {"shape", {context}}});
  const int tok = g.add("embed", OpKind::kEmbedding, {input},
                        {{"num_embeddings", enc.vocabulary_rows()}, {"dim", width0}});
  weights.emplace("embed.weight", enc.embeddings() * 2.0);
  const int pos = g.add("timing", OpKind::kEmbedding, {input},
                        {{"num_embeddings", context}, {"dim", width0}, {"positional", true}});
  weights.emplace("timing.weight", enc.timing(context));
  int x = g.add("embed.add", OpKind::kAdd, {tok, pos});
  auto linear = [&](const std::string& name, int from, const torch::Tensor& w_in_out,
                    const torch::Tensor& b) {
    weights.emplace(name + ".weight", w_in_out.t().contiguous());
    weights.emplace(name + ".bias", b);
    return g.add(name, OpKind::kLinear, {from},
                 {{"in_features", w_in_out.size(0)}, {"out_features", w_in_out.size(1)}});
  };
  auto layer_norm = [&](const std::string& name, int from, const torch::Tensor& scale,
                        const torch::Tensor& bias) {
    weights.emplace(name + ".weight", scale);
    weights.emplace(name + ".bias", bias);
    return g.add(name, OpKind::kLayerNorm, {from}, {{"dim", scale.size(0)}, {"eps", enc.ln_epsilon()}});
  };
  for (size_t l = 0; l < enc.layers().size(); ++l) {
    const UseLiteLayer& L = enc.layers()[l];
    const std::string p = fmt::format("layer{}.", l);
    const auto expected = static_cast<float>(1.0 / std::sqrt(static_cast<double>(L.head_dim)));
    if (std::fabs(L.scale - expected) > 1e-6 * expected)
      throw Error(fmt::format("USE-Lite graph: layer {} scales its queries by {}, not 1 / sqrt({})", l,
                              L.scale, L.head_dim));
    const int h = layer_norm(p + "ln", x, L.ln_scale, L.ln_bias);
    const int qkv = linear(p + "attention.in_proj", h, L.qkv_w, L.qkv_b);
    const int ctx = g.add(p + "attention", OpKind::kScaledDotProductAttention, {qkv},
                          {{"heads", L.heads}, {"head_dim", L.head_dim}, {"causal", false}});
    const int attended = linear(p + "attention.out_proj", ctx, L.out_w, L.out_b);
    const int residual = L.dense_w.defined() ? linear(p + "dense", x, L.dense_w, L.dense_b) : x;
    x = g.add(p + "attention.add", OpKind::kAdd, {attended, residual});
    const int f = layer_norm(p + "ffn.ln", x, L.ffn_ln_scale, L.ffn_ln_bias);
    const int up = linear(p + "ffn.conv1", f, L.conv1_w, L.conv1_b);
    const int act = g.add(p + "ffn.relu", OpKind::kReLU, {up});
    const int down = linear(p + "ffn.conv2", act, L.conv2_w, L.conv2_b);
    x = g.add(p + "ffn.add", OpKind::kAdd, {x, down});
  }
  const int pooled = g.add("pool", OpKind::kGlobalAvgPool, {x});
  const int t = g.add("tanh", OpKind::kTanh, {linear("tanh_layer", pooled, enc.tanh_w(), enc.tanh_b())});
  x = g.add("l2_normalize", OpKind::kL2Normalize, {t}, {{"eps", enc.l2_epsilon()}});
  int head_linear = 0;
  for (const auto& m : model->head_layers()->children()) {
    if (const auto* lin = m->as<torch::nn::LinearImpl>()) {
      x = linear(fmt::format("head.{}", head_linear++), x, lin->weight.t(), lin->bias);
    } else if (m->as<torch::nn::ReLUImpl>()) {
      x = g.add(fmt::format("head.{}.relu", head_linear - 1), OpKind::kReLU, {x});
    } else {
      throw Error("USE-Lite graph: the head holds a layer that is neither Linear nor ReLU");
    }
  }
  g.set_output(x);
  GraphModule module(std::move(g));
  set_tensors(module, weights, "USE-Lite graph");
  return module;
}

nlohmann::json train_use_lite(UseLiteClassifier& model, const TrainSpec& spec, bool finetune,
                              const Dataset& data, uint64_t seed) {
  if (!data.classifies() || data.images.train_x.scalar_type() != torch::kInt64) {
    throw Error("a USE-Lite teacher trains on documents (data kind 'documents')");
  }
  for (auto& p : model->encoder->parameters()) p.set_requires_grad(finetune);
  const auto& x = data.images.train_x;
  const auto& y = data.images.train_y;
  const int64_t n = x.size(0);
  // Frozen: the encoder's output for every document, once.
  auto embed_all = [&](const torch::Tensor& ids, const std::string& what) {
    torch::NoGradGuard no_grad;
    model->eval();
    std::vector<torch::Tensor> out;
    Progress progress("teacher: embedding the " + what + " split", ids.size(0), "doc");
    for (int64_t lo = 0; lo < ids.size(0); lo += 32) {
      const int64_t hi = std::min<int64_t>(lo + 32, ids.size(0));
      out.push_back(model->encoder->forward(ids.slice(0, lo, hi)));
      progress.update(hi);
    }
    progress.finish(ids.size(0));
    return torch::cat(out);
  };
  torch::Tensor train_embeddings, val_embeddings;
  if (!finetune) {
    train_embeddings = embed_all(x, "training");
    val_embeddings = embed_all(data.images.val_x, "validation");
  }
  std::vector<torch::Tensor> params;
  for (auto& p : model->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  torch::manual_seed(seed);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(spec.lr).weight_decay(spec.weight_decay));
  const int64_t per_epoch = (n + spec.batch_size - 1) / spec.batch_size;
  const int64_t total = spec.steps > 0 ? spec.steps : spec.epochs * per_epoch;
  nlohmann::json history = nlohmann::json::array();
  Progress progress("teacher: training the head" + std::string(finetune ? " and the encoder" : ""), total,
                    "step");
  std::vector<int64_t> order;
  double loss_sum = 0.0;
  int64_t seen = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < total; ++step) {
    const int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
    if (in_epoch == 0) {
      auto rng = make_rng(seed, /*stream=*/3, static_cast<uint64_t>(epoch));
      order = permutation(n, rng);
    }
    const int64_t lo = in_epoch * spec.batch_size, hi = std::min<int64_t>(lo + spec.batch_size, n);
    const auto idx = torch::from_blob(order.data() + lo, {hi - lo}, torch::kInt64).clone();
    for (auto& group : opt.param_groups()) group.options().set_lr(learning_rate(spec, step, total));
    model->train();
    const auto logits = finetune ? model->forward(x.index_select(0, idx))
                                 : model->head(train_embeddings.index_select(0, idx));
    const auto loss = torch::nn::functional::cross_entropy(
        logits, y.index_select(0, idx),
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(spec.label_smoothing));
    opt.zero_grad();
    loss.backward();
    if (spec.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, spec.grad_clip);
    opt.step();
    loss_sum += loss.item<double>() * static_cast<double>(hi - lo);
    seen += hi - lo;
    progress.update(step + 1, fmt::format("epoch {} loss {:.4f}", epoch + 1, loss_sum / seen));
    if (in_epoch == per_epoch - 1 || step + 1 == total) {
      model->eval();
      nlohmann::json validation;
      if (finetune) {
        validation = evaluate_forward([&](const torch::Tensor& b) { return model->forward(b); }, data,
                                      Split::kValidation);
      } else {
        torch::NoGradGuard no_grad;
        const auto predicted = model->head(val_embeddings).argmax(1);
        validation = {
            {"accuracy", predicted.eq(data.images.val_y).to(torch::kFloat64).mean().item<double>()}};
      }
      history.push_back({{"epoch", epoch + 1}, {"train_loss", loss_sum / seen}, {"validation", validation}});
      progress.note(fmt::format("epoch {}: train loss {:.4f}, validation accuracy {:.2f}%", epoch + 1,
                                loss_sum / seen, 100.0 * validation["accuracy"].get<double>()));
      loss_sum = 0.0;
      seen = 0;
    }
  }
  progress.finish(total);
  model->eval();
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  return {{"steps", total},
          {"finetune", finetune},
          {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
          {"history", history}};
}

UseLiteTeacher::UseLiteTeacher(UseLiteClassifier model) : model_(std::move(model)) {
  model_->eval();
  for (auto& p : model_->parameters()) {
    p.set_requires_grad(false);
    params_ += p.numel();
  }
  bytes_ = 4 * params_;
  for (const auto& b : model_->buffers()) bytes_ += 4 * b.numel();
  params_ += model_->encoder->vocabulary_rows() * model_->encoder->embeddings_width();
}

torch::Tensor UseLiteTeacher::logits(const torch::Tensor& x_in) {
  torch::NoGradGuard no_grad;
  // Columns past the longest document are padding: the encoder masks them, so leave them out (the result is
  // the same, and a batch of one document costs what that document costs).
  const int64_t longest = x_in.size(0) > 0 ? x_in.ge(0).sum(1).max().item<int64_t>() : 0;
  const auto x = x_in.slice(1, 0, std::max<int64_t>(longest, 1));
  if (!remember_) return model_->forward(x);
  const auto ids = x.contiguous();
  const auto lengths = ids.ge(0).sum(1);
  const int64_t rows = ids.size(0);
  std::vector<std::string> keys(static_cast<size_t>(rows));  // a document's real ids (its padding aside)
  std::vector<int64_t> missing;
  for (int64_t r = 0; r < rows; ++r) {
    keys[static_cast<size_t>(r)].assign(
        reinterpret_cast<const char*>(ids.data_ptr<int64_t>() + r * ids.size(1)),
        static_cast<size_t>(lengths[r].item<int64_t>()) * sizeof(int64_t));
    if (!remembered_.count(keys[static_cast<size_t>(r)])) missing.push_back(r);
  }
  if (!missing.empty()) {
    const auto idx = torch::tensor(missing, torch::kInt64);
    const auto computed = model_->forward(ids.index_select(0, idx));
    for (size_t k = 0; k < missing.size(); ++k) {
      remembered_[keys[static_cast<size_t>(missing[k])]] = computed[static_cast<int64_t>(k)].clone();
    }
  }
  std::vector<torch::Tensor> out;
  for (const auto& key : keys) out.push_back(remembered_.at(key));
  return torch::stack(out);
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> UseLiteTeacher::logits_and_features(
    const torch::Tensor& x, const std::vector<int>& nodes) {
  if (!nodes.empty()) throw Error("the USE-Lite teacher has no graph nodes to distill features from");
  return {logits(x), {}};
}

}  // namespace mighty::compress
