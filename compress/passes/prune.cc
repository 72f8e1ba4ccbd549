#include "compress/passes/prune.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "compress/ops/torch_op.h"
#include "compress/passes/export.h"
#include "compress/passes/quantize.h"
#include "compress/passes/sensitivity.h"
#include "compress/pipeline/jobs.h"
#include "compress/train/distributed.h"
#include "compress/train/evaluate.h"
#include "compress/train/trainer.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hash.h"

namespace mighty::compress {

std::vector<PrunableWeight> prunable_weights(GraphModule& model) {
  std::vector<PrunableWeight> out;
  for (const Node& n : model->graph().nodes()) {
    const auto prunable = torch_op(n.op).prunable;
    if (!prunable) continue;
    for (auto& w : prunable(n)) out.push_back(std::move(w));
  }
  return out;
}

double schedule_progress(const PruneSpec& spec, int64_t step, int64_t total) {
  if (total <= 0) return 1.0;
  const auto t0 = static_cast<int64_t>(std::llround(spec.begin * static_cast<double>(total)));
  const auto t1 = static_cast<int64_t>(std::llround(spec.end * static_cast<double>(total)));
  if (step >= t1) return 1.0;
  if (step < t0) return 0.0;
  // Counted in whole updates, so the masks change every `frequency` steps and nowhere else.
  const int64_t at = t0 + (step - t0) / spec.frequency * spec.frequency;
  const double p = static_cast<double>(at - t0) / static_cast<double>(t1 - t0);
  return 1.0 - std::pow(1.0 - p, 3.0);
}

namespace {

// Keeps all but the `prune` smallest magnitudes of `flat` (stable: among equal magnitudes the lower index
// goes first).
torch::Tensor keep_largest(const torch::Tensor& flat, int64_t prune) {
  auto mask = torch::ones_like(flat);
  if (prune <= 0) return mask;
  auto order = std::get<1>(flat.abs().sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  mask.index_fill_(0, order.slice(0, 0, std::min<int64_t>(prune, flat.numel())), 0.0);
  return mask;
}

int64_t count_of(double fraction, int64_t n) {
  return std::min<int64_t>(n, static_cast<int64_t>(std::llround(fraction * static_cast<double>(n))));
}

}  // namespace

torch::Tensor unit_magnitudes(const torch::Tensor& weight, bool block) {
  torch::NoGradGuard no_grad;
  if (!block) return weight.detach().abs().reshape({-1});
  // The weight as the GEMM sees it, [O, K] with K in the runtime's order (Conv2d: kernel rows, kernel
  // columns, then input channels), zero-padded to whole [16 x 4] blocks.
  auto w = weight.detach();
  if (w.dim() == 4) w = w.permute({0, 2, 3, 1});
  w = w.reshape({w.size(0), -1});
  const int64_t o = w.size(0), k = w.size(1);
  const int64_t op = (o + kBlockRows - 1) / kBlockRows * kBlockRows,
                kp = (k + kBlockDepth - 1) / kBlockDepth * kBlockDepth;
  w = torch::constant_pad_nd(w, {0, kp - k, 0, op - o});
  return w.reshape({op / kBlockRows, kBlockRows, kp / kBlockDepth, kBlockDepth})
      .pow(2)
      .sum({1, 3})
      .sqrt()
      .reshape({-1});
}

torch::Tensor units_to_mask(const torch::Tensor& unit_mask, const torch::Tensor& weight, bool block) {
  if (!block) return unit_mask.reshape(weight.sizes());
  const int64_t o = weight.size(0), k = weight.numel() / o;
  const int64_t ob = (o + kBlockRows - 1) / kBlockRows, kb = (k + kBlockDepth - 1) / kBlockDepth;
  auto m = unit_mask.reshape({ob, 1, kb, 1})
               .expand({ob, kBlockRows, kb, kBlockDepth})
               .reshape({ob * kBlockRows, kb * kBlockDepth})
               .slice(0, 0, o)
               .slice(1, 0, k);
  if (weight.dim() == 4) {
    return m.reshape({o, weight.size(2), weight.size(3), weight.size(1)}).permute({0, 3, 1, 2}).contiguous();
  }
  return m.reshape(weight.sizes()).contiguous();
}

torch::Tensor magnitude_mask(const torch::Tensor& weight, double sparsity, bool block) {
  torch::NoGradGuard no_grad;
  const auto scores = unit_magnitudes(weight, block);
  return units_to_mask(keep_largest(scores, count_of(sparsity, scores.numel())), weight, block);
}

std::vector<torch::Tensor> global_magnitude_masks(const std::vector<torch::Tensor>& weights, double sparsity,
                                                  bool block) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> scores;
  for (const auto& w : weights) scores.push_back(unit_magnitudes(w, block));
  if (scores.empty()) return {};
  const auto all = torch::cat(scores);
  const auto mask = keep_largest(all, count_of(sparsity, all.numel()));
  std::vector<torch::Tensor> out;
  int64_t at = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const int64_t n = scores[i].numel();
    out.push_back(units_to_mask(mask.slice(0, at, at + n).clone(), weights[i], block));
    at += n;
  }
  return out;
}

