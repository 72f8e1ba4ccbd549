#include "compress/passes/distill.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compress/models/lower.h"
#include "compress/pipeline/jobs.h"
#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"
#include "runtime/io/progress.h"

namespace mighty::compress {

torch::Tensor soft_target_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                               double temperature) {
  const int64_t classes = student_logits.size(-1);
  auto log_s = torch::log_softmax(student_logits.reshape({-1, classes}) / temperature, 1);
  auto log_t = torch::log_softmax(teacher_logits.reshape({-1, classes}).detach() / temperature, 1);
  return (log_t.exp() * (log_t - log_s)).sum(1).mean() * (temperature * temperature);
}

torch::Tensor hard_loss(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing) {
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), labels.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
}

DistillLoss distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                              const torch::Tensor& labels, double alpha, double temperature,
                              double label_smoothing) {
  DistillLoss l;
  l.soft = soft_target_loss(student_logits, teacher_logits, temperature);
  l.hard = hard_loss(student_logits, labels, label_smoothing);
  l.total = alpha * l.soft + (1.0 - alpha) * l.hard;
  return l;
}

namespace {

// Channels-last view of a feature: [B, C, H, W] -> [B, H, W, C]; [B, T, D] and [B, D] are already.
torch::Tensor channels_last(const torch::Tensor& f) { return f.dim() == 4 ? f.permute({0, 2, 3, 1}) : f; }

int64_t channels(const torch::Tensor& f) { return f.dim() == 4 ? f.size(1) : f.size(-1); }

// Brings a student and a teacher feature map to the same spatial size (average pooling of the larger).
std::pair<torch::Tensor, torch::Tensor> match_spatial(torch::Tensor s, torch::Tensor t) {
  if (s.dim() == 4 && (s.size(2) != t.size(2) || s.size(3) != t.size(3))) {
    const std::vector<int64_t> size = {std::min(s.size(2), t.size(2)), std::min(s.size(3), t.size(3))};
    if (s.size(2) != size[0] || s.size(3) != size[1]) s = torch::adaptive_avg_pool2d(s, size);
    if (t.size(2) != size[0] || t.size(3) != size[1]) t = torch::adaptive_avg_pool2d(t, size);
  }
  return {s, t};
}

}  // namespace

FeatureTermsImpl::FeatureTermsImpl(std::vector<FeatureSpec> specs, const std::vector<torch::Tensor>& student,
                                   const std::vector<torch::Tensor>& teacher, const std::string& json_path)
    : specs_(std::move(specs)) {
  for (size_t i = 0; i < specs_.size(); ++i) {
    const auto& s = student.at(i);
    const auto& t = teacher.at(i);
    const std::string where = fmt::format("{}/{}", json_path, i);
    const bool same_layout = s.dim() == t.dim() && (s.dim() != 3 || s.size(1) == t.size(1));
    if (!same_layout || s.dim() < 2 || s.dim() > 4) {
      throw Error(
          fmt::format("{}: student layer '{}' has shape [{}] and teacher layer '{}' [{}]: they must both "
                      "be [B, C, H, W], [B, T, D] with the same T, or [B, D]",
                      where, specs_[i].student, fmt::join(s.sizes().slice(1), ", "), specs_[i].teacher,
                      fmt::join(t.sizes().slice(1), ", ")));
    }
    torch::nn::Linear proj{nullptr};
    if (channels(s) != channels(t)) {
      proj = register_module(fmt::format("proj{}", i), torch::nn::Linear(channels(s), channels(t)));
    }
    projections_.push_back(proj);
  }
}

torch::Tensor FeatureTermsImpl::loss(const std::vector<torch::Tensor>& student,
                                     const std::vector<torch::Tensor>& teacher) {
  torch::Tensor total = torch::zeros({});
  for (size_t i = 0; i < specs_.size(); ++i) {
    auto [s, t] = match_spatial(student[i], teacher[i].detach());
    s = channels_last(s);
    t = channels_last(t);
    if (projections_[i]) s = projections_[i]->forward(s);
    torch::Tensor term;
    if (specs_[i].loss == "cosine") {
      term = 1.0 - torch::cosine_similarity(s, t, /*dim=*/-1).mean();
    } else {
      term = torch::mse_loss(s, t);
    }
    total = total + specs_[i].weight * term;
  }
  return total;
}

