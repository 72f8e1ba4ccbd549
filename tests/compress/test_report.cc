// report.html: the charts (pipeline/chart.h) and the page built from a report (pipeline/report_html.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <regex>
#include <string>

#include "compress/pipeline/chart.h"
#include "compress/pipeline/report_html.h"

using namespace mighty::compress;

namespace {

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// data-points of the chart with this id, or -1.
int drawn_points(const std::string& page, const std::string& id) {
  std::smatch m;
  if (!std::regex_search(page, m, std::regex("data-chart=\"" + id + "\" data-points=\"([0-9]+)\"")))
    return -1;
  return std::stoi(m[1]);
}

nlohmann::json model(const char* role, const char* engine, double accuracy, double bytes, double ms) {
  return {{"name", "m"},
          {"role", role},
          {"engine", engine},
          {"params", 10},
          {"bytes", bytes},
          {"accuracy", accuracy},
          {"latency_ms_b1", ms},
          {"latency_ms_b1_p99", ms * 2},
          {"throughput_b64", 1000.0}};
}

}  // namespace

TEST_CASE("a chart draws every point it can, says what it left out, and escapes its text") {
  Chart c{"c1", "Title <b>", "bytes", "accuracy", AxisFormat::kBytes, AxisFormat::kPercent, true, false, {}};
  c.series.push_back({"a & b", {{1000, 0.9, "one"}, {20000, 0.91, "two"}, {3e6, 0.95, "<script>", true}}});
  c.series.push_back({"curve", {{500, 0.8, ""}, {0.0, 0.85, "zero on a log axis"}, {800, NAN, "nan"}}, true});
  c.series.push_back({"reference", {{500, 0.9, ""}, {3e6, 0.9, ""}}, true, false, true});  // no markers
  const std::string svg = render_svg(c);
  REQUIRE(count(svg, "<circle class=\"point") == 4);
  REQUIRE(count(svg, "<circle class=\"point highlight\"") == 1);
  REQUIRE(svg.find("data-points=\"4\"") != std::string::npos);
  REQUIRE(svg.find("2 point(s) without a value left out") != std::string::npos);
  REQUIRE(svg.find("<script>") == std::string::npos);
  REQUIRE(svg.find("&lt;script&gt;") != std::string::npos);
  REQUIRE(svg.find("Title &lt;b&gt;") != std::string::npos);
  REQUIRE(svg.find("a &amp; b") != std::string::npos);
  REQUIRE(count(svg, "<polyline") == 2);
  REQUIRE(svg.find("stroke-dasharray") != std::string::npos);
  REQUIRE(svg.find("(log scale)") != std::string::npos);
  // Every point lies inside the plot area (x in [74, 530], y in [40, 328]).
  const std::regex circle("cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator(); ++it) {
    const double x = std::stod((*it)[1]), y = std::stod((*it)[2]);
    REQUIRE(x >= 74);
    REQUIRE(x <= 530);
    REQUIRE(y >= 40);
    REQUIRE(y <= 328);
  }
  // A log y axis: values <= 0 cannot be drawn; large numbers are written without an exponent.
  Chart costs{"c3", "Costs", "threshold", "CPU-s", AxisFormat::kNumber, AxisFormat::kNumber, false, true, {}};
  costs.series.push_back(
      {"cost", {{0.0, 2.8, ""}, {0.5, 400.0, ""}, {1.0, 18612.0, ""}, {0.7, 0.0, "zero"}}, true});
  const std::string log_svg = render_svg(costs);
  REQUIRE(log_svg.find("data-points=\"3\"") != std::string::npos);
  REQUIRE(log_svg.find("1 point(s) without a value left out") != std::string::npos);
  REQUIRE(log_svg.find("CPU-s (log scale)") != std::string::npos);
  REQUIRE(log_svg.find(">10000<") != std::string::npos);  // a decade tick
  REQUIRE(log_svg.find("e+04") == std::string::npos);
  // A chart with nothing drawable says so.
  const std::string empty = render_svg({"c2",
                                        "Nothing",
                                        "x",
                                        "y",
                                        AxisFormat::kNumber,
                                        AxisFormat::kNumber,
                                        false,
                                        false,
                                        {{"s", {{NAN, 1.0, ""}}}}});
  REQUIRE(empty.find("no data") != std::string::npos);
  REQUIRE(empty.find("data-points=\"0\"") != std::string::npos);
}