torch::Tensor nm_mask(const torch::Tensor& weight, int64_t n, int64_t m) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(weight.dim() >= 2 && weight.size(1) % m == 0, "nm_mask: input channels not a multiple of m");
  // Input channels last, so every group of m is contiguous: [O, I, k...] -> [O, k..., I].
  std::vector<int64_t> perm = {0};
  for (int64_t d = 2; d < weight.dim(); ++d) perm.push_back(d);
  perm.push_back(1);
  const auto w = weight.detach().permute(perm).contiguous();
  const auto groups = w.abs().reshape({-1, m});
  const auto order = std::get<1>(groups.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  auto mask = torch::zeros_like(groups).scatter_(1, order.slice(1, 0, n), 1.0);
  // Back to the weight's layout.
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[static_cast<size_t>(perm[i])] = static_cast<int64_t>(i);
  return mask.reshape(w.sizes()).permute(inverse).contiguous();
}

Pruner::Pruner(const PruneSpec& spec, GraphModule& model, const std::string& json_path)
    : spec_(spec), model_(model), block_(spec.method == "block") {
  const auto params = model->named_parameters(/*recurse=*/true);
  std::vector<bool> used_exclude(spec.exclude.size(), false), used_override(spec.overrides.size(), false);
  // Excluded, or its target from the last override that matches.
  // False when excluded; else the target, from the last override that matches.
  auto target_of = [&](const std::string& layer, double& target, bool& overridden) {
    bool excluded = false;
    for (size_t i = 0; i < spec.exclude.size(); ++i) {
      if (glob_match(spec.exclude[i], layer)) excluded = used_exclude[i] = true;
    }
    target = spec.sparsity;
    overridden = false;
    for (size_t i = 0; i < spec.overrides.size() && !excluded; ++i) {
      if (!glob_match(spec.overrides[i].layers, layer)) continue;
      used_override[i] = overridden = true;
      target = spec.overrides[i].sparsity;
    }
    return !excluded;
  };
  bool overridden = false;
  if (spec.method == "channels") {
    std::set<std::string> grouped;
    for (const auto& g : unit_groups(model->graph())) {
      grouped.insert(g.layer);
      Units u;
      u.group = g;
      if (target_of(g.layer, u.target, overridden)) units_.push_back(u);
    }
    for (const auto& n : model->graph().nodes()) {
      if (torch_op(n.op).channels != ChannelRole::kLayer || grouped.count(n.name)) continue;
      const int64_t groups = n.attrs.value("groups", int64_t{1});
      left_alone_.emplace_back(n.name, groups != 1
                                           ? fmt::format("a grouped convolution ({} groups): its output "
                                                         "channels are tied to its input channels",
                                                         groups)
                                           : "its outputs do not reach exactly one weight layer through "
                                             "per-channel ops (a residual Add, Concat, gate, grouped "
                                             "convolution or the model's output)");
    }
  } else {
    for (const auto& pw : prunable_weights(model)) {
      Layer l;
      l.w = pw;
      l.weight = params[pw.param];
      if (!target_of(pw.layer, l.target, overridden)) continue;
      l.global = spec.method != "n:m" && spec.scope == "global" && !overridden;
      if (pw.table && spec.method != "magnitude") {
        l.skipped = "an embedding table is pruned by magnitude only (its rows are tokens, not GEMM columns)";
      } else if (spec.method == "n:m" && l.weight.size(1) % spec.m != 0) {
        l.skipped = fmt::format("{} input channels are not a multiple of {}", l.weight.size(1), spec.m);
      }
      layers_.push_back(l);
    }
  }
  for (size_t i = 0; i < spec.exclude.size(); ++i) {
    if (!used_exclude[i]) {
      throw Error(
          fmt::format("{}/exclude/{}: '{}' matches no prunable layer", json_path, i, spec.exclude[i]));
    }
  }
  for (size_t i = 0; i < spec.overrides.size(); ++i) {
    if (!used_override[i]) {
      throw Error(fmt::format("{}/layers/{}/layers: '{}' matches no prunable layer", json_path, i,
                              spec.overrides[i].layers));
    }
  }
  const bool any = !units_.empty() || std::any_of(layers_.begin(), layers_.end(),
                                                  [](const Layer& l) { return l.skipped.empty(); });
  if (!any) throw Error(fmt::format("{}: no layer left to prune", json_path));
}