int find_node(const Graph& graph, const std::string& name, const std::string& model,
              const std::string& json_path) {
  const auto& nodes = graph.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].name == name) return static_cast<int>(i);
  }
  std::vector<std::string> names;
  for (const auto& n : nodes) names.push_back(n.name);
  throw Error(fmt::format("{}: the {} has no layer '{}' (its layers: {})", json_path, model, name,
                          fmt::join(names, ", ")));
}

// ---- teacher logit cache ----

namespace {

constexpr char kCacheMagic[8] = {'M', 'G', 'T', 'L', 'C', 'v', '1', '\n'};
constexpr int64_t kCacheHeader = 8 + 16;
constexpr uint64_t kRecordMagic = 0x4c4f47495453ULL;  // "STIGOL"
constexpr int64_t kMaxDims = 8;

bool read_at(std::FILE* f, int64_t offset, void* dst, size_t n) {
  return fseeko(f, offset, SEEK_SET) == 0 && std::fread(dst, 1, n, f) == n;
}

}  // namespace

TeacherLogitCache::TeacherLogitCache(std::string path, std::string key) : path_(std::move(path)) {
  key.resize(16, '0');
  file_ = std::fopen(path_.c_str(), "r+b");
  char header[kCacheHeader];
  bool valid = file_ && read_at(file_, 0, header, sizeof header) &&
               std::memcmp(header, kCacheMagic, 8) == 0 && std::memcmp(header + 8, key.data(), 16) == 0;
  if (!valid) {
    if (file_) std::fclose(file_);
    file_ = std::fopen(path_.c_str(), "w+b");
    if (!file_) throw Error(fmt::format("{}: cannot create the teacher logit cache", path_));
    std::memcpy(header, kCacheMagic, 8);
    std::memcpy(header + 8, key.data(), 16);
    if (std::fwrite(header, 1, sizeof header, file_) != sizeof header || std::fflush(file_) != 0) {
      throw Error(fmt::format("{}: cannot write the teacher logit cache", path_));
    }
    end_ = kCacheHeader;
    return;
  }
  // Index the records; stop at the first torn or corrupt one and cut the file there.
  fseeko(file_, 0, SEEK_END);
  const int64_t size = ftello(file_);
  int64_t pos = kCacheHeader;
  while (pos < size) {
    int64_t head[3];  // magic, step, dims
    if (!read_at(file_, pos, head, sizeof head) || static_cast<uint64_t>(head[0]) != kRecordMagic ||
        head[2] < 1 || head[2] > kMaxDims) {
      break;
    }
    std::vector<int64_t> shape(static_cast<size_t>(head[2]));
    if (!read_at(file_, pos + 24, shape.data(), shape.size() * 8)) break;
    int64_t numel = 1;
    bool ok = true;
    for (auto d : shape) {
      if (d < 0 || d > (int64_t{1} << 32) || numel > (int64_t{1} << 40) / std::max<int64_t>(d, 1)) ok = false;
      numel *= d;
    }
    const int64_t payload = pos + 24 + head[2] * 8;
    const int64_t bytes = numel * 4;
    if (!ok || payload + bytes + 8 > size) break;
    std::vector<char> data(static_cast<size_t>(bytes));
    uint64_t checksum = 0;
    if (!read_at(file_, payload, data.data(), data.size()) ||
        !read_at(file_, payload + bytes, &checksum, 8) ||
        hash64(std::string_view(data.data(), data.size())) != checksum) {
      break;
    }
    index_[head[1]] = Entry{payload, shape};
    pos = payload + bytes + 8;
  }
  if (pos < size) {
    std::fflush(file_);
    std::filesystem::resize_file(path_, static_cast<uintmax_t>(pos));
  }
  end_ = pos;
}

TeacherLogitCache::~TeacherLogitCache() {
  if (file_) std::fclose(file_);
}

