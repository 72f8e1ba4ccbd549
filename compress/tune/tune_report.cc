// mighty tune's report.md and report.html: the constraints, the plan, the chosen trial and the final model
// on the test split, distillation against labels alone, every trial (table and charts with the Pareto
// fronts), and the chosen model's per-layer quantization sensitivity.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "compress/pipeline/chart.h"
#include "compress/pipeline/jobs.h"
#include "compress/tune/tune.h"

namespace mighty::compress {
namespace {

std::string percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }

std::string constraints_line(const nlohmann::json& tune) {
  const auto& k = tune["constraints"];
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (k["min_accuracy"].get<double>() >= 0)
    add(fmt::format("accuracy >= {}%", k["min_accuracy"].get<double>()));
  if (k["max_accuracy_drop"].get<double>() >= 0)
    add(fmt::format("at most {} points below the teacher", k["max_accuracy_drop"].get<double>()));
  if (k["max_bytes"].get<int64_t>() > 0)
    add(fmt::format("<= {} bytes", with_commas(k["max_bytes"].get<int64_t>())));
  if (k["max_latency_ms"].get<double>() > 0)
    add(fmt::format("batch-1 latency <= {} ms", k["max_latency_ms"].get<double>()));
  if (out.empty()) out = "none";
  return fmt::format("{} (latency at {} thread(s)); objective: best {}", out, k["threads"].get<int64_t>(),
                     tune["objective"].get<std::string>());
}

std::string config_text(const nlohmann::json& c) {
  if (c.empty()) return "the recipe as written";
  std::string out;
  for (const auto& [k, v] : c.items())
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", k, v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

// A student spec in a few words: "cnn 16-16p-32-32p, hidden 32" (p: a pooling block).
std::string student_text(const nlohmann::json& m) {
  std::string out = m.value("arch", "?");
  if (m.contains("blocks") && !m["blocks"].empty()) {
    std::string blocks;
    for (const auto& b : m["blocks"])
      blocks += fmt::format("{}{}{}", blocks.empty() ? "" : "-", b.value("channels", 0),
                            b.value("pool", "none") == "none" ? "" : "p");
    out += " " + blocks;
  }
  for (const char* key : {"dim", "d_model", "layers", "width"})
    if (m.contains(key) && !(std::string(key) == "width" && m[key] == 1.0))
      out += fmt::format(", {} {}", key, m[key].dump());
  if (m.contains("hidden") && !m["hidden"].empty()) out += ", hidden " + m["hidden"].dump();
  return out;
}

std::set<std::string> ids(const nlohmann::json& list) {
  std::set<std::string> out;
  for (const auto& v : list) out.insert(v.get<std::string>());
  return out;
}

std::string final_text(const nlohmann::json& r) {
  if (!r.contains("final")) return "";
  const auto& f = r["final"];
  std::string out =
      fmt::format("\n**Final model** (`{}`, the test split's only use): ", f["dir"].get<std::string>());
  if (f.contains("model")) {
    const auto& m = f["model"];
    out += fmt::format("test {}, {} bytes, {:.4f} ms batch-1", percent(m["accuracy"].get<double>()),
                       with_commas(m["bytes"].get<int64_t>()), m["latency_ms_b1"].get<double>());
  }
  if (f.contains("pass")) out += f["pass"].get<bool>() ? "; every criterion met" : "; **criteria not met**";
  out += ".\n";
  if (f.contains("criteria")) {
    out += "\n| criterion | value | limit | met |\n|---|---:|---:|---|\n";
    for (const auto& c : f["criteria"])
      out += fmt::format("| {} | {:.4g} | {:.4g} | {} |\n", c["criterion"].get<std::string>(),
                         c["value"].get<double>(), c["limit"].get<double>(),
                         c["pass"].get<bool>() ? "yes" : "no");
  }
  return out;
}

// Each shape's one-step export, and which were left out before training.
std::string precheck_text(const nlohmann::json& r) {
  const auto& p = r.value("precheck", nlohmann::json::array());
  if (p.empty()) return "";
  std::string out = fmt::format(
      "\n## Pre-check\n\nEach shape of the space exported after one training step, before any trial: {} of "
      "the space's {} configurations are within the limits ({} drawn).\n\n| pre-check | shape | bytes | "
      "latency b1 | left out |\n|---|---|---:|---:|---|\n",
      r.value("feasible_configurations", int64_t{0}), r.value("space_configurations", int64_t{0}),
      r["configurations"].get<int64_t>());
  for (const auto& c : p) {
    std::string skip;
    for (const auto& m : c["skip"]) skip += (skip.empty() ? "" : "; ") + m.get<std::string>();
    out += fmt::format("| {} | {} | {} | {:.4f} ms | {} |\n", c["id"].get<std::string>(),
                       config_text(c["shape"]), with_commas(c["bytes"].get<int64_t>()),
                       c["latency_ms_b1"].get<double>(), skip.empty() ? "no" : skip);
  }
  return out;
}

}  // namespace

std::string tune_markdown(const nlohmann::json& r) {
  const auto& tune = r["tune"];
  std::string out = fmt::format("# {} — mighty tune\n\nConstraints: {}.\n\n", r["recipe"].get<std::string>(),
                                constraints_line(tune));
  out += fmt::format("Search: {} configuration(s) of the space; successive halving (eta {}):",
                     r["configurations"].get<int64_t>(), tune["search"]["eta"].get<int64_t>());
  for (size_t i = 0; i < r["plan"].size(); ++i)
    out += fmt::format(" rung {}: {} trial(s) at epochs x{:.3g};", i, r["plan"][i]["trials"].get<int64_t>(),
                       r["plan"][i]["epoch_scale"].get<double>());
  const auto& b = r["budget"];
  out += fmt::format(" {} trial(s) ran in {:.0f} s", r["trials"].size(), b["trial_seconds"].get<double>());
  if (b.contains("overhead_seconds"))
    out += fmt::format(" after {:.0f} s of set-up (data, teacher, pre-checks)",
                       b["overhead_seconds"].get<double>());
  if (b["minutes"].get<double>() > 0) out += fmt::format(" (budget {} min)", b["minutes"].get<double>());
  if (b["stopped_search"].get<bool>()) out += "; **the budget stopped the search early**";
  out +=
      fmt::format(". Every trial is judged on the validation split; the teacher's validation accuracy: {}.\n",
                  percent(r["teacher_validation_accuracy"].get<double>()));
  const auto& space = tune.value("space", nlohmann::json::object());
  if (space.contains("students")) {
    out += "\nStudents:";
    for (size_t i = 0; i < space["students"].size(); ++i)
      out += fmt::format(" `student={}`: {};", i, student_text(space["students"][i]));
    out += "\n";
  }
  if (r.contains("seconds")) out += fmt::format("\nThis invocation: {:.0f} s.\n", r["seconds"].get<double>());
  const std::string chosen = r["chosen"].is_string() ? r["chosen"].get<std::string>() : "";
  for (const auto& t : r["trials"]) {
    if (t["id"] != chosen) continue;
    out += fmt::format("\n**Chosen: {}** ({}): validation {}, {} bytes, {:.4f} ms batch-1.\n", chosen,
                       config_text(t["config"]), percent(t["accuracy"].get<double>()),
                       with_commas(t["bytes"].get<int64_t>()), t["latency_ms_b1"].get<double>());
  }
  const auto& sel = r.value("selection", nlohmann::json());
  if (sel.is_object() && sel["best"] != chosen)
    out += fmt::format(
        "\nThe best on validation was {}; {} is within one standard error ({:.2f} points on {} examples) and "
        "trained longer, so it was chosen (the one-standard-error rule).\n",
        sel["best"].get<std::string>(), chosen, 100.0 * sel["standard_error"].get<double>(),
        sel["examples"].get<int64_t>());
  if (chosen.empty()) out += "\n**No trial meets every constraint**: nothing was exported.\n";
  out += final_text(r);
  if (r.contains("error")) out += fmt::format("\nError: {}\n", r["error"].get<std::string>());
  const auto& s = r["supervision"];
  if (s.is_object()) {
    out += fmt::format(
        "\n**Distillation or labels alone**: at rung {}, the best distilled trial {} reached {}, the best "
        "trained on labels alone {} reached {}: **{}** won.\n",
        s["rung"].get<int64_t>(), s["distilled"]["id"].get<std::string>(),
        percent(s["distilled"]["accuracy"].get<double>()), s["labels"]["id"].get<std::string>(),
        percent(s["labels"]["accuracy"].get<double>()),
        s["winner"] == "labels" ? "labels alone" : "distillation");
  } else {
    out += "\nDistillation against labels alone: not compared (the space's `supervision` has one choice).\n";
  }
  out += precheck_text(r);
  const auto front_b = ids(r["pareto"]["bytes"]), front_l = ids(r["pareto"]["latency_ms_b1"]);
  out +=
      "\n## Trials\n\n| trial | rung | epochs x | configuration | validation | fp32 validation | bytes | "
      "latency b1 | Pareto | constraints | seconds |\n|---|---:|---:|---|---:|---:|---:|---:|---|---|---:|\n";
  for (const auto& t : r["trials"]) {
    const std::string id = t["id"];
    std::string pareto = front_b.count(id) ? "bytes" : "";
    if (front_l.count(id)) pareto += pareto.empty() ? "latency" : ", latency";
    std::string misses;
    for (const auto& m : t["misses"]) misses += (misses.empty() ? "" : "; ") + m.get<std::string>();
    out +=
        fmt::format("| {}{} | {} | {:.3g} | {} | {} | {} | {} | {:.4f} ms | {} | {} | {:.0f} |\n", id,
                    id == chosen ? " (chosen)" : "", t["rung"].get<int64_t>(), t["epoch_scale"].get<double>(),
                    config_text(t["config"]), percent(t["accuracy"].get<double>()),
                    percent(t["fp32_accuracy"].get<double>()), with_commas(t["bytes"].get<int64_t>()),
                    t["latency_ms_b1"].get<double>(), pareto.empty() ? "-" : pareto,
                    misses.empty() ? "met" : misses, t["seconds"].get<double>());
  }
  if (r.contains("sensitivity") && !r["sensitivity"].empty()) {
    out +=
        "\n## Per-layer quantization sensitivity of the chosen model\n\nValidation accuracy (points) with "
        "that layer alone kept out of int8, and the gain over the all-int8 model.\n\n| layer | accuracy | "
        "gain |\n|---|---:|---:|\n";
    for (const auto& l : r["sensitivity"])
      out += fmt::format("| {} | {:.2f} | {:+.2f} |\n", l["layer"].get<std::string>(),
                         l["quality"].get<double>(), l["gain"].get<double>());
  }
  return out;
}

namespace {

// Validation accuracy against a per-trial cost: distilled and labels-only trials apart, the Pareto front
// joined, the chosen trial marked, the constraints drawn as dashed lines.
Chart trials_chart(const nlohmann::json& r, const char* id, const char* title, const char* key,
                   const char* x_label, AxisFormat x_format, double limit) {
  Chart c{id,   title, x_label, "validation accuracy (int8 artifact)", x_format, AxisFormat::kPercent,
          true, false, {}};
  ChartSeries distilled{"distilled (teacher)", {}}, labels{"labels alone", {}};
  ChartSeries front{"Pareto front", {}, true, false};
  const std::string chosen = r["chosen"].is_string() ? r["chosen"].get<std::string>() : "";
  const auto on_front = ids(r["pareto"][key]);
  double lo = 1.0, hi = 0.0, x_lo = 0.0, x_hi = 0.0;
  for (const auto& t : r["trials"]) {
    const std::string tid = t["id"];
    const double x = t[key].get<double>(), y = t["accuracy"].get<double>();
    const std::string label = tid == chosen ? "chosen: " + tid : tid;
    (t["supervision"] == "labels" ? labels : distilled).points.push_back({x, y, label, tid == chosen});
    if (on_front.count(tid)) front.points.push_back({x, y, tid});
    lo = std::min(lo, y);
    hi = std::max(hi, y);
    x_lo = x_lo == 0.0 ? x : std::min(x_lo, x);
    x_hi = std::max(x_hi, x);
  }
  std::sort(front.points.begin(), front.points.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
  for (auto* s : {&distilled, &labels})
    if (!s->points.empty()) c.series.push_back(*s);
  if (!front.points.empty()) c.series.push_back(front);
  if (limit > 0 && lo <= hi)
    c.series.push_back({fmt::format("limit {}", format_value(limit, x_format)),
                        {{limit, lo, "limit"}, {limit, hi, "limit"}},
                        true,
                        false,
                        true});
  const double min_acc = r["tune"]["constraints"]["min_accuracy"].get<double>();
  if (min_acc >= 0 && x_hi > 0)
    c.series.push_back({"min_accuracy",
                        {{x_lo, min_acc / 100.0, "min"}, {x_hi, min_acc / 100.0, "min"}},
                        true,
                        false,
                        true});
  return c;
}

}  // namespace

std::string tune_html(const nlohmann::json& r, const std::string& markdown) {
  const std::string name = r.value("recipe", "run");
  const auto& k = r["tune"]["constraints"];
  std::string body = fmt::format("<h1>{} — mighty tune</h1>\n<p>{}</p>\n", escape_html(name),
                                 escape_html(constraints_line(r["tune"])));
  const std::string chosen = r["chosen"].is_string() ? r["chosen"].get<std::string>() : "";
  body += chosen.empty() ? "<p><b class=\"fail\">No trial meets every constraint.</b></p>\n"
                         : fmt::format("<p>Chosen: <b>{}</b>.</p>\n", escape_html(chosen));
  body += "<h2>Trials</h2>\n<div class=\"charts\">\n" +
          render_svg(trials_chart(r, "tune_bytes", "Validation accuracy against size", "bytes",
                                  "bytes of model.mighty", AxisFormat::kBytes,
                                  static_cast<double>(k["max_bytes"].get<int64_t>()))) +
          render_svg(trials_chart(
              r, "tune_latency", "Validation accuracy against batch-1 latency", "latency_ms_b1",
              fmt::format("batch-1 latency (p50, {} thread(s))", k["threads"].get<int64_t>()).c_str(),
              AxisFormat::kMs, k["max_latency_ms"].get<double>())) +
          "</div>\n";
  if (r.contains("sensitivity") && !r["sensitivity"].empty()) {
    Chart c{"tune_sensitivity",
            "Chosen model: accuracy gained by keeping one layer out of int8",
            "layer (in graph order)",
            "validation accuracy gain (points)",
            AxisFormat::kNumber,
            AxisFormat::kNumber,
            false,
            false,
            {{"layers", {}}}};
    double i = 0;
    for (const auto& l : r["sensitivity"])
      c.series[0].points.push_back({++i, l["gain"].get<double>(), l["layer"].get<std::string>()});
    body += "<h2>Per-layer sensitivity</h2>\n<div class=\"charts\">\n" + render_svg(c) + "</div>\n";
  }
  body += "<h2>The whole report (report.md)</h2>\n<pre>" + escape_html(markdown) + "</pre>\n";
  return html_page(name + " — mighty tune", body);
}

}  // namespace mighty::compress