double Pruner::level(double target, double progress) const {
  const double initial = std::min(spec_.initial_sparsity, target);
  return initial + (target - initial) * progress;
}

torch::Tensor Pruner::unit_keep(const UnitGroup& group, double sparsity) {
  // The lowest scores go (ties: lower index first), at least one unit stays.
  const int64_t remove = std::min(group.units - 1, count_of(sparsity, group.units));
  return keep_largest(unit_scores(model_, group, spec_.criterion), remove);
}

void Pruner::update_units(double progress) {
  for (auto& u : units_) {
    u.keep = unit_keep(u.group, level(u.target, progress));
  }
}

std::vector<std::pair<std::string, int64_t>> Pruner::layers() const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& u : units_) {
    GraphModule model = model_;  // a handle to the same module
    out.emplace_back(u.group.layer, unit_group_weights(model, u.group));
  }
  for (const auto& l : layers_)
    if (l.skipped.empty()) out.emplace_back(l.w.layer, l.weight.numel());
  return out;
}

void Pruner::set_targets(const std::map<std::string, double>& targets) {
  for (auto& u : units_)
    if (auto it = targets.find(u.group.layer); it != targets.end()) u.target = it->second;
  for (auto& l : layers_) {
    if (auto it = targets.find(l.w.layer); it != targets.end()) {
      l.target = it->second;
      l.global = false;
    }
  }
  progress_ = -1.0;  // recompute at the next update
}

void Pruner::prune_one(const std::string& layer, double sparsity) {
  torch::NoGradGuard no_grad;
  for (auto& u : units_) {
    if (u.group.layer != layer) continue;
    zero_units(model_, u.group, unit_keep(u.group, sparsity));
  }
  for (auto& l : layers_) {
    if (l.w.layer != layer) continue;
    const auto mask = spec_.method == "n:m" ? nm_mask(l.weight, spec_.n, spec_.m)
                                            : magnitude_mask(l.weight, sparsity, block_);
    l.weight.masked_fill_(mask.logical_not(), 0.0);
  }
}

GraphModule Pruner::shrink() {
  std::vector<UnitGroup> groups;
  std::vector<torch::Tensor> keep;
  for (const auto& u : units_) {
    if (!u.keep.defined()) continue;
    groups.push_back(u.group);
    keep.push_back(u.keep);
  }
  return shrink_units(model_, groups, keep);
}