std::optional<torch::Tensor> TeacherLogitCache::get(int64_t step) {
  auto it = index_.find(step);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  auto t = torch::empty(it->second.shape, torch::kFloat32);
  if (!read_at(file_, it->second.offset, t.data_ptr<float>(), static_cast<size_t>(t.numel()) * 4)) {
    throw Error(fmt::format("{}: cannot read the cached teacher logits of step {}", path_, step));
  }
  ++hits_;
  return t;
}

void TeacherLogitCache::put(int64_t step, const torch::Tensor& logits) {
  if (index_.count(step)) return;
  auto t = logits.detach().to(torch::kFloat32).contiguous();
  const auto shape = t.sizes().vec();
  const int64_t head[3] = {static_cast<int64_t>(kRecordMagic), step, static_cast<int64_t>(shape.size())};
  const size_t bytes = static_cast<size_t>(t.numel()) * 4;
  const uint64_t checksum =
      hash64(std::string_view(reinterpret_cast<const char*>(t.data_ptr<float>()), bytes));
  bool ok = fseeko(file_, end_, SEEK_SET) == 0 && std::fwrite(head, 1, sizeof head, file_) == sizeof head &&
            std::fwrite(shape.data(), 8, shape.size(), file_) == shape.size() &&
            std::fwrite(t.data_ptr<float>(), 1, bytes, file_) == bytes &&
            std::fwrite(&checksum, 1, 8, file_) == 8 && std::fflush(file_) == 0;
  if (!ok) throw Error(fmt::format("{}: cannot append to the teacher logit cache (disk full?)", path_));
  const int64_t payload = end_ + 24 + static_cast<int64_t>(shape.size()) * 8;
  index_[step] = Entry{payload, shape};
  end_ = payload + static_cast<int64_t>(bytes) + 8;
}

std::unique_ptr<TeacherLogitCache> shared_logit_cache(const std::string& dir, const std::string& key) {
  ensure_run_dir(dir);
  return std::make_unique<TeacherLogitCache>(dir + "/teacher_logits." + key + ".bin", key);
}

torch::Tensor teacher_logits(Teacher& teacher, const torch::Tensor& x, int64_t step,
                             TeacherLogitCache* cache) {
  std::optional<torch::Tensor> cached;
  if (cache) cached = cache->get(step);
  if (cached && cached->size(0) == x.size(0)) return *cached;
  auto t = teacher.logits(x);
  if (cache) cache->put(step, t);
  return t;
}

// ---- the stage ----

MixedBatch mix_batch(const torch::Tensor& x, const torch::Tensor& y, double beta, uint64_t seed,
                     int64_t step) {
  constexpr uint64_t kMixupStream = 5;
  auto rng = make_rng(seed, kMixupStream, static_cast<uint64_t>(step));
  std::gamma_distribution<double> gamma(beta, 1.0);
  const double g1 = gamma(rng), g2 = gamma(rng);
  MixedBatch m;
  m.lambda = g1 + g2 > 0 ? g1 / (g1 + g2) : 0.5;
  std::vector<int64_t> order(static_cast<size_t>(x.size(0)));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  const auto perm = torch::tensor(order, torch::kInt64);
  m.x = x * m.lambda + x.index_select(0, perm) * (1.0 - m.lambda);
  m.y2 = y.index_select(0, perm);
  return m;
}

