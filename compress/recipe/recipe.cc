#include "compress/recipe/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "compress/recipe/json_reader.h"
#include "compress/recipe/recipe_internal.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"

namespace mighty::compress {
namespace {

using detail::kMaxCount;
using detail::read_stage;
using detail::read_train;
using detail::stage_to_json;
using detail::train_to_json;

constexpr int64_t kMaxWidth = 1 << 16;

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

DocumentDataSpec read_documents(JsonReader& d) {
  DocumentDataSpec s;
  s.corpus = d.string("corpus", s.corpus);
  s.vocab = d.string("vocab", s.vocab);
  s.class_names = d.string_list("class_names", s.class_names);
  if (s.class_names.size() < 2)
    d.fail_at("class_names", "at least two classes (each names the folders of its documents)");
  s.max_tokens = d.integer("max_tokens", 128, 1, 4096);
  s.max_bytes = d.integer("max_bytes", 2000, 1, 1 << 20);
  s.validation_size = d.integer("validation_size", 600, 1, kMaxCount);
  s.test_size = d.integer("test_size", 1200, 1, kMaxCount);
  s.train_limit = d.integer("train_limit", 0, 0, kMaxCount);
  s.calibration_size = d.integer("calibration_size", 500, 1, kMaxCount);
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

// torchvision's MobileNetV2 stages (expansion, channels, blocks, stride) and a CIFAR ResNet-20's.
std::vector<NetStageSpec> default_stages(const std::string& arch) {
  if (arch == "resnet") return {{1, 16, 3, 1}, {1, 32, 3, 2}, {1, 64, 3, 2}};
  return {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
          {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
}

// mobilenet_v2 and resnet: stem, stages, width multiplier (docs/recipes.md).
void read_staged(JsonReader& m, ModelSpec& s) {
  const bool mobilenet = s.arch == "mobilenet_v2";
  s.stem_channels = m.integer("stem_channels", mobilenet ? 32 : 16, 1, kMaxWidth);
  s.stem_stride = m.integer("stem_stride", 1, 1, 4);
  if (m.has("stages")) {
    auto stages = m.object_list("stages");
    if (stages.empty()) m.fail_at("stages", "at least one stage");
    for (auto& st : stages) {
      NetStageSpec t;
      if (mobilenet) t.expansion = st.integer("expansion", 6, 1, 16);
      t.channels = st.integer("channels", std::nullopt, 1, kMaxWidth);
      t.blocks = st.integer("blocks", 1, 1, 64);
      t.stride = st.integer("stride", 1, 1, 4);
      st.finish();
      if (!mobilenet) t.expansion = 1;
      s.stages.push_back(t);
    }
  } else {
    s.stages = default_stages(s.arch);
  }
  if (mobilenet) s.last_channels = m.integer("last_channels", 1280, 0, kMaxWidth);
  s.width = m.number("width", 1.0, {0.0, 16.0, true, false});
  s.divisor = m.integer("divisor", 8, 1, 64);
  s.hidden = m.integer_list("hidden", std::vector<int64_t>{}, 1, kMaxWidth);
  s.activation = mobilenet ? m.choice("activation", "relu6", {"relu6", "relu", "hardswish"})
                           : m.choice("activation", "relu", {"relu", "gelu"});
}

ModelSpec read_model(JsonReader m) {
  ModelSpec s;
  s.arch = m.choice("arch", std::nullopt, {"mlp", "cnn", "mobilenet_v2", "resnet", "transformer", "bag"});
  s.input_shape = m.integer_list("input_shape", std::vector<int64_t>{}, 1, kMaxWidth);
  s.classes = m.integer("classes", 0, 0, kMaxWidth);
  s.dropout = m.number("dropout", 0.0, {0.0, 1.0, false, true});
  if (s.arch == "mlp") {
    s.hidden = m.integer_list("hidden", std::nullopt, 1, kMaxWidth);
    s.activation = m.choice("activation", "relu", {"relu", "gelu"});
  } else if (s.arch == "bag") {
    s.d_model = m.integer("dim", std::nullopt, 1, kMaxWidth);
    s.hidden = m.integer_list("hidden", std::vector<int64_t>{}, 1, kMaxWidth);
    s.activation = m.choice("activation", "relu", {"relu", "gelu"});
  } else if (s.arch == "cnn") {
    auto blocks = m.object_list("blocks");
    if (blocks.empty()) m.fail_at("blocks", "a CNN needs at least one block");
    for (auto& b : blocks) s.blocks.push_back(read_block(b));
    s.hidden = m.integer_list("hidden", std::vector<int64_t>{}, 1, kMaxWidth);
    s.activation = m.choice("activation", "relu", {"relu", "gelu"});
    s.global_pool = m.boolean("global_pool", false);
  } else if (s.arch == "mobilenet_v2" || s.arch == "resnet") {
    read_staged(m, s);
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

void check_model_fits_data(JsonReader& root, const std::string& where, const ModelSpec& m,
                           const std::string& kind) {
  if (kind == "text" && m.arch == "transformer" && m.task != "lm") {
    root.fail_at_path(where + "/task", "text data trains a language model: task must be 'lm'");
  }
  if (kind == "text" && m.arch != "transformer")
    root.fail_at_path(where + "/arch", "text data needs a transformer");
  if (kind == "images" && (m.arch == "transformer" || m.arch == "bag")) {
    root.fail_at_path(where + "/arch", "image data needs an mlp, cnn, mobilenet_v2 or resnet");
  }
  if (kind == "documents" && m.arch != "bag") {
    root.fail_at_path(where + "/arch",
                      "documents need a 'bag' model (token embeddings averaged, then an MLP)");
  }
}

void read_teacher(JsonReader& root, Recipe& r) {
  auto t = root.object("teacher");
  TeacherSpec& s = r.teacher_spec;
  if (t.has("use_lite")) {
    s.source = "use_lite";
    s.use_lite = t.string("use_lite", std::nullopt);
    if (r.data.kind != "documents")
      t.fail_at("use_lite", "USE-Lite classifies documents: data kind must be 'documents'");
    auto head = t.object("head", /*optional=*/true);
    s.head_hidden = head.integer_list("hidden", std::vector<int64_t>{}, 1, kMaxWidth);
    head.finish();
    s.finetune = t.boolean("finetune", false);
    if (!t.has("train"))
      t.fail("a USE-Lite teacher needs 'train' (its head is trained on the training split)");
    r.teacher_train = read_train(t.object("train"));
    t.finish();
    return;
  }
  if (r.data.kind == "documents") {
    t.fail(
        "documents need a USE-Lite teacher: \"teacher\": {\"use_lite\": \"<model.json>\", \"train\": {...}}");
  }
  if (t.has("torchscript") || t.has("onnx")) {
    if (t.has("torchscript") && t.has("onnx")) t.fail("give either 'torchscript' or 'onnx', not both");
    s.source = t.has("onnx") ? "onnx" : "torchscript";
    (s.source == "onnx" ? s.onnx : s.torchscript) = t.string(s.source.c_str(), std::nullopt);
    if (s.source == "onnx" && r.data.kind != "images")
      t.fail_at("onnx", "ONNX teachers take float images (NCHW); this recipe's data is " + r.data.kind);
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
  if (!t.has("model")) {
    t.fail(
        "the teacher needs one of: 'model' (a zoo model, with 'train' or 'checkpoint'), 'torchscript' (a "
        "TorchScript file), 'onnx' (an ONNX file), 'use_lite' (documents)");
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
  for (const char* source : {"torchscript", "onnx"}) {
    if (!st.has(source)) continue;
    const std::string kind = source;
    (kind == "onnx" ? r.student_onnx : r.student_torchscript) = st.string(source, std::nullopt);
    if (st.has("torchscript") && st.has("onnx")) st.fail("give either 'torchscript' or 'onnx', not both");
    if (r.data.kind != "images")
      st.fail_at(source, fmt::format("{} students are imported for image models only",
                                     kind == "onnx" ? "ONNX" : "TorchScript"));
    r.student_train_batchnorm = st.boolean("train_batchnorm", true);
    st.finish();
    m.arch = kind;
    return m;
  }
  if (!st.has("model") && !st.has("from_teacher")) {
    st.fail(
        "the student needs one of: 'model' (a zoo model), 'from_teacher' (a zoo model derived from the "
        "teacher's), 'torchscript' (a TorchScript file), 'onnx' (an ONNX file)");
  }
  r.student_checkpoint = st.string("checkpoint", "");
  if (st.has("from_teacher")) {
    auto d = st.object("from_teacher");
    const double width = d.number("width", 1.0, {0.0, 16.0, true, false});
    const double depth = d.number("depth", 1.0, {0.0, 16.0, true, false});
    d.finish();
    if (st.has("model")) st.fail_at("model", "give either 'model' or 'from_teacher', not both");
    if (r.teacher_spec.source == "torchscript" || r.teacher_spec.source == "onnx") {
      st.fail_at("from_teacher", "a teacher given as a file has no zoo spec to derive a student from");
    }
    m = derive_student(r.teacher, width, depth);
  } else {
    m = read_model(st.object("model"));
  }
  st.finish();
  check_model_fits_data(root, "student/model", m, r.data.kind);
  return m;
}

}  // namespace

namespace detail {
ModelSpec read_model_spec(JsonReader& parent, const std::string& key, size_t index, const std::string& kind) {
  auto list = parent.object_list(key);
  ModelSpec m = read_model(list.at(index));
  check_model_fits_data(parent, fmt::format("{}/{}", key, index), m, kind);
  return m;
}
}  // namespace detail

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
  if (t.arch == "mobilenet_v2" || t.arch == "resnet") {
    // The width multiplier compounds; every stage keeps round(blocks * depth) >= 1 blocks.
    s.width = t.width * width;
    for (auto& stage : s.stages)
      stage.blocks = static_cast<int64_t>(count(static_cast<size_t>(stage.blocks)));
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
  if (m.arch == "mlp" || m.arch == "cnn" || m.arch == "bag" || m.arch == "mobilenet_v2" ||
      m.arch == "resnet") {
    j["hidden"] = m.hidden;
    j["activation"] = m.activation;
  }
  if (m.arch == "mobilenet_v2" || m.arch == "resnet") {
    j.update({{"stem_channels", m.stem_channels},
              {"stem_stride", m.stem_stride},
              {"width", m.width},
              {"divisor", m.divisor},
              {"stages", nlohmann::json::array()}});
    for (const auto& t : m.stages) {
      nlohmann::json stage = {{"channels", t.channels}, {"blocks", t.blocks}, {"stride", t.stride}};
      if (m.arch == "mobilenet_v2") stage["expansion"] = t.expansion;
      j["stages"].push_back(stage);
    }
    if (m.arch == "mobilenet_v2") j["last_channels"] = m.last_channels;
  }
  if (m.arch == "bag") j["dim"] = m.d_model;
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
  r.data.kind = data.choice("kind", std::nullopt, {"images", "text", "documents"});
  if (r.data.kind == "images")
    r.data.images = read_images(data);
  else if (r.data.kind == "documents")
    r.data.documents = read_documents(data);
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
  detail::check_stage_order(root, r.stages);
  detail::read_tune(root, r);

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
  } else if (data.kind == "documents") {
    const auto& s = data.documents;
    d.update({{"corpus", s.corpus},
              {"vocab", s.vocab},
              {"class_names", s.class_names},
              {"max_tokens", s.max_tokens},
              {"max_bytes", s.max_bytes},
              {"validation_size", s.validation_size},
              {"test_size", s.test_size},
              {"train_limit", s.train_limit},
              {"calibration_size", s.calibration_size}});
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
    j["student"] = {{"torchscript", student_torchscript}, {"train_batchnorm", student_train_batchnorm}};
  } else if (!student_onnx.empty()) {
    j["student"] = {{"onnx", student_onnx}, {"train_batchnorm", student_train_batchnorm}};
  } else if (!student.arch.empty()) {
    j["student"] = {{"model", model_spec_to_json(student)}};
    if (!student_checkpoint.empty()) j["student"]["checkpoint"] = student_checkpoint;
  }
  if (!stages.empty()) {
    j["stages"] = nlohmann::json::array();
    for (const auto& s : stages) j["stages"].push_back(stage_to_json(s));
  }
  if (tune.present) j["tune"] = detail::tune_to_json(tune);
  return j;
}

nlohmann::json Recipe::teacher_json() const {
  const TeacherSpec& t = teacher_spec;
  if (t.source == "torchscript" || t.source == "onnx") {
    nlohmann::json input = {{"layout", t.input.layout}};
    if (data.kind == "images") input["normalize"] = {{"mean", t.input.mean}, {"std", t.input.std}};
    return {{t.source, t.source == "onnx" ? t.onnx : t.torchscript}, {"input", input}};
  }
  if (t.source == "checkpoint") return {{"model", model_spec_to_json(teacher)}, {"checkpoint", t.checkpoint}};
  if (t.source == "use_lite") {
    return {{"use_lite", t.use_lite},
            {"head", {{"hidden", t.head_hidden}}},
            {"finetune", t.finetune},
            {"train", train_to_json(teacher_train)}};
  }
  return {{"model", model_spec_to_json(teacher)}, {"train", train_to_json(teacher_train)}};
}

std::string Recipe::hash() const { return hash64_hex(to_json().dump()); }

std::string Recipe::teacher_hash() const {
  const auto j = to_json();
  return hash64_hex(
      nlohmann::json{{"seed", j["seed"]}, {"data", j["data"]}, {"teacher", j["teacher"]}}.dump());
}

}  // namespace mighty::compress