void Pruner::update(double progress) {
  if (progress != progress_ && spec_.method == "channels") {
    progress_ = progress;
    update_units(progress);
  }
  if (progress != progress_) {
    progress_ = progress;
    std::vector<torch::Tensor> global_weights;
    for (auto& l : layers_) {
      if (!l.skipped.empty()) continue;
      if (spec_.method == "n:m") {
        l.mask = progress > 0 ? nm_mask(l.weight, spec_.n, spec_.m) : torch::ones_like(l.weight);
      } else if (l.global) {
        global_weights.push_back(l.weight);
      } else {
        l.mask = magnitude_mask(l.weight, level(l.target, progress), block_);
      }
    }
    if (!global_weights.empty()) {
      auto masks = global_magnitude_masks(global_weights, level(spec_.sparsity, progress), block_);
      size_t k = 0;
      for (auto& l : layers_) {
        if (l.skipped.empty() && l.global) l.mask = masks[k++];
      }
    }
  }
  apply();
}

void Pruner::apply() {
  torch::NoGradGuard no_grad;
  for (auto& u : units_) {
    if (u.keep.defined()) zero_units(model_, u.group, u.keep);
  }
  for (auto& l : layers_) {
    // A fill, not a product: -w * 0 would leave -0.0, which the artifact has to store as a nonzero.
    if (l.mask.defined()) l.weight.masked_fill_(l.mask.logical_not(), 0.0);
  }
}

nlohmann::json Pruner::report() const {
  nlohmann::json layers = nlohmann::json::array();
  int64_t total = 0, zeros = 0;
  for (const auto& u : units_) {
    const int64_t kept = u.keep.defined() ? u.keep.sum().item<int64_t>() : u.group.units;
    layers.push_back({{"layer", u.group.layer},
                      {"units", u.group.units},
                      {"kept", kept},
                      {"target", u.target},
                      {"sparsity", 1.0 - static_cast<double>(kept) / static_cast<double>(u.group.units)},
                      {"ranking", spec_.criterion}});
    total += u.group.units;
    zeros += u.group.units - kept;
  }
  for (const auto& l : layers_) {
    const int64_t n = l.weight.numel();
    const int64_t z = n - l.weight.count_nonzero().item<int64_t>();
    total += n;
    zeros += z;
    nlohmann::json e = {{"layer", l.w.layer},
                        {"shape", l.weight.sizes().vec()},
                        {"params", n},
                        {"nonzero", n - z},
                        {"sparsity", static_cast<double>(z) / static_cast<double>(n)}};
    if (l.skipped.empty()) {
      e["target"] = l.target;
      std::string ranking = l.global ? "global" : "layer";
      if (block_) ranking += ", 16x4 blocks";
      e["ranking"] = spec_.method == "n:m" ? fmt::format("{}:{}", spec_.n, spec_.m) : ranking;
    } else {
      e["skipped"] = l.skipped;
    }
    layers.push_back(e);
  }
  int64_t model_params = 0, model_zeros = 0;
  for (const auto& p : model_->parameters()) {
    model_params += p.numel();
    model_zeros += p.numel() - p.count_nonzero().item<int64_t>();
  }
  nlohmann::json left_alone = nlohmann::json::array();
  for (const auto& [layer, why] : left_alone_) left_alone.push_back({{"layer", layer}, {"why", why}});
  return {{"layers", layers},
          {"left_alone", left_alone},
          {"pruned_params", total},
          {"sparsity", total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0},
          {"model_params", model_params},
          {"model_nonzero", model_params - model_zeros}};
}

namespace {

// [{layer, shape, params, nonzero}] over the prunable weights (in graph order), and the model's parameters.
std::pair<nlohmann::json, int64_t> weight_table(GraphModule& model) {
  nlohmann::json table = nlohmann::json::array();
  const auto params = model->named_parameters(true);
  for (const auto& pw : prunable_weights(model)) {
    const auto& w = params[pw.param];
    table.push_back({{"layer", pw.layer},
                     {"shape", w.sizes().vec()},
                     {"params", w.numel()},
                     {"nonzero", w.count_nonzero().item<int64_t>()}});
  }
  return {table, model->parameter_count()};
}

}  // namespace

