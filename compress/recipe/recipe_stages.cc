// Reading and writing the recipe's stages and training settings (split from recipe.cc).
#include <algorithm>

#include <fmt/format.h>

#include "compress/recipe/json_reader.h"
#include "compress/recipe/recipe.h"
#include "compress/recipe/recipe_internal.h"

namespace mighty::compress::detail {

TrainSpec read_train(JsonReader t) {
  TrainSpec s;  // its member initializers are the defaults
  s.optimizer = t.choice("optimizer", s.optimizer, {"adamw", "sgd"});
  s.lr = t.number("lr", s.lr, {0.0, 10.0, true, false});
  s.weight_decay = t.number("weight_decay", s.optimizer == "sgd" ? 0.0 : s.weight_decay, {0.0, 1.0});
  if (s.optimizer == "sgd") {
    s.momentum = t.number("momentum", s.momentum, {0.0, 1.0, false, true});
    s.nesterov = t.boolean("nesterov", s.nesterov);
    if (s.nesterov && s.momentum == 0.0) t.fail_at("nesterov", "Nesterov momentum needs momentum > 0");
  } else {
    s.beta1 = t.number("beta1", s.beta1, {0.0, 1.0, false, true});
    s.beta2 = t.number("beta2", s.beta2, {0.0, 1.0, false, true});
  }
  s.schedule = t.choice("schedule", s.schedule, {"cosine", "step", "constant"});
  s.warmup_steps = t.integer("warmup_steps", s.warmup_steps, 0, kMaxCount);
  if (s.schedule == "cosine") s.min_lr_ratio = t.number("min_lr_ratio", s.min_lr_ratio, {0.0, 1.0});
  if (s.schedule == "step") {
    s.step_size = t.integer("step_size", std::nullopt, 1, kMaxCount);
    s.gamma = t.number("gamma", s.gamma, {0.0, 1.0, true, false});
  }
  s.batch_size = t.integer("batch_size", s.batch_size, 1, 1 << 16);
  const bool has_epochs = t.has("epochs"), has_steps = t.has("steps");
  if (has_epochs && has_steps) t.fail_at("steps", "give either 'epochs' or 'steps', not both");
  if (!has_epochs && !has_steps) t.fail("one of 'epochs' or 'steps' is required");
  if (has_epochs) s.epochs = t.integer("epochs", std::nullopt, 1, 100000);
  if (has_steps) s.steps = t.integer("steps", std::nullopt, 1, kMaxCount);
  s.grad_clip = t.number("grad_clip", s.grad_clip, {0.0, 1e6});
  s.label_smoothing = t.number("label_smoothing", s.label_smoothing, {0.0, 1.0, false, true});
  s.checkpoint_every = t.integer("checkpoint_every", s.checkpoint_every, 0, kMaxCount);
  t.finish();
  return s;
}

nlohmann::json train_to_json(const TrainSpec& s) {
  nlohmann::json j = {{"optimizer", s.optimizer},
                      {"lr", s.lr},
                      {"weight_decay", s.weight_decay},
                      {"schedule", s.schedule},
                      {"warmup_steps", s.warmup_steps},
                      {"batch_size", s.batch_size},
                      {"grad_clip", s.grad_clip},
                      {"label_smoothing", s.label_smoothing},
                      {"checkpoint_every", s.checkpoint_every}};
  if (s.optimizer == "sgd") {
    j["momentum"] = s.momentum;
    j["nesterov"] = s.nesterov;
  } else {
    j["beta1"] = s.beta1;
    j["beta2"] = s.beta2;
  }
  if (s.schedule == "cosine") j["min_lr_ratio"] = s.min_lr_ratio;
  if (s.schedule == "step") {
    j["step_size"] = s.step_size;
    j["gamma"] = s.gamma;
  }
  if (s.epochs > 0)
    j["epochs"] = s.epochs;
  else
    j["steps"] = s.steps;
  return j;
}

namespace {

FeatureSpec read_feature(JsonReader f) {
  FeatureSpec s;
  s.teacher = f.string("teacher", std::nullopt);
  s.student = f.string("student", std::nullopt);
  s.loss = f.choice("loss", s.loss, {"mse", "cosine"});
  s.weight = f.number("weight", s.weight, {0.0, 1e6, true, false});
  f.finish();
  return s;
}

const std::initializer_list<const char*> kObservers = {"minmax", "percentile", "mse", "entropy"};

void read_prune_schedule(JsonReader sched, PruneSpec& p) {
  if (p.method != "n:m")
    p.initial_sparsity = sched.number("initial_sparsity", p.initial_sparsity, {0.0, p.sparsity});
  p.begin = sched.number("begin", p.begin, {0.0, 1.0});
  p.end = sched.number("end", p.end, {p.begin, 1.0});
  p.frequency = sched.integer("frequency", p.frequency, 1, kMaxCount);
  sched.finish();
}

void read_prune_lists(JsonReader& st, PruneSpec& p) {
  p.exclude = st.string_list("exclude", p.exclude);
  if (st.has("layers")) {
    if (p.method == "n:m")
      st.fail_at("layers", "per-layer sparsities are for methods 'magnitude' and 'channels'");
    for (auto& o : st.object_list("layers")) {
      PruneOverride v;
      v.layers = o.string("layers", std::nullopt);
      v.sparsity = o.number("sparsity", std::nullopt, {0.0, 1.0, false, true});
      o.finish();
      p.overrides.push_back(v);
    }
  }
  p.sensitivity = p.scope == "sensitivity" || st.has("sensitivity");
  if (st.has("sensitivity")) {
    auto sens = st.object("sensitivity");
    p.sensitivity_sparsities =
        sens.number_list("sparsities", p.sensitivity_sparsities, {0.0, 1.0, true, true});
    if (!std::is_sorted(p.sensitivity_sparsities.begin(), p.sensitivity_sparsities.end()))
      sens.fail_at("sparsities", "expected increasing sparsities");
    sens.finish();
  }
}

}  // namespace

// Each reader starts from the spec's member initializers (compress/recipe/recipe.h): they are the defaults,
// written once; a default that depends on the recipe is set from it before the key is read.

void read_distill(JsonReader& st, const Recipe& r, StageSpec& spec) {
  DistillSpec d;
  d.seed = r.seed;
  d.alpha = st.number("alpha", d.alpha, {0.0, 1.0});
  d.temperature = st.number("temperature", d.temperature, {0.0, 1000.0, true, false});
  d.train = read_train(st.object("train"));
  d.baseline = st.boolean("baseline", d.baseline);
  d.repeats = st.integer("repeats", d.repeats, 1, 100);
  d.seed = static_cast<uint64_t>(st.integer("seed", static_cast<int64_t>(d.seed), 0, INT64_MAX));
  if (st.has("features")) {
    for (auto& f : st.object_list("features")) d.features.push_back(read_feature(f));
    if (!d.features.empty() && r.teacher_spec.source == "torchscript") {
      st.fail_at("features", "feature distillation needs a zoo teacher (its layers have names)");
    }
  }
  d.teacher_cache = st.boolean("teacher_cache", d.teacher_cache);
  d.mixup = st.number("mixup", d.mixup, {0.0, 100.0});
  if (d.mixup > 0 && r.data.kind != "images") st.fail_at("mixup", "mixup mixes images: not for text data");
  if (d.teacher_cache && !d.features.empty()) {
    st.fail_at("teacher_cache", "the teacher's logits cannot be cached when feature terms need it to run");
  }
  spec.spec = std::move(d);
}

nlohmann::json distill_to_json(const StageSpec& spec) {
  const auto& d = spec.get<DistillSpec>();
  nlohmann::json features = nlohmann::json::array();
  for (const auto& f : d.features) {
    features.push_back(
        {{"teacher", f.teacher}, {"student", f.student}, {"loss", f.loss}, {"weight", f.weight}});
  }
  return {{"alpha", d.alpha},
          {"temperature", d.temperature},
          {"train", train_to_json(d.train)},
          {"baseline", d.baseline},
          {"repeats", d.repeats},
          {"seed", d.seed},
          {"features", features},
          {"teacher_cache", d.teacher_cache},
          {"mixup", d.mixup}};
}

void read_prune(JsonReader& st, const Recipe&, StageSpec& spec) {
  PruneSpec p;
  p.method = st.choice("method", p.method, {"magnitude", "block", "n:m", "channels"});
  if (p.method == "magnitude" || p.method == "block") {
    p.sparsity = st.number("sparsity", std::nullopt, {0.0, 1.0, false, true});
    p.scope = st.choice("scope", p.scope, {"layer", "global", "sensitivity"});
  } else if (p.method == "channels") {
    p.sparsity = st.number("sparsity", std::nullopt, {0.0, 1.0, false, true});
    p.scope = st.choice("scope", p.scope, {"layer", "sensitivity"});
    p.criterion = st.choice("criterion", p.criterion, {"l1", "l2", "bn_scale"});
  } else {
    p.n = st.integer("n", p.n, 1, 64);
    p.m = st.integer("m", p.m, 2, 64);
    if (p.n >= p.m) st.fail_at("n", fmt::format("n must be less than m ({})", p.m));
    p.sparsity = 1.0 - static_cast<double>(p.n) / static_cast<double>(p.m);
  }
  read_prune_schedule(st.object("schedule", /*optional=*/true), p);
  read_prune_lists(st, p);
  p.finetune = st.has("train");
  if (p.finetune) p.train = read_train(st.object("train"));
  p.alpha = st.number("alpha", p.alpha, {0.0, 1.0});
  p.temperature = st.number("temperature", p.temperature, {0.0, 1000.0, true, false});
  if (p.alpha > 0 && !p.finetune) st.fail_at("alpha", "distilled fine-tuning needs 'train'");
  spec.spec = std::move(p);
}

nlohmann::json prune_to_json(const StageSpec& spec) {
  const auto& p = spec.get<PruneSpec>();
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& o : p.overrides) layers.push_back({{"layers", o.layers}, {"sparsity", o.sparsity}});
  nlohmann::json j = {{"method", p.method},
                      {"sparsity", p.sparsity},
                      {"schedule",
                       {{"initial_sparsity", p.initial_sparsity},
                        {"begin", p.begin},
                        {"end", p.end},
                        {"frequency", p.frequency}}},
                      {"exclude", p.exclude},
                      {"layers", layers},
                      {"alpha", p.alpha},
                      {"temperature", p.temperature}};
  if (p.method != "n:m") j["scope"] = p.scope;
  if (p.method == "channels") j["criterion"] = p.criterion;
  if (p.sensitivity) j["sensitivity"] = {{"sparsities", p.sensitivity_sparsities}};
  if (p.method == "n:m") {
    j["n"] = p.n;
    j["m"] = p.m;
  }
  if (p.finetune) j["train"] = train_to_json(p.train);
  return j;
}

