#include "compress/pipeline/report_html.h"

#include <fmt/format.h>

#include "compress/pipeline/chart.h"

namespace mighty::compress {
namespace {

// The quality a model is judged by: accuracy (higher is better) or bits/char (lower is better).
struct Quality {
  const char* key;
  const char* label;
  AxisFormat format;
};

Quality quality_of(const nlohmann::json& models) {
  for (const auto& m : models)
    if (m.contains("bits_per_char")) return {"bits_per_char", "test bits/char", AxisFormat::kNumber};
  return {"accuracy", "test accuracy", AxisFormat::kPercent};
}

std::string model_label(const nlohmann::json& m) {
  return fmt::format("{} ({})", m.value("name", "?"), m.value("role", "?"));
}

// Quality against a per-model measure (bytes, batch-1 latency): one series per engine.
Chart models_chart(const nlohmann::json& models, const Quality& q, const char* id, const char* title,
                   const char* x_key, const char* x_label, AxisFormat x_format) {
  Chart c{id, title, x_label, q.label, x_format, q.format, true, false, {}};
  for (const auto& m : models) {
    if (!m.contains(q.key) || !m.contains(x_key)) continue;
    const std::string engine = m.value("engine", "unknown engine");
    auto it = std::find_if(c.series.begin(), c.series.end(), [&](const auto& s) { return s.name == engine; });
    if (it == c.series.end()) {
      c.series.push_back({engine, {}});
      it = c.series.end() - 1;
    }
    // The file mighty ships (the runtime's int8 student) is the one marked.
    const bool shipped = m.value("role", "") == "student_int8" && engine == "runtime int8";
    it->points.push_back(
        {m[x_key].get<double>(), m[q.key].get<double>(), shipped ? "model.mighty" : model_label(m), shipped});
  }
  return c;
}

std::string models_table(const nlohmann::json& models, const Quality& q) {
  std::string out =
      "<table><tr><th>model</th><th>role</th><th>engine</th><th>parameters</th><th>bytes</th><th>test</th>"
      "<th>agreement with the teacher</th><th>latency b1 p50</th><th>p99</th><th>throughput b64</th></tr>\n";
  for (const auto& m : models) {
    auto num = [&](const char* k, const char* f) {
      return m.contains(k) ? fmt::format(fmt::runtime(f), m[k].get<double>()) : std::string("-");
    };
    out += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td></tr>\n",
        escape_html(m.value("name", "")), escape_html(m.value("role", "")),
        escape_html(m.value("engine", "-")), num("params", "{:.0f}"), num("bytes", "{:.0f}"),
        m.contains(q.key) ? format_value(m[q.key].get<double>(), q.format) : "-",
        m.contains("agreement") ? format_value(m["agreement"].get<double>(), AxisFormat::kPercent) : "-",
        num("latency_ms_b1", "{:.4f} ms"), num("latency_ms_b1_p99", "{:.4f} ms"),
        num("throughput_b64", "{:.0f}/s"));
  }
  return out + "</table>\n";
}

// Validation quality per epoch of one training history, as a series.
ChartSeries history_series(const std::string& name, const nlohmann::json& history, const char*& key) {
  ChartSeries s{name, {}, true};
  for (const auto& h : history) {
    if (!h.contains("validation")) continue;
    const auto& v = h["validation"];
    key = v.contains("bits_per_char") ? "bits_per_char" : "accuracy";
    if (!v.contains(key)) continue;
    s.points.push_back(
        {h.value("epoch", 0.0), v[key].get<double>(), fmt::format("epoch {}", h.value("epoch", 0))});
  }
  return s;
}

// The training runs' validation curves: every distill run (distilled and scratch, each seed) and prune.
std::string training_section(const nlohmann::json& stages) {
  const char* key = "accuracy";
  Chart c{"training",
          "Validation during training",
          "epoch",
          "",
          AxisFormat::kNumber,
          AxisFormat::kPercent,
          false,
          false,
          {}};
  for (const auto& st : stages) {
    const std::string kind = st.value("kind", "");
    if (kind == "distill" && st.contains("runs")) {
      for (const auto& r : st["runs"])
        if (r.contains("history"))
          c.series.push_back(history_series(fmt::format("stage {} {} seed {}", st.value("index", 0),
                                                        r.value("kind", "run"), r.value("seed", 0)),
                                            r["history"], key));
    } else if (kind == "prune" && st.contains("history")) {
      c.series.push_back(
          history_series(fmt::format("stage {} prune", st.value("index", 0)), st["history"], key));
    }
  }
  if (c.series.empty()) return "";
  const bool bpc = std::string(key) == "bits_per_char";
  c.y_label = bpc ? "validation bits/char" : "validation accuracy";
  c.y_format = bpc ? AxisFormat::kNumber : AxisFormat::kPercent;
  return "<h2>Training</h2>\n<div class=\"charts\">\n" + render_svg(c) + "</div>\n";
}

std::string cascade_section(const nlohmann::json& c) {
  if (!c.is_object()) return "";
  if (c.contains("unavailable"))
    return "<h2>Cascade</h2>\n<p>Not measured: " + escape_html(c["unavailable"].get<std::string>()) +
           ".</p>\n";
  const auto& test = c["test"];
  const double threshold = c["threshold"].get<double>();
  ChartSeries curve{"cascade (threshold swept)", {}, true}, cost{"cascade", {}, true};
  for (const auto& p : c["curve_test"]) {
    const double t = std::min(1.0, p["threshold"].get<double>());
    const std::string label = fmt::format("threshold {:.2f}", t);
    curve.points.push_back({p["student_share"].get<double>(), p["accuracy"].get<double>(), label});
    cost.points.push_back({t, p["cpu_seconds_per_million"].get<double>(), label});
  }
  const std::string chosen = fmt::format("chosen on validation: {:.4f}", std::min(1.0, threshold));
  const ChartSeries chosen_share{
      "chosen threshold",
      {{test["student_share"].get<double>(), test["accuracy"].get<double>(), chosen, true}}};
  const double teacher = test["teacher_accuracy"].get<double>(),
               student = test["student_accuracy"].get<double>();
  Chart acc{"cascade_accuracy",
            "Cascade on the test split: accuracy against the student's share",
            "share answered by the student",
            "test accuracy",
            AxisFormat::kPercent,
            AxisFormat::kPercent,
            false,
            false,
            {curve,
             chosen_share,
             {"teacher only", {{0.0, teacher, "teacher"}, {1.0, teacher, "teacher"}}, true, false, true},
             {"student only", {{0.0, student, "student"}, {1.0, student, "student"}}, true, false, true}}};
  const auto& cpu = c["cpu_seconds_per_million"];
  const ChartSeries chosen_cost{"chosen threshold",
                                {{std::min(1.0, threshold), cpu["cascade"].get<double>(), chosen, true}}};
  Chart cost_chart{
      "cascade_cost",
      "Cascade: compute per million predictions against the threshold",
      "threshold (student's top-1 probability)",
      "CPU-seconds per million",
      AxisFormat::kNumber,
      AxisFormat::kNumber,
      false,
      true,  // costs span orders of magnitude (student alone to teacher alone)
      {cost,
       chosen_cost,
       {"teacher only",
        {{0.0, cpu["teacher"].get<double>(), "teacher"}, {1.0, cpu["teacher"].get<double>(), "teacher"}},
        true,
        false,
        true}}};
  return fmt::format(
      "<h2>Cascade</h2>\n<p>Student first, the teacher when the student's top-1 probability is under the "
      "threshold; chosen on the validation split, measured on the test split: accuracy {} (teacher {}, "
      "student "
      "{}), {} answered by the student, {:.1f} CPU-s per million predictions ({} of teacher-only).</p>\n"
      "<div class=\"charts\">\n{}{}</div>\n",
      format_value(test["accuracy"].get<double>(), AxisFormat::kPercent),
      format_value(teacher, AxisFormat::kPercent), format_value(student, AxisFormat::kPercent),
      format_value(test["student_share"].get<double>(), AxisFormat::kPercent), cpu["cascade"].get<double>(),
      format_value(cpu["cascade_vs_teacher"].get<double>(), AxisFormat::kPercent), render_svg(acc),
      render_svg(cost_chart));
}

}  // namespace

