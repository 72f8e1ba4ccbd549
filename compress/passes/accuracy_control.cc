#include "compress/passes/accuracy_control.h"

#include <algorithm>

#include <fmt/format.h>

#include "compress/train/evaluate.h"
#include "runtime/error.h"

namespace mighty::compress {
namespace {

// Validation quality, higher is better: accuracy in points, or minus bits/char.
double quality(const nlohmann::json& m) {
  return m.contains("accuracy") ? 100.0 * m["accuracy"].get<double>() : -m.at("bits_per_char").get<double>();
}

double validation_quality(QuantizedModel& qm, const Dataset& data) {
  torch::NoGradGuard no_grad;
  return quality(
      evaluate_forward([&](const torch::Tensor& x) { return qm.forward(x); }, data, Split::kValidation));
}

// `spec` with `layers` fallen back (kept in fp32, or given dynamic activations).
QuantizeSpec with_fallback(QuantizeSpec spec, const std::vector<std::string>& layers,
                           const std::string& mode) {
  for (const auto& l : layers) {
    if (mode == "fp32")
      spec.exclude.push_back(l);
    else
      spec.overrides.push_back({l, "", "dynamic"});
  }
  return spec;
}

// Each candidate layer fallen back alone: its validation quality and the gain over `first`. Candidates: every
// int8 layer (fp32 fallback), or every one with static activations (dynamic fallback).
nlohmann::json layer_sensitivity(GraphModule& student, const QuantizeSpec& spec, const Dataset& data,
                                 const nlohmann::json& layers, double first) {
  const AccuracyControl& ac = spec.accuracy_control;
  nlohmann::json sensitivity = nlohmann::json::array();
  for (const auto& l : layers) {
    const std::string name = l["layer"].get<std::string>();
    if (ac.fallback == "dynamic" && l.value("activations", "") != "static") continue;
    nlohmann::json trial_report;
    QuantizedModel trial =
        quantize_model(student, with_fallback(spec, {name}, ac.fallback), data, trial_report);
    const double q = validation_quality(trial, data);
    sensitivity.push_back({{"layer", name}, {"quality", q}, {"gain", q - first}});
    fmt::print(stderr, "quantize: accuracy control: {} alone to {}: {:.4f} ({:+.4f})\n", name, ac.fallback, q,
               q - first);
  }
  return sensitivity;
}

}  // namespace

QuantizedModel quantize_with_accuracy_control(GraphModule& student, const QuantizeSpec& spec,
                                              const Dataset& data, nlohmann::json& report) {
  const AccuracyControl& ac = spec.accuracy_control;
  QuantizedModel qm = quantize_model(student, spec, data, report);
  if (ac.max_drop < 0 && !ac.sensitivity) return qm;
  const bool text = data.kind == "text";
  if (!text && data.images.val_x.size(0) == 0)
    throw Error("quantize: accuracy_control needs a validation split (data.validation_size > 0)");
  student->eval();
  double fp32 = 0.0;
  {
    torch::NoGradGuard no_grad;
    fp32 = quality(evaluate_forward([&](const torch::Tensor& x) { return student->forward(x); }, data,
                                    Split::kValidation));
  }
  const double first = validation_quality(qm, data);
  const char* metric = text ? "validation bits/char (negated)" : "validation accuracy (points)";
  nlohmann::json out = {{"metric", metric}, {"max_drop", ac.max_drop}, {"fallback", ac.fallback},
                        {"fp32", fp32},     {"int8", first},           {"steps", nlohmann::json::array()}};
  fmt::print(stderr, "quantize: accuracy control: fp32 {:.4f}, int8 {:.4f} (drop {:.4f}, limit {})\n", fp32,
             first, fp32 - first, ac.max_drop);
  if (ac.sensitivity) out["sensitivity"] = layer_sensitivity(student, spec, data, report["layers"], first);
  if (ac.max_drop < 0 || fp32 - first <= ac.max_drop) {
    out["final"] = {
        {"quality", first}, {"drop", fp32 - first}, {"layers_fallen_back", nlohmann::json::array()}};
    out["met"] = ac.max_drop < 0 ? nlohmann::json(nullptr) : nlohmann::json(true);
    report["accuracy_control"] = out;
    return qm;
  }
  if (!out.contains("sensitivity"))
    out["sensitivity"] = layer_sensitivity(student, spec, data, report["layers"], first);
  std::vector<std::pair<std::string, double>> gains;
  for (const auto& l : out["sensitivity"])
    gains.emplace_back(l["layer"].get<std::string>(), l["gain"].get<double>());
  std::stable_sort(gains.begin(), gains.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  // Fall back in that order, one more layer per step, until the drop is within the limit.
  std::vector<std::string> fallen;
  double best = first;
  for (const auto& [name, gain] : gains) {
    fallen.push_back(name);
    nlohmann::json step_report;
    QuantizedModel step =
        quantize_model(student, with_fallback(spec, fallen, ac.fallback), data, step_report);
    const double q = validation_quality(step, data);
    best = std::max(best, q);
    out["steps"].push_back({{"layer", name}, {"quality", q}, {"drop", fp32 - q}});
    fmt::print(stderr, "quantize: accuracy control: step {}: + {} to {}: {:.4f} (drop {:.4f})\n",
               fallen.size(), name, ac.fallback, q, fp32 - q);
    if (fp32 - q <= ac.max_drop) {
      out["final"] = {{"quality", q}, {"drop", fp32 - q}, {"layers_fallen_back", fallen}};
      out["met"] = true;
      step_report["accuracy_control"] = out;
      report = std::move(step_report);
      return step;
    }
  }
  throw Error(
      fmt::format("quantize: accuracy control: no fallback keeps the {} drop within {} (fp32 {:.4f}, int8 "
                  "{:.4f}, best with "
                  "{} layer(s) to {} {:.4f}); raise accuracy_control.max_drop or train the student longer",
                  metric, ac.max_drop, fp32, first, fallen.size(), ac.fallback, best));
}

}  // namespace mighty::compress