void read_quantize(JsonReader& st, const Recipe& r, StageSpec& spec) {
  QuantizeSpec q;
  if (r.data.kind == "text") q.activations = "dynamic";
  q.observer = st.choice("observer", q.observer, kObservers);
  q.percentile = st.number("percentile", q.percentile, {50.0, 100.0, false, false});
  q.activations = st.choice("activations", q.activations, {"static", "dynamic"});
  q.fold_batchnorm = st.boolean("fold_batchnorm", q.fold_batchnorm);
  q.int8_attention = st.boolean("int8_attention", q.int8_attention);
  q.bias_correction = st.boolean("bias_correction", q.bias_correction);
  q.smoothquant_alpha = st.number("smoothquant_alpha", q.smoothquant_alpha, {0.0, 1.0});
  q.calibration_examples = st.integer("calibration_examples", q.calibration_examples, 0, 1 << 20);
  q.exclude = st.string_list("exclude", q.exclude);
  if (st.has("overrides")) {
    for (auto& o : st.object_list("overrides")) {
      QuantizeOverride v;
      v.layers = o.string("layers", std::nullopt);
      if (o.has("observer")) v.observer = o.choice("observer", std::nullopt, kObservers);
      if (o.has("activations")) v.activations = o.choice("activations", std::nullopt, {"static", "dynamic"});
      o.finish();
      q.overrides.push_back(v);
    }
  }
  if (st.has("accuracy_control")) {
    auto a = st.object("accuracy_control");
    q.accuracy_control.max_drop = a.number("max_drop", std::nullopt, {-1.0, 100.0});  // < 0: off
    q.accuracy_control.fallback = a.choice("fallback", q.accuracy_control.fallback, {"fp32", "dynamic"});
    q.accuracy_control.sensitivity = a.boolean("sensitivity", q.accuracy_control.sensitivity);
    a.finish();
  }
  spec.spec = std::move(q);
}