std::string report_html(const nlohmann::json& report, const std::string& markdown) {
  const std::string name = report.value("recipe", "run");
  const nlohmann::json& models = report.contains("models") ? report["models"] : nlohmann::json::array();
  const Quality q = quality_of(models);
  std::string body =
      fmt::format("<h1>{} — mighty compress</h1>\n<p>recipe hash {}, data hash {}", escape_html(name),
                  escape_html(report.value("recipe_hash", "-")), escape_html(report.value("data_hash", "-")));
  if (report.contains("verify") && report["verify"].contains("pass")) {
    const bool pass = report["verify"]["pass"].get<bool>();
    body += fmt::format(", verify: <b class=\"{}\">{}</b>", pass ? "pass" : "fail",
                        pass ? "every criterion met" : "criteria not met");
  }
  body += "</p>\n<h2>Models</h2>\n" + models_table(models, q) + "<div class=\"charts\">\n" +
          render_svg(models_chart(models, q, "quality_bytes", "Quality against size", "bytes", "bytes",
                                  AxisFormat::kBytes)) +
          render_svg(models_chart(models, q, "quality_latency", "Quality against batch-1 latency",
                                  "latency_ms_b1", "batch-1 latency (p50)", AxisFormat::kMs)) +
          "</div>\n";
  if (report.contains("stages")) body += training_section(report["stages"]);
  if (report.contains("verify") && report["verify"].contains("cascade"))
    body += cascade_section(report["verify"]["cascade"]);
  body += "<h2>The whole report (report.md)</h2>\n<pre>" + escape_html(markdown) + "</pre>\n";
  return html_page(name + " — mighty compress", body);
}

}  // namespace mighty::compress