// The prune stage: accuracy and bytes before and after, and each layer's shape and sparsity.
std::string prune_markdown(const nlohmann::json& stage) {
  const auto& masks = stage["masks"];
  const bool units = stage["method"] == "channels";
  std::string out = fmt::format(
      "\n## prune ({}, target {:.0f}%)\n\n{:.1f}% of the prunable {} pruned; parameters {} -> {} ({} "
      "nonzero). "
      "Test {} -> {}; fp32 artifact {} -> {} bytes.\n\n",
      stage["method"].get<std::string>(), 100.0 * stage["target"].get<double>(),
      100.0 * masks["sparsity"].get<double>(), units ? "units" : "weights",
      with_commas(stage["params_before"].get<int64_t>()), with_commas(stage["params_after"].get<int64_t>()),
      with_commas(stage["nonzero_after"].get<int64_t>()), quality_cell(stage["dense_test"]),
      quality_cell(stage["test"]), with_commas(stage["dense_fp32_bytes"].get<int64_t>()),
      with_commas(stage["fp32_bytes"].get<int64_t>()));
  out += "| layer | shape | parameters | nonzero | sparsity | ranking |\n|---|---|---:|---:|---:|---|\n";
  for (const auto& l : stage["layers"]) {
    const std::vector<int64_t> before = l["shape_before"];
    std::string shape = fmt::format("[{}]", fmt::join(before, ", "));
    if (l.contains("shape") && l["shape"] != l["shape_before"]) {
      const std::vector<int64_t> now = l["shape"];
      shape += fmt::format(" -> [{}]", fmt::join(now, ", "));
    }
    const int64_t params = l.value("params", int64_t{0}), nonzero = l.value("nonzero", int64_t{0});
    out +=
        fmt::format("| {} | {} | {} | {} | {:.1f}% | {} |\n", l["layer"].get<std::string>(), shape,
                    with_commas(params), with_commas(nonzero),
                    params ? 100.0 * (1.0 - static_cast<double>(nonzero) / static_cast<double>(params)) : 0.0,
                    l.value("ranking", std::string("dense")));
  }
  if (stage.contains("sensitivity")) {
    const auto& sens = stage["sensitivity"];
    const bool acc = sens["metric"] == "accuracy";
    auto cell = [&](double q) { return acc ? fmt::format("{:.2f}%", 100.0 * q) : fmt::format("{:.4f}", -q); };
    out += fmt::format("\n### sensitivity ({} on the {} split; dense {})\n\n| layer | parameters |",
                       acc ? "accuracy" : "bits/char", sens["split"].get<std::string>(),
                       cell(sens["dense"].get<double>()));
    std::string rule = "|---|---:|";
    for (const auto& sp : sens["sparsities"]) {
      out += fmt::format(" {:.0f}% |", 100.0 * sp.get<double>());
      rule += "---:|";
    }
    out += " budget |\n" + rule + "---:|\n";
    for (const auto& l : sens["layers"]) {
      out +=
          fmt::format("| {} | {} |", l["layer"].get<std::string>(), with_commas(l["params"].get<int64_t>()));
      for (const auto& q : l["quality"]) out += " " + cell(q.get<double>()) + " |";
      out += fmt::format(" {:.0f}% |\n", 100.0 * l["budget"].get<double>());
    }
    out += fmt::format("\nThe budget prunes {:.1f}% of these weights{}.\n",
                       100.0 * sens["budget_sparsity"].get<double>(),
                       stage.value("scope", "") == "sensitivity" ? " and is what this stage used"
                                                                 : " (not used: scope is not 'sensitivity')");
  }
  return out;
}