nlohmann::json quantize_to_json(const StageSpec& spec) {
  const auto& q = spec.get<QuantizeSpec>();
  nlohmann::json overrides = nlohmann::json::array();
  for (const auto& o : q.overrides) {
    nlohmann::json j = {{"layers", o.layers}};
    if (!o.observer.empty()) j["observer"] = o.observer;
    if (!o.activations.empty()) j["activations"] = o.activations;
    overrides.push_back(j);
  }
  nlohmann::json j = {{"observer", q.observer},
                      {"percentile", q.percentile},
                      {"activations", q.activations},
                      {"fold_batchnorm", q.fold_batchnorm},
                      {"int8_attention", q.int8_attention},
                      {"bias_correction", q.bias_correction},
                      {"smoothquant_alpha", q.smoothquant_alpha},
                      {"calibration_examples", q.calibration_examples},
                      {"exclude", q.exclude},
                      {"overrides", overrides}};
  j["accuracy_control"] = {{"max_drop", q.accuracy_control.max_drop},
                           {"fallback", q.accuracy_control.fallback},
                           {"sensitivity", q.accuracy_control.sensitivity}};
  return j;
}

void read_export(JsonReader& st, const Recipe&, StageSpec& spec) {
  ExportSpec e;
  e.onnx = st.boolean("onnx", e.onnx);
  spec.spec = e;
}

