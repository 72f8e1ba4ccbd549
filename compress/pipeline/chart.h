// Charts for the reports people look at: each chart is inline SVG in a self-contained HTML page (no script,
// no style sheet or font from anywhere else), so a report opens offline and the same bytes render everywhere.
// Every data point is a <circle class="point"> carrying data-chart, data-series and data-label, with a
// <title> tooltip naming its values; each chart's <svg> carries data-points (its count), so a browser test
// can check that every point is drawn.
#pragma once
#include <string>
#include <vector>

namespace mighty::compress {

struct ChartPoint {
  double x = 0.0, y = 0.0;
  std::string label;       // shown in the tooltip (and beside the point when `highlight`)
  bool highlight = false;  // drawn larger, ringed and labelled: the chosen model, the stored threshold
};

struct ChartSeries {
  std::string name;
  std::vector<ChartPoint> points;
  bool line = false;    // join the points in order (a curve, a Pareto front)
  bool markers = true;  // draw the points (a line without markers draws none)
  bool dashed = false;  // a reference line (teacher only, a target)
};

enum class AxisFormat { kNumber, kPercent /* values are fractions, shown x100 with % */, kBytes, kMs };

struct Chart {
  std::string id;  // unique in the page: the data-chart attribute
  std::string title, x_label, y_label;
  AxisFormat x_format = AxisFormat::kNumber, y_format = AxisFormat::kNumber;
  bool log_x = false, log_y = false;
  std::vector<ChartSeries> series;
};

// The chart as an <svg> element (720 x 380 user units, scales with the page). Points with non-finite values,
// or <= 0 on a log axis, are left out and named in a note under the chart.
std::string render_svg(const Chart& chart);

// Text safe inside HTML elements and attribute values.
std::string escape_html(const std::string& text);

// A complete self-contained page: `body` is HTML; the page's Content-Security-Policy allows no requests.
std::string html_page(const std::string& title, const std::string& body);

// A value as the axis format shows it (the same text as the ticks and tooltips).
std::string format_value(double v, AxisFormat format);

}  // namespace mighty::compress