TEST_CASE("axis values read as people write them") {
  REQUIRE(format_value(0.9232, AxisFormat::kPercent) == "92.3%");
  REQUIRE(format_value(0.05, AxisFormat::kPercent) == "5.00%");
  REQUIRE(format_value(28136, AxisFormat::kBytes) == "28.1 KB");
  REQUIRE(format_value(3484840, AxisFormat::kBytes) == "3.48 MB");
  REQUIRE(format_value(512, AxisFormat::kBytes) == "512 B");
  REQUIRE(format_value(0.0212, AxisFormat::kMs) == "0.0212 ms");
}

TEST_CASE("report.html draws every model, training run and cascade point, and fetches nothing") {
  nlohmann::json history = nlohmann::json::array();
  for (int e = 1; e <= 3; ++e)
    history.push_back({{"epoch", e}, {"validation", {{"accuracy", 0.8 + 0.01 * e}}}});
  nlohmann::json curve = nlohmann::json::array();
  for (int k = 0; k <= 20; ++k)
    curve.push_back({{"threshold", k / 20.0},
                     {"accuracy", 0.9},
                     {"student_share", 1.0 - k / 20.0},
                     {"cpu_seconds_per_million", 10.0 + k}});
  const nlohmann::json cascade = {
      {"threshold", 0.6},
      {"test",
       {{"accuracy", 0.91}, {"student_share", 0.9}, {"teacher_accuracy", 0.92}, {"student_accuracy", 0.9}}},
      {"cpu_seconds_per_million",
       {{"teacher", 100.0}, {"student", 10.0}, {"cascade", 20.0}, {"cascade_vs_teacher", 0.2}}},
      {"curve_test", curve}};
  nlohmann::json report = {{"recipe", "r<x>"},
                           {"recipe_hash", "abc"},
                           {"models",
                            {model("teacher", "libtorch fp32", 0.92, 3e6, 1.0),
                             model("student_fp32", "runtime fp32", 0.91, 7e4, 0.06),
                             model("student_int8", "runtime int8", 0.9, 2.8e4, 0.02)}},
                           {"stages",
                            {{{"kind", "distill"},
                              {"index", 0},
                              {"runs",
                               {{{"kind", "distilled"}, {"seed", 1}, {"history", history}},
                                {{"kind", "scratch"}, {"seed", 1}, {"history", history}}}}},
                             {{"kind", "verify"}, {"index", 1}}}},
                           {"verify", {{"pass", true}, {"cascade", cascade}}}};
  const std::string page = report_html(report, "# the markdown <report>\n");
  REQUIRE(drawn_points(page, "quality_bytes") == 3);
  REQUIRE(drawn_points(page, "quality_latency") == 3);
  REQUIRE(drawn_points(page, "training") == 6);
  REQUIRE(drawn_points(page, "cascade_accuracy") == 22);  // the curve and the chosen threshold
  REQUIRE(drawn_points(page, "cascade_cost") == 22);
  REQUIRE(count(page, "class=\"point highlight\"") == 4);  // model.mighty twice, the chosen threshold twice
  REQUIRE(page.find("&lt;report&gt;") != std::string::npos);
  REQUIRE(page.find("r&lt;x&gt; — mighty compress") != std::string::npos);
  REQUIRE(page.find("every criterion met") != std::string::npos);
  // Self-contained: no attribute loads anything, and the policy forbids it.
  REQUIRE(page.find("src=") == std::string::npos);
  REQUIRE(page.find("href=") == std::string::npos);
  REQUIRE(page.find("default-src 'none'") != std::string::npos);

  // Without a cascade, it says why; a language model's quality is bits/char.
  report["verify"]["cascade"] = {{"unavailable", "not an image classifier"}};
  for (auto& m : report["models"]) {
    m.erase("accuracy");
    m["bits_per_char"] = 2.0;
  }
  const std::string lm = report_html(report, "");
  REQUIRE(lm.find("Not measured: not an image classifier.") != std::string::npos);
  REQUIRE(drawn_points(lm, "cascade_accuracy") == -1);
  REQUIRE(lm.find("test bits/char") != std::string::npos);
  REQUIRE(drawn_points(lm, "quality_bytes") == 3);
}
