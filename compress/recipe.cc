#include "compress/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "compress/json_reader.h"
#include "runtime/atomic_file.h"
#include "runtime/hash.h"

namespace mighty::compress {
namespace {

constexpr int64_t kMaxWidth = 1 << 16;
constexpr int64_t kMaxCount = int64_t{1} << 40;

ImageDataSpec read_images(JsonReader& d) {
  ImageDataSpec s;
  const std::string base = "/usr/share/datasets/fashion-mnist/";
  s.train_images = d.string("train_images", base + "train-images-idx3-ubyte.gz");
  s.train_labels = d.string("train_labels", base + "train-labels-idx1-ubyte.gz");
  s.test_images = d.string("test_images", base + "t10k-images-idx3-ubyte.gz");
  s.test_labels = d.string("test_labels", base + "t10k-labels-idx1-ubyte.gz");
  s.class_names = d.string_list("class_names", std::vector<std::string>{});
  s.validation_size = d.integer("validation_size", 5000, 0, kMaxCount);
  s.train_limit = d.integer("train_limit", 0, 0, kMaxCount);
  s.test_limit = d.integer("test_limit", 0, 0, kMaxCount);
  s.calibration_size = d.integer("calibration_size", 1000, 0, kMaxCount);
  auto norm = d.object("normalize", /*optional=*/true);
  s.mean = norm.number("mean", 0.0, {-1e6, 1e6});
  s.std = norm.number("std", 1.0, {0.0, 1e6, /*lo_open=*/true});
  norm.finish();
  auto aug = d.object("augment", /*optional=*/true);
  s.crop_padding = aug.integer("crop_padding", 0, 0, 16);
  s.horizontal_flip = aug.boolean("horizontal_flip", false);
  aug.finish();
  return s;
}

TextDataSpec read_text(JsonReader& d) {
  TextDataSpec s;
  s.path = d.string("path", std::nullopt);
  s.context = d.integer("context", 128, 2, 1 << 16);
  s.validation_fraction = d.number("validation_fraction", 0.05, {0.0, 0.5, true, false});
  s.test_fraction = d.number("test_fraction", 0.05, {0.0, 0.5, true, false});
  s.train_limit = d.integer("train_limit", 0, 0, kMaxCount);
  s.eval_limit = d.integer("eval_limit", 0, 0, kMaxCount);
  return s;
}

CnnBlockSpec read_block(JsonReader& b) {
  CnnBlockSpec s;
  s.channels = b.integer("channels", std::nullopt, 1, kMaxWidth);
  s.kernel = b.integer("kernel", 3, 1, 15);
  s.stride = b.integer("stride", 1, 1, 8);
  s.padding = b.integer("padding", s.kernel / 2, 0, 15);
  s.batchnorm = b.boolean("batchnorm", true);
  s.activation = b.choice("activation", "relu", {"relu", "gelu"});
  s.pool = b.choice("pool", "none", {"none", "max", "avg"});
  s.pool_size = b.integer("pool_size", 2, 1, 8);
  b.finish();
  return s;
}

ModelSpec read_model(JsonReader m) {
  ModelSpec s;
  s.arch = m.choice("arch", std::nullopt, {"mlp", "cnn", "transformer"});
  s.input_shape = m.integer_list("input_shape", std::vector<int64_t>{}, 1, kMaxWidth);
  s.classes = m.integer("classes", 0, 0, kMaxWidth);
  s.dropout = m.number("dropout", 0.0, {0.0, 1.0, false, true});
  if (s.arch == "mlp") {
    s.hidden = m.integer_list("hidden", std::nullopt, 1, kMaxWidth);
    s.activation = m.choice("activation", "relu", {"relu", "gelu"});
  } else if (s.arch == "cnn") {
    auto blocks = m.object_list("blocks");
    if (blocks.empty()) m.fail_at("blocks", "a CNN needs at least one block");
    for (auto& b : blocks) s.blocks.push_back(read_block(b));
    s.hidden = m.integer_list("hidden", std::vector<int64_t>{}, 1, kMaxWidth);
    s.activation = m.choice("activation", "relu", {"relu", "gelu"});
    s.global_pool = m.boolean("global_pool", false);
  } else {
    s.d_model = m.integer("d_model", std::nullopt, 1, kMaxWidth);
    s.heads = m.integer("heads", std::nullopt, 1, 1024);
    if (s.d_model % s.heads != 0) {
      m.fail_at("heads", fmt::format("d_model {} is not divisible by {} heads", s.d_model, s.heads));
    }
    s.layers = m.integer("layers", std::nullopt, 1, 256);
    s.ffn = m.integer("ffn", 4 * s.d_model, 1, kMaxWidth);
    s.task = m.choice("task", "lm", {"lm", "classify"});
  }
  m.finish();
  return s;
}

TrainSpec read_train(JsonReader t) {
  TrainSpec s;
  s.optimizer = t.choice("optimizer", "adamw", {"adamw", "sgd"});
  s.lr = t.number("lr", 1e-3, {0.0, 10.0, true, false});
  s.weight_decay = t.number("weight_decay", s.optimizer == "adamw" ? 0.01 : 0.0, {0.0, 1.0});
  if (s.optimizer == "sgd") {
    s.momentum = t.number("momentum", 0.9, {0.0, 1.0, false, true});
    s.nesterov = t.boolean("nesterov", false);
    if (s.nesterov && s.momentum == 0.0) t.fail_at("nesterov", "Nesterov momentum needs momentum > 0");
  } else {
    s.beta1 = t.number("beta1", 0.9, {0.0, 1.0, false, true});
    s.beta2 = t.number("beta2", 0.999, {0.0, 1.0, false, true});
  }
  s.schedule = t.choice("schedule", "cosine", {"cosine", "step", "constant"});
  s.warmup_steps = t.integer("warmup_steps", 0, 0, kMaxCount);
  if (s.schedule == "cosine") s.min_lr_ratio = t.number("min_lr_ratio", 0.0, {0.0, 1.0});
  if (s.schedule == "step") {
    s.step_size = t.integer("step_size", std::nullopt, 1, kMaxCount);
    s.gamma = t.number("gamma", 0.1, {0.0, 1.0, true, false});
  }
  s.batch_size = t.integer("batch_size", 64, 1, 1 << 16);
  const bool has_epochs = t.has("epochs"), has_steps = t.has("steps");
  if (has_epochs && has_steps) t.fail_at("steps", "give either 'epochs' or 'steps', not both");
  if (!has_epochs && !has_steps) t.fail("one of 'epochs' or 'steps' is required");
  if (has_epochs) s.epochs = t.integer("epochs", std::nullopt, 1, 100000);
  if (has_steps) s.steps = t.integer("steps", std::nullopt, 1, kMaxCount);
  s.grad_clip = t.number("grad_clip", 0.0, {0.0, 1e6});
  s.label_smoothing = t.number("label_smoothing", 0.0, {0.0, 1.0, false, true});
  s.checkpoint_every = t.integer("checkpoint_every", 0, 0, kMaxCount);
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

void check_model_fits_data(JsonReader& root, const std::string& where, const ModelSpec& m,
                           const std::string& kind) {
  if (kind == "text" && m.arch == "transformer" && m.task != "lm") {
    root.fail_at_path(where + "/task", "text data trains a language model: task must be 'lm'");
  }
  if (kind == "text" && m.arch != "transformer")
    root.fail_at_path(where + "/arch", "text data needs a transformer");
  if (kind == "images" && m.arch == "transformer") {
    root.fail_at_path(where + "/arch", "image data needs an mlp or cnn");
  }
}

void read_teacher(JsonReader& root, Recipe& r) {
  auto t = root.object("teacher");
  TeacherSpec& s = r.teacher_spec;
  if (t.has("torchscript")) {
    s.source = "torchscript";
    s.torchscript = t.string("torchscript", std::nullopt);
    auto in = t.object("input", /*optional=*/true);
    if (r.data.kind == "text") {
      s.input.layout = in.choice("layout", "ids", {"ids"});
    } else {
      s.input.layout = in.choice("layout", "nchw", {"nchw", "nhwc", "flat"});
      auto norm = in.object("normalize", /*optional=*/true);
      s.input.mean = norm.number("mean", r.data.images.mean, {-1e6, 1e6});
      s.input.std = norm.number("std", r.data.images.std, {0.0, 1e6, /*lo_open=*/true});
      norm.finish();
    }
    in.finish();
    t.finish();
    return;
  }
  r.teacher = read_model(t.object("model"));
  if (t.has("checkpoint")) {
    s.source = "checkpoint";
    s.checkpoint = t.string("checkpoint", std::nullopt);
    if (t.has("train")) t.fail_at("train", "give either 'train' (mighty trains the teacher) or 'checkpoint'");
  } else {
    s.source = "train";
    if (!t.has("train")) {
      t.fail("the teacher needs 'train' (mighty trains it), 'checkpoint' (trained weights) or 'torchscript'");
    }
    r.teacher_train = read_train(t.object("train"));
  }
  t.finish();
  check_model_fits_data(root, "teacher/model", r.teacher, r.data.kind);
}

ModelSpec read_student(JsonReader& root, Recipe& r) {
  auto st = root.object("student");
  ModelSpec m;
  if (st.has("torchscript")) {
    r.student_torchscript = st.string("torchscript", std::nullopt);
    if (r.data.kind != "images")
      st.fail_at("torchscript", "TorchScript students are lowered for image models only");
    st.finish();
    m.arch = "torchscript";
    return m;
  }
  r.student_checkpoint = st.string("checkpoint", "");
  if (st.has("from_teacher")) {
    auto d = st.object("from_teacher");
    const double width = d.number("width", 1.0, {0.0, 16.0, true, false});
    const double depth = d.number("depth", 1.0, {0.0, 16.0, true, false});
    d.finish();
    if (st.has("model")) st.fail_at("model", "give either 'model' or 'from_teacher', not both");
    if (r.teacher_spec.source == "torchscript") {
      st.fail_at("from_teacher", "a TorchScript teacher has no zoo spec to derive a student from");
    }
    m = derive_student(r.teacher, width, depth);
  } else {
    m = read_model(st.object("model"));
  }
  st.finish();
  check_model_fits_data(root, "student/model", m, r.data.kind);
  return m;
}

FeatureSpec read_feature(JsonReader f) {
  FeatureSpec s;
  s.teacher = f.string("teacher", std::nullopt);
  s.student = f.string("student", std::nullopt);
  s.loss = f.choice("loss", "mse", {"mse", "cosine"});
  s.weight = f.number("weight", 1.0, {0.0, 1e6, true, false});
  f.finish();
  return s;
}

const std::initializer_list<const char*> kObservers = {"minmax", "percentile", "mse", "entropy"};

void read_quantize(JsonReader& st, const Recipe& r, QuantizeSpec& q) {
  q.observer = st.choice("observer", "percentile", kObservers);
  q.percentile = st.number("percentile", 99.99, {50.0, 100.0, false, false});
  q.activations =
      st.choice("activations", r.data.kind == "text" ? "dynamic" : "static", {"static", "dynamic"});
  q.fold_batchnorm = st.boolean("fold_batchnorm", true);
  q.bias_correction = st.boolean("bias_correction", true);
  q.smoothquant_alpha = st.number("smoothquant_alpha", 0.0, {0.0, 1.0});
  q.calibration_examples = st.integer("calibration_examples", 0, 0, 1 << 20);
  q.exclude = st.string_list("exclude", std::vector<std::string>{});
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
}

void read_verify(JsonReader& st, VerifySpec& v) {
  v.max_accuracy_drop = st.number("max_accuracy_drop", -1.0, {-1.0, 100.0});
  v.max_bpc_increase = st.number("max_bpc_increase", -1.0, {-1.0, 100.0});
  v.min_speedup = st.number("min_speedup", 0.0, {0.0, 1e6});
  v.max_bytes = st.integer("max_bytes", 0, 0, kMaxCount);
  v.latency_runs = st.integer("latency_runs", 0, 0, 1000000);
  v.threads = st.integer("threads", 0, 0, 1024);
}

void read_prune(JsonReader& st, PruneSpec& p) {
  p.method = st.choice("method", "magnitude", {"magnitude", "block", "n:m", "channels"});
  if (p.method == "magnitude" || p.method == "block") {
    p.sparsity = st.number("sparsity", std::nullopt, {0.0, 1.0, false, true});
    p.scope = st.choice("scope", "layer", {"layer", "global", "sensitivity"});
  } else if (p.method == "channels") {
    p.sparsity = st.number("sparsity", std::nullopt, {0.0, 1.0, false, true});
    p.scope = st.choice("scope", "layer", {"layer", "sensitivity"});
    p.criterion = st.choice("criterion", "l2", {"l1", "l2", "bn_scale"});
  } else {
    p.n = st.integer("n", 2, 1, 64);
    p.m = st.integer("m", 4, 2, 64);
    if (p.n >= p.m) st.fail_at("n", fmt::format("n must be less than m ({})", p.m));
    p.sparsity = 1.0 - static_cast<double>(p.n) / static_cast<double>(p.m);
  }
  auto sched = st.object("schedule", /*optional=*/true);
  if (p.method != "n:m") p.initial_sparsity = sched.number("initial_sparsity", 0.0, {0.0, p.sparsity});
  p.begin = sched.number("begin", 0.0, {0.0, 1.0});
  p.end = sched.number("end", 0.75, {p.begin, 1.0});
  p.frequency = sched.integer("frequency", 100, 1, kMaxCount);
  sched.finish();
  p.exclude = st.string_list("exclude", std::vector<std::string>{});
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
  p.finetune = st.has("train");
  if (p.finetune) p.train = read_train(st.object("train"));
  p.alpha = st.number("alpha", 0.0, {0.0, 1.0});
  p.temperature = st.number("temperature", 2.0, {0.0, 1000.0, true, false});
  if (p.alpha > 0 && !p.finetune) st.fail_at("alpha", "distilled fine-tuning needs 'train'");
}

nlohmann::json prune_to_json(const PruneSpec& p) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& o : p.overrides) layers.push_back({{"layers", o.layers}, {"sparsity", o.sparsity}});
  nlohmann::json j = {{"kind", "prune"},
                      {"method", p.method},
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

StageSpec read_stage(JsonReader& st, const Recipe& r) {
  StageSpec s;
  s.kind = st.choice("kind", std::nullopt, {"distill", "prune", "quantize", "export", "verify"});
  if (s.kind == "quantize") read_quantize(st, r, s.quantize);
  if (s.kind == "verify") read_verify(st, s.verify);
  if (s.kind == "prune") read_prune(st, s.prune);
  if (s.kind != "distill") {
    st.finish();
    return s;
  }
  DistillSpec& d = s.distill;
  d.alpha = st.number("alpha", 0.5, {0.0, 1.0});
  d.temperature = st.number("temperature", 4.0, {0.0, 1000.0, true, false});
  d.train = read_train(st.object("train"));
  d.baseline = st.boolean("baseline", false);
  d.repeats = st.integer("repeats", 1, 1, 100);
  d.seed = static_cast<uint64_t>(st.integer("seed", static_cast<int64_t>(r.seed), 0, INT64_MAX));
  if (st.has("features")) {
    for (auto& f : st.object_list("features")) d.features.push_back(read_feature(f));
    if (!d.features.empty() && r.teacher_spec.source == "torchscript") {
      st.fail_at("features", "feature distillation needs a zoo teacher (its layers have names)");
    }
  }
  d.teacher_cache = st.boolean("teacher_cache", false);
  if (d.teacher_cache && !d.features.empty()) {
    st.fail_at("teacher_cache", "the teacher's logits cannot be cached when feature terms need it to run");
  }
  st.finish();
  return s;
}

nlohmann::json stage_to_json(const StageSpec& s) {
  if (s.kind == "quantize") {
    const QuantizeSpec& q = s.quantize;
    nlohmann::json overrides = nlohmann::json::array();
    for (const auto& o : q.overrides) {
      nlohmann::json j = {{"layers", o.layers}};
      if (!o.observer.empty()) j["observer"] = o.observer;
      if (!o.activations.empty()) j["activations"] = o.activations;
      overrides.push_back(j);
    }
    return {{"kind", s.kind},
            {"observer", q.observer},
            {"percentile", q.percentile},
            {"activations", q.activations},
            {"fold_batchnorm", q.fold_batchnorm},
            {"bias_correction", q.bias_correction},
            {"smoothquant_alpha", q.smoothquant_alpha},
            {"calibration_examples", q.calibration_examples},
            {"exclude", q.exclude},
            {"overrides", overrides}};
  }
  if (s.kind == "verify") {
    const VerifySpec& v = s.verify;
    return {{"kind", s.kind},
            {"max_accuracy_drop", v.max_accuracy_drop},
            {"max_bpc_increase", v.max_bpc_increase},
            {"min_speedup", v.min_speedup},
            {"max_bytes", v.max_bytes},
            {"latency_runs", v.latency_runs},
            {"threads", v.threads}};
  }
  if (s.kind == "export") return {{"kind", s.kind}};
  if (s.kind == "prune") return prune_to_json(s.prune);
  const DistillSpec& d = s.distill;
  nlohmann::json features = nlohmann::json::array();
  for (const auto& f : d.features) {
    features.push_back(
        {{"teacher", f.teacher}, {"student", f.student}, {"loss", f.loss}, {"weight", f.weight}});
  }
  return {{"kind", s.kind},
          {"alpha", d.alpha},
          {"temperature", d.temperature},
          {"train", train_to_json(d.train)},
          {"baseline", d.baseline},
          {"repeats", d.repeats},
          {"seed", d.seed},
          {"features", features},
          {"teacher_cache", d.teacher_cache}};
}

}  // namespace

ModelSpec derive_student(const ModelSpec& t, double width, double depth) {
  auto scale = [&](int64_t v) { return std::max<int64_t>(1, std::llround(static_cast<double>(v) * width)); };
  auto count = [&](size_t n) {
    return static_cast<size_t>(std::max<int64_t>(1, std::llround(static_cast<double>(n) * depth)));
  };
  ModelSpec s = t;
  s.hidden.clear();
  if (!t.hidden.empty()) {
    const size_t keep = count(t.hidden.size());
    for (size_t i = 0; i < keep && i < t.hidden.size(); ++i) s.hidden.push_back(scale(t.hidden[i]));
  }
  if (t.arch == "cnn") {
    // Stages end at a pooling block (or at the last block); each keeps round(n * depth) >= 1 blocks, always
    // its last one, so the spatial size of the result is the teacher's.
    s.blocks.clear();
    size_t begin = 0;
    for (size_t i = 0; i < t.blocks.size(); ++i) {
      if (t.blocks[i].pool == "none" && i + 1 != t.blocks.size()) continue;
      const size_t n = i - begin + 1, keep = std::min(n, count(n));
      for (size_t j = i + 1 - keep; j <= i; ++j) {
        CnnBlockSpec b = t.blocks[j];
        b.channels = scale(b.channels);
        s.blocks.push_back(b);
      }
      begin = i + 1;
    }
  }
  if (t.arch == "transformer") {
    const int64_t head_dim =
        std::max<int64_t>(1, std::llround(static_cast<double>(t.d_model / t.heads) * width));
    s.d_model = head_dim * t.heads;
    s.ffn = scale(t.ffn);
    s.layers = static_cast<int64_t>(count(static_cast<size_t>(t.layers)));
  }
  return s;
}

std::string data_cache_dir() {
  if (const char* env = std::getenv("MIGHTY_DATA"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/mighty";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/mighty";
}

std::string expand_data_path(const std::string& path) {
  const std::string prefix = "$MIGHTY_DATA/";
  if (path.rfind(prefix, 0) == 0) return data_cache_dir() + "/" + path.substr(prefix.size());
  return path;
}

nlohmann::json model_spec_to_json(const ModelSpec& m) {
  nlohmann::json j = {{"arch", m.arch}, {"dropout", m.dropout}};
  if (!m.input_shape.empty()) j["input_shape"] = m.input_shape;
  if (m.classes > 0) j["classes"] = m.classes;
  if (m.arch == "mlp" || m.arch == "cnn") {
    j["hidden"] = m.hidden;
    j["activation"] = m.activation;
  }
  if (m.arch == "cnn") {
    j["global_pool"] = m.global_pool;
    j["blocks"] = nlohmann::json::array();
    for (const auto& b : m.blocks) {
      j["blocks"].push_back({{"channels", b.channels},
                             {"kernel", b.kernel},
                             {"stride", b.stride},
                             {"padding", b.padding},
                             {"batchnorm", b.batchnorm},
                             {"activation", b.activation},
                             {"pool", b.pool},
                             {"pool_size", b.pool_size}});
    }
  }
  if (m.arch == "transformer") {
    j.update(
        {{"d_model", m.d_model}, {"heads", m.heads}, {"layers", m.layers}, {"ffn", m.ffn}, {"task", m.task}});
  }
  return j;
}

Recipe parse_recipe(const std::string& text, const std::string& file) {
  const JsonSource source = parse_json_source(text, file);
  auto root = JsonReader::root(source);
  Recipe r;
  r.file = file;
  std::string stem = file.substr(file.find_last_of('/') + 1);
  stem = stem.substr(0, stem.find('.'));
  r.name = root.string("name", stem);
  r.seed = static_cast<uint64_t>(root.integer("seed", 0, 0, INT64_MAX));

  auto data = root.object("data");
  r.data.kind = data.choice("kind", std::nullopt, {"images", "text"});
  if (r.data.kind == "images")
    r.data.images = read_images(data);
  else
    r.data.text = read_text(data);
  data.finish();

  read_teacher(root, r);
  if (root.has("student")) r.student = read_student(root, r);
  if (root.has("stages")) {
    for (auto& st : root.object_list("stages")) r.stages.push_back(read_stage(st, r));
  }
  if (!r.stages.empty() && r.student.arch.empty()) {
    root.fail_at("stages", "the stages need a 'student'");
  }
  // Order: training stages (distill, prune, any number), then quantize, then export, then verify; each of
  // the last three at most once.
  const std::vector<std::string> order = {"distill", "quantize", "export", "verify"};
  size_t last = 0;
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const std::string& kind = r.stages[i].kind == "prune" ? order[0] : r.stages[i].kind;
    const auto rank = static_cast<size_t>(std::find(order.begin(), order.end(), kind) - order.begin());
    const std::string at = fmt::format("stages/{}/kind", i);
    if (rank < last || (rank == last && rank > 0 && i > 0)) {
      root.fail_at_path(at, fmt::format("'{}' cannot come after '{}' (order: distill and prune..., quantize, "
                                        "export, verify)",
                                        r.stages[i].kind, r.stages[i - 1].kind));
    }
    if (r.stages[i].kind == "verify" && (i == 0 || r.stages[i - 1].kind != "export")) {
      root.fail_at_path(at, "'verify' checks the exported artifact: put an 'export' stage before it");
    }
    last = rank;
  }

  auto eval = root.object("eval", /*optional=*/true);
  r.eval.latency_runs = eval.integer("latency_runs", 200, 1, 1000000);
  r.eval.throughput_batch = eval.integer("throughput_batch", 64, 1, 65536);
  eval.finish();
  root.finish();
  return r;
}

Recipe load_recipe(const std::string& path) { return parse_recipe(read_file(path), path); }

nlohmann::json Recipe::to_json() const {
  nlohmann::json d = {{"kind", data.kind}};
  if (data.kind == "images") {
    const auto& s = data.images;
    d.update({{"train_images", s.train_images},
              {"train_labels", s.train_labels},
              {"test_images", s.test_images},
              {"test_labels", s.test_labels},
              {"class_names", s.class_names},
              {"validation_size", s.validation_size},
              {"train_limit", s.train_limit},
              {"test_limit", s.test_limit},
              {"calibration_size", s.calibration_size},
              {"normalize", {{"mean", s.mean}, {"std", s.std}}},
              {"augment", {{"crop_padding", s.crop_padding}, {"horizontal_flip", s.horizontal_flip}}}});
  } else {
    const auto& s = data.text;
    d.update({{"path", s.path},
              {"context", s.context},
              {"validation_fraction", s.validation_fraction},
              {"test_fraction", s.test_fraction},
              {"train_limit", s.train_limit},
              {"eval_limit", s.eval_limit}});
  }
  nlohmann::json j = {
      {"name", name},
      {"seed", seed},
      {"data", d},
      {"teacher", teacher_json()},
      {"eval", {{"latency_runs", eval.latency_runs}, {"throughput_batch", eval.throughput_batch}}}};
  if (!student_torchscript.empty()) {
    j["student"] = {{"torchscript", student_torchscript}};
  } else if (!student.arch.empty()) {
    j["student"] = {{"model", model_spec_to_json(student)}};
    if (!student_checkpoint.empty()) j["student"]["checkpoint"] = student_checkpoint;
  }
  if (!stages.empty()) {
    j["stages"] = nlohmann::json::array();
    for (const auto& s : stages) j["stages"].push_back(stage_to_json(s));
  }
  return j;
}

nlohmann::json Recipe::teacher_json() const {
  const TeacherSpec& t = teacher_spec;
  if (t.source == "torchscript") {
    nlohmann::json input = {{"layout", t.input.layout}};
    if (data.kind == "images") input["normalize"] = {{"mean", t.input.mean}, {"std", t.input.std}};
    return {{"torchscript", t.torchscript}, {"input", input}};
  }
  if (t.source == "checkpoint") return {{"model", model_spec_to_json(teacher)}, {"checkpoint", t.checkpoint}};
  return {{"model", model_spec_to_json(teacher)}, {"train", train_to_json(teacher_train)}};
}

std::string Recipe::hash() const { return hash64_hex(to_json().dump()); }

std::string Recipe::teacher_hash() const {
  const auto j = to_json();
  return hash64_hex(
      nlohmann::json{{"seed", j["seed"]}, {"data", j["data"]}, {"teacher", j["teacher"]}}.dump());
}

}  // namespace mighty::compress