nlohmann::json export_to_json(const StageSpec& spec) { return {{"onnx", spec.get<ExportSpec>().onnx}}; }

void read_verify(JsonReader& st, const Recipe&, StageSpec& spec) {
  VerifySpec v;
  v.max_accuracy_drop = st.number("max_accuracy_drop", v.max_accuracy_drop, {-1.0, 100.0});
  v.max_bpc_increase = st.number("max_bpc_increase", v.max_bpc_increase, {-1.0, 100.0});
  v.min_accuracy = st.number("min_accuracy", v.min_accuracy, {-1.0, 100.0});
  v.max_latency_ms = st.number("max_latency_ms", v.max_latency_ms, {0.0, 1e9});
  v.min_speedup = st.number("min_speedup", v.min_speedup, {0.0, 1e6});
  v.min_speedup_vs_onnxruntime =
      st.number("min_speedup_vs_onnxruntime", v.min_speedup_vs_onnxruntime, {0.0, 1e6});
  v.onnxruntime = st.boolean("onnxruntime", v.onnxruntime);
  v.max_bytes = st.integer("max_bytes", v.max_bytes, 0, kMaxCount);
  v.latency_runs = st.integer("latency_runs", v.latency_runs, 0, 1000000);
  v.threads = st.integer("threads", v.threads, 0, 1024);
  v.cascade = st.boolean("cascade", v.cascade);
  v.cascade_min_accuracy = st.number("cascade_min_accuracy", v.cascade_min_accuracy, {-1.0, 100.0});
  v.cascade_margin_se = st.number("cascade_margin_se", v.cascade_margin_se, {0.0, 10.0});
  v.cascade_blend = st.number_or_auto("cascade_blend", v.cascade_blend, {0.0, 1.0});
  v.cpu_hour_price = st.number("cpu_hour_price", v.cpu_hour_price, {0.0, 1e9});
  spec.spec = v;
}

nlohmann::json verify_to_json(const StageSpec& spec) {
  const auto& v = spec.get<VerifySpec>();
  return {{"max_accuracy_drop", v.max_accuracy_drop},
          {"max_bpc_increase", v.max_bpc_increase},
          {"min_accuracy", v.min_accuracy},
          {"max_latency_ms", v.max_latency_ms},
          {"min_speedup", v.min_speedup},
          {"min_speedup_vs_onnxruntime", v.min_speedup_vs_onnxruntime},
          {"onnxruntime", v.onnxruntime},
          {"max_bytes", v.max_bytes},
          {"latency_runs", v.latency_runs},
          {"threads", v.threads},
          {"cascade", v.cascade},
          {"cascade_min_accuracy", v.cascade_min_accuracy},
          {"cascade_margin_se", v.cascade_margin_se},
          {"cascade_blend", v.cascade_blend_json()},
          {"cpu_hour_price", v.cpu_hour_price}};
}

}  // namespace mighty::compress::detail