namespace {

struct RunPlan {
  std::string kind;  // distilled | scratch
  uint64_t seed;
  std::string name() const { return fmt::format("{}.seed{}", kind, seed); }
};

double mean_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// accuracy (higher is better) or bits/char (lower is better) of a test metrics object.
std::pair<std::string, double> quality(const nlohmann::json& test) {
  if (test.contains("accuracy")) return {"accuracy", test["accuracy"].get<double>()};
  return {"bits_per_char", test.at("bits_per_char").get<double>()};
}

// What every run of a distill stage shares.
struct DistillSetup {
  const Recipe& recipe;
  size_t stage_index;
  const DistillSpec& d;
  Teacher& teacher;
  const std::string& teacher_key;
  const Dataset& data;
  GraphModule& student;
  bool from_student;
  const StageOptions& options;
  std::string path;  // the stage's JSON pointer, for errors
  Graph student_graph;
  std::vector<int> teacher_nodes, student_nodes;  // feature terms
};

using Objective = decltype(TrainOptions::objective);

// The distilled run's loss: soft targets (cached per step when asked), the hard term (following the mix with
// mixup) and the feature terms.
Objective distilled_objective(const DistillSetup& s, const RunPlan& run, TeacherLogitCache* cache,
                              FeatureTerms features) {
  const DistillSpec& d = s.d;
  return [&s, &d, run, cache, features](GraphModule& m, const torch::Tensor& batch, const torch::Tensor& y,
                                        int64_t step) mutable {
    MixedBatch mixed{batch, y, 1.0};
    if (d.mixup > 0) mixed = mix_batch(batch, y, d.mixup, run.seed, step);
    const torch::Tensor& x = mixed.x;
    torch::Tensor t_logits, s_logits, feature_loss;
    if (!d.features.empty()) {
      auto [tl, tf] = s.teacher.logits_and_features(x, s.teacher_nodes);
      auto [sl, sf] = m->forward_capture(x, s.student_nodes);
      t_logits = tl;
      s_logits = sl;
      feature_loss = features->loss(sf, tf);
    } else {
      t_logits = teacher_logits(s.teacher, x, step, cache);
      s_logits = m->forward(x);
    }
    auto loss = distillation_loss(s_logits, t_logits, y, d.alpha, d.temperature, d.train.label_smoothing);
    auto total = loss.total;
    if (d.mixup > 0) {  // the hard term follows the mix: lambda CE(y) + (1 - lambda) CE(y2)
      total = total + (1.0 - d.alpha) * (1.0 - mixed.lambda) *
                          (hard_loss(s_logits, mixed.y2, d.train.label_smoothing) - loss.hard);
    }
    if (feature_loss.defined()) total = total + feature_loss;
    return std::make_pair(total, s_logits);
  };
}

// The scratch run's loss with mixup: lambda CE(y) + (1 - lambda) CE(y2).
Objective mixup_objective(const DistillSpec& d, const RunPlan& run) {
  return [&d, run](GraphModule& m, const torch::Tensor& batch, const torch::Tensor& y, int64_t step) {
    const MixedBatch mixed = mix_batch(batch, y, d.mixup, run.seed, step);
    auto logits = m->forward(mixed.x);
    auto loss = hard_loss(logits, y, d.train.label_smoothing) * mixed.lambda +
                hard_loss(logits, mixed.y2, d.train.label_smoothing) * (1.0 - mixed.lambda);
    return std::make_pair(loss, logits);
  };
}

// The teacher's logits cache of a distilled run (null when not asked for, or data-parallel: a rank sees only
// its part of a batch). The batches of a step depend on the data (files, splits, augmentation), the seed and
// the batch size.
std::unique_ptr<TeacherLogitCache> logit_cache(const DistillSetup& s, const RunPlan& run) {
  if (!s.d.teacher_cache || dist::active()) return nullptr;
  const std::string key =
      hash64_hex(fmt::format("{}/{}/{}/{}/{}/{}", s.teacher_key, s.data.hash,
                             s.recipe.to_json()["data"].dump(), run.seed, s.d.train.batch_size, s.d.mixup));
  if (!s.options.teacher_cache_dir.empty()) return shared_logit_cache(s.options.teacher_cache_dir, key);
  return std::make_unique<TeacherLogitCache>(
      s.options.dir + fmt::format("/teacher_logits.seed{}.bin", run.seed), key);
}

// The feature terms' projections, their widths decided by one sample batch.
FeatureTerms feature_terms(const DistillSetup& s, GraphModule& model, const RunPlan& run) {
  auto x = training_batch(s.d.train, s.data, run.seed, 0).first;
  torch::NoGradGuard no_grad;
  model->eval();
  auto s_feats = model->forward_capture(x, s.student_nodes).second;
  auto t_feats = s.teacher.logits_and_features(x, s.teacher_nodes).second;
  return FeatureTerms(s.d.features, s_feats, t_feats, s.path + "/features");
}

// One run of the stage: its record (test metrics, comparison with the teacher), the record of an earlier run
// that completed it (--resume), or null when stopped.
nlohmann::json train_run(const DistillSetup& s, const RunPlan& run) {
  const DistillSpec& d = s.d;
  const std::string base = s.options.dir + "/" + run.name();
  const std::string identity =
      hash64_hex(fmt::format("{}/{}/{}", s.options.identity, s.stage_index, run.name()));
  if (s.options.resume) {
    auto done = completed_record(base + ".json", {base + ".pt"}, "identity", identity);
    if (!done.is_null()) {
      fmt::print(stderr, "distill: {} already complete ({})\n", run.name(), base + ".json");
      return done;
    }
  }
  torch::manual_seed(run.seed);
  GraphModule model{Graph(s.student_graph)};
  if (s.from_student && run.kind == "distilled") copy_parameters(s.student, model);
  TrainOptions topts;
  topts.checkpoint_path = base + ".checkpoint.pt";
  topts.resume = s.options.resume;
  topts.stop_after_steps = s.options.stop_after_steps;
  topts.label = fmt::format("{} student (seed {})", run.kind, run.seed);
  topts.identity = identity;
  std::unique_ptr<TeacherLogitCache> cache;
  if (run.kind == "distilled") {
    cache = logit_cache(s, run);
    FeatureTerms features{nullptr};
    if (!d.features.empty()) {
      features = feature_terms(s, model, run);
      topts.extra = features.ptr();
    }
    topts.objective = distilled_objective(s, run, cache.get(), features);
  } else if (d.mixup > 0) {
    topts.objective = mixup_objective(d, run);
  }
  const TrainResult result = train_model(model, d.train, s.data, run.seed, topts);
  if (!result.completed) {
    fmt::print(stderr, "distill: {} stopped after step {}/{}; continue with --resume\n", run.name(),
               result.steps_done, result.total_steps);
    return nullptr;
  }
  save_weights(model, base + ".pt");
  nlohmann::json r = {{"identity", identity},
                      {"kind", run.kind},
                      {"seed", run.seed},
                      {"params", model->parameter_count()},
                      {"fp32_bytes", model->fp32_bytes()},
                      {"steps", result.steps_done},
                      {"seconds", result.seconds},
                      {"history", result.history},
                      {"test", evaluate_split(model, s.data, Split::kTest)}};
  model->eval();
  r["vs_teacher"] =
      compare_models([&](const torch::Tensor& x) { return s.teacher.logits(x); },
                     [&](const torch::Tensor& x) { return model->forward(x); }, s.data, Split::kTest);
  if (cache) r["teacher_cache"] = {{"hits", cache->hits()}, {"misses", cache->misses()}};
  write_text(base + ".json", r.dump(2) + "\n");
  fmt::print(stderr, "distill: {}: test {}, agreement with the teacher {:.2f}%\n", run.name(),
             summarize_metrics(r["test"]), 100.0 * r["vs_teacher"]["agreement"].get<double>());
  return r;
}

// Per kind: mean and standard deviation over seeds; `metric` is set to the quality's name.
nlohmann::json seed_summary(const nlohmann::json& runs, std::string& metric) {
  nlohmann::json summary = nlohmann::json::object();
  for (const char* kind : {"distilled", "scratch"}) {
    std::vector<double> q, agreement, kl;
    for (const auto& r : runs) {
      if (r["kind"] != kind) continue;
      auto [name, value] = quality(r["test"]);
      metric = name;
      q.push_back(value);
      agreement.push_back(r["vs_teacher"]["agreement"].get<double>());
      kl.push_back(r["vs_teacher"]["kl"].get<double>());
    }
    if (q.empty()) continue;
    summary[kind] = {{"metric", metric},
                     {"values", q},
                     {"mean", mean_of(q)},
                     {"std", std_of(q)},
                     {"agreement_mean", mean_of(agreement)},
                     {"kl_mean", mean_of(kl)}};
  }
  return summary;
}

}  // namespace