namespace {

// Per prunable layer of the model that came in: shape before and after, parameters, nonzero, ranking.
nlohmann::json layer_table(const nlohmann::json& before_layers, const nlohmann::json& after,
                           const nlohmann::json& masks) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& before : before_layers) {
    const auto& name = before["layer"];
    nlohmann::json l = {
        {"layer", name}, {"shape_before", before["shape"]}, {"params_before", before["params"]}};
    for (const auto& a : after) {
      if (a["layer"] != name) continue;
      l["shape"] = a["shape"];
      l["params"] = a["params"];
      l["nonzero"] = a["nonzero"];
    }
    for (const auto& m : masks) {
      if (m["layer"] != name) continue;
      l["ranking"] = m.contains("skipped") ? "dense: " + m["skipped"].get<std::string>()
                                           : m["ranking"].get<std::string>();
      if (m.contains("target")) l["target"] = m["target"];
    }
    layers.push_back(l);
  }
  return layers;
}

// --resume: the stage's result when an earlier run completed it with this identity (the student takes its
// pruned graph and weights), else null.
nlohmann::json completed_result(const PruneSpec& spec, const std::string& dir, const std::string& identity,
                                GraphModule& student) {
  const std::string result_path = dir + "/result.json", weights_path = dir + "/pruned.pt";
  auto done = completed_record(result_path, {weights_path}, "identity", identity);
  if (done.is_null()) return nullptr;
  fmt::print(stderr, "prune: already complete ({})\n", result_path);
  if (spec.method == "channels") {
    Graph g = Graph::from_json(nlohmann::json::parse(dist::read_file(dir + "/pruned.graph.json")));
    g.infer_shapes();
    student = GraphModule(g);
  }
  load_weights(student, weights_path);
  student->eval();
  return done;
}

// Runs that share a teacher-logits directory (mighty tune's trials) and draw the same batches (the same data,
// seed and batch size) compute the distilled fine-tuning's teacher logits once. Null: no such directory.
std::unique_ptr<TeacherLogitCache> finetune_logit_cache(const Recipe& recipe, size_t stage_index,
                                                        const Dataset& data, const StageOptions& options) {
  const PruneSpec& spec = recipe.stages.at(stage_index).get<PruneSpec>();
  if (spec.alpha <= 0 || options.teacher_cache_dir.empty() || dist::active()) return nullptr;
  const std::string key = hash64_hex(fmt::format("prune/{}/{}/{}/{}/{}", recipe.teacher_hash(), data.hash,
                                                 recipe.to_json()["data"].dump(), recipe.seed + stage_index,
                                                 spec.train.batch_size));
  return shared_logit_cache(options.teacher_cache_dir, key);
}

}  // namespace