nlohmann::json run_distill_stage(const Recipe& recipe, size_t stage_index, Teacher& teacher,
                                 const std::string& teacher_key, const Dataset& data, GraphModule& student,
                                 bool from_student, const StageOptions& options) {
  const DistillSpec& d = recipe.stages.at(stage_index).get<DistillSpec>();
  ensure_run_dir(options.dir);
  DistillSetup s{recipe,
                 stage_index,
                 d,
                 teacher,
                 teacher_key,
                 data,
                 student,
                 from_student,
                 options,
                 fmt::format("/stages/{}", stage_index),
                 student->graph(),
                 {},
                 {}};
  for (size_t i = 0; i < d.features.size(); ++i) {
    const std::string where = fmt::format("{}/features/{}", s.path, i);
    if (!teacher.graph()) throw Error(where + ": feature distillation needs a zoo teacher");
    s.teacher_nodes.push_back(
        find_node(*teacher.graph(), d.features[i].teacher, "teacher", where + "/teacher"));
    s.student_nodes.push_back(
        find_node(s.student_graph, d.features[i].student, "student", where + "/student"));
  }
  std::vector<RunPlan> plan;
  for (int64_t k = 0; k < d.repeats; ++k) {
    const uint64_t seed = d.seed + static_cast<uint64_t>(k);
    plan.push_back({"distilled", seed});
    if (d.baseline) plan.push_back({"scratch", seed});
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const RunPlan& run : plan) {
    nlohmann::json r = train_run(s, run);
    if (r.is_null()) return {{"kind", "distill"}, {"completed", false}};
    runs.push_back(std::move(r));
  }
  std::string metric;
  const nlohmann::json summary = seed_summary(runs, metric);
  nlohmann::json report = {{"kind", "distill"},
                           {"completed", true},
                           {"alpha", d.alpha},
                           {"temperature", d.temperature},
                           {"features", d.features.size()},
                           {"runs", runs},
                           {"summary", summary}};
  if (summary.contains("scratch")) {
    // Positive gain = the distilled student is better (higher accuracy, or fewer bits per character).
    const double diff = summary["distilled"]["mean"].get<double>() - summary["scratch"]["mean"].get<double>();
    report["gain"] = metric == "accuracy" ? diff : -diff;
  }
  load_weights(student, options.dir + "/" + plan.front().name() + ".pt");
  student->eval();
  return report;
}

std::string distill_markdown(const nlohmann::json& stage) {
  std::string out;
  out += fmt::format("\n## distill (alpha {}, T {}, {} feature term{})\n\n", stage["alpha"].get<double>(),
                     stage["temperature"].get<double>(), stage["features"].get<int64_t>(),
                     stage["features"].get<int64_t>() == 1 ? "" : "s");
  out += "| run | seed | test | agreement | KL | time |\n|---|---:|---:|---:|---:|---:|\n";
  for (const auto& r : stage["runs"]) {
    out += fmt::format("| {} | {} | {} | {:.2f}% | {:.4f} | {} |\n", r["kind"].get<std::string>(),
                       r["seed"].get<uint64_t>(), quality_cell(r["test"]),
                       100.0 * r["vs_teacher"]["agreement"].get<double>(),
                       r["vs_teacher"]["kl"].get<double>(), format_duration(r["seconds"].get<double>()));
  }
  const auto& summary = stage["summary"];
  for (const char* kind : {"distilled", "scratch"}) {
    if (!summary.contains(kind)) continue;
    const auto& k = summary[kind];
    const bool acc = k["metric"] == "accuracy";
    const double scale = acc ? 100.0 : 1.0;
    out +=
        fmt::format("\n{}: mean {:.{}f}{} (sd {:.{}f}) over {} seed{}", kind, scale * k["mean"].get<double>(),
                    acc ? 2 : 4, acc ? "%" : " bits/char", scale * k["std"].get<double>(), acc ? 2 : 4,
                    k["values"].size(), k["values"].size() == 1 ? "" : "s");
  }
  if (stage.contains("gain")) {
    const bool acc = summary["distilled"]["metric"] == "accuracy";
    out += fmt::format("\n\ngain of distillation over scratch: {:+.{}f}{}\n",
                       (acc ? 100.0 : 1.0) * stage["gain"].get<double>(), acc ? 2 : 4,
                       acc ? " points" : " bits/char");
  } else {
    out += "\n";
  }
  return out;
}

}  // namespace mighty::compress