nlohmann::json run_prune_stage(const Recipe& recipe, size_t stage_index, Teacher& teacher,
                               const Dataset& data, GraphModule& student, const StageOptions& options) {
  const PruneSpec& spec = recipe.stages.at(stage_index).get<PruneSpec>();
  ensure_run_dir(options.dir);
  // The result's format version is part of its identity: a result.json written by an older mighty (without
  // fields this report reads) is not taken as complete; the stage runs again.
  constexpr int kResultVersion = 2;
  const std::string identity =
      hash64_hex(fmt::format("{}/{}/prune/v{}", options.identity, stage_index, kResultVersion));
  const std::string result_path = options.dir + "/result.json", weights_path = options.dir + "/pruned.pt";
  const std::string graph_path = options.dir + "/pruned.graph.json";
  if (options.resume) {
    auto done = completed_result(spec, options.dir, identity, student);
    if (!done.is_null()) return done;
  }
  Pruner pruner(spec, student, fmt::format("/stages/{}", stage_index));
  const auto layers_before = weight_table(student);
  student->eval();
  const auto dense_test = evaluate_split(student, data, Split::kTest);
  nlohmann::json sensitivity;
  if (spec.sensitivity) {
    sensitivity = run_sensitivity(student, spec, pruner, data);
    if (spec.scope == "sensitivity") {
      std::map<std::string, double> budget;
      for (const auto& l : sensitivity["layers"]) budget[l["layer"]] = l["budget"].get<double>();
      pruner.set_targets(budget);
    }
  }
  const auto fp32_bytes = [&] {
    return export_fp32(student, artifact_metadata(recipe, data, "student_fp32")).serialize().size();
  };
  const uint64_t dense_bytes = fp32_bytes();

  nlohmann::json report = {{"kind", "prune"},
                           {"identity", identity},
                           {"method", spec.method},
                           {"target", spec.sparsity},
                           {"scope", spec.scope},
                           {"dense_test", dense_test},
                           {"dense_fp32_bytes", dense_bytes}};
  if (spec.finetune) {
    const int64_t total = total_steps(spec.train, data);
    TrainOptions topts;
    topts.checkpoint_path = options.dir + "/checkpoint.pt";
    topts.resume = options.resume;
    topts.stop_after_steps = options.stop_after_steps;
    topts.label = fmt::format("prune to {:.0f}%", 100.0 * spec.sparsity);
    topts.identity = identity;
    topts.on_start = [&](GraphModule&, int64_t step) { pruner.update(schedule_progress(spec, step, total)); };
    topts.after_step = [&](GraphModule&, int64_t step) {
      pruner.update(schedule_progress(spec, step, total));
    };
    const auto cache = finetune_logit_cache(recipe, stage_index, data, options);
    if (spec.alpha > 0) {
      topts.objective = [&](GraphModule& m, const torch::Tensor& x, const torch::Tensor& y, int64_t step) {
        auto s_logits = m->forward(x);
        auto loss = distillation_loss(s_logits, teacher_logits(teacher, x, step, cache.get()), y, spec.alpha,
                                      spec.temperature, spec.train.label_smoothing);
        return std::make_pair(loss.total, s_logits);
      };
    }
    const TrainResult result = train_model(student, spec.train, data, recipe.seed + stage_index, topts);
    if (!result.completed) {
      fmt::print(stderr, "prune: stopped after step {}/{}; continue with --resume\n", result.steps_done,
                 result.total_steps);
      return {{"kind", "prune"}, {"completed", false}};
    }
    report["steps"] = result.steps_done;
    report["seconds"] = result.seconds;
    report["history"] = result.history;
  }
  pruner.update(1.0);  // the final masks (after fine-tuning, or one shot without it)
  report["masks"] = pruner.report();
  if (!sensitivity.is_null()) report["sensitivity"] = sensitivity;
  if (spec.method == "channels") {
    student = pruner.shrink();
    write_text(graph_path, student->graph().to_json().dump() + "\n");
  }
  student->eval();
  report["completed"] = true;
  report["test"] = evaluate_split(student, data, Split::kTest);
  report["fp32_bytes"] = fp32_bytes();
  report["params_before"] = layers_before.second;
  report["params_after"] = student->parameter_count();
  int64_t nonzero = 0;
  for (const auto& p : student->parameters()) nonzero += p.count_nonzero().item<int64_t>();
  report["nonzero_after"] = nonzero;
  report["layers"] = layer_table(layers_before.first, weight_table(student).first, report["masks"]["layers"]);
  report["vs_teacher"] =
      compare_models([&](const torch::Tensor& x) { return teacher.logits(x); },
                     [&](const torch::Tensor& x) { return student->forward(x); }, data, Split::kTest);
  save_weights(student, weights_path);
  write_text(result_path, report.dump(2) + "\n");
  fmt::print(stderr, "prune: {:.1f}% of the prunable {} pruned, {} -> {} parameters; test {} (dense {})\n",
             100.0 * report["masks"]["sparsity"].get<double>(),
             spec.method == "channels" ? "units" : "weights", with_commas(layers_before.second),
             with_commas(student->parameter_count()), summarize_metrics(report["test"]),
             summarize_metrics(dense_test));
  return report;
}

}  // namespace mighty::compress
