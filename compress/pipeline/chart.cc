#include "compress/pipeline/chart.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace mighty::compress {
namespace {

constexpr double kWidth = 720, kHeight = 380;
constexpr double kLeft = 74, kRight = 190, kTop = 40, kBottom = 52;  // the plot area's margins
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                   "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};

struct Range {
  double lo, hi;
};

// The data range of one axis, padded by 5% (a single value gets +-10% of itself, or +-1 at zero).
Range padded(double lo, double hi, bool log) {
  if (log) {
    lo = std::log10(lo);
    hi = std::log10(hi);
  }
  double pad = (hi - lo) * 0.05;
  if (pad == 0.0) pad = log ? 0.1 : (lo == 0.0 ? 1.0 : std::abs(lo) * 0.1);
  return {lo - pad, hi + pad};
}

// Ticks over [lo, hi] (in axis units: log10 for a log axis) at 1, 2 or 5 times a power of ten, 4-8 of them.
std::vector<double> ticks(Range r, bool log) {
  std::vector<double> out;
  if (log && r.hi - r.lo >= 1.0) {  // decades, with 2 and 5 between them when there are few
    const bool fine = r.hi - r.lo < 3.0;
    for (int e = static_cast<int>(std::floor(r.lo)); e <= static_cast<int>(std::ceil(r.hi)); ++e) {
      for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        const double v = std::log10(m) + e;
        if (v >= r.lo && v <= r.hi) out.push_back(v);
      }
    }
    return out;
  }
  const double lo = log ? std::pow(10.0, r.lo) : r.lo, hi = log ? std::pow(10.0, r.hi) : r.hi;
  const double raw = (hi - lo) / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    const double snapped = std::abs(v) < step * 1e-9 ? 0.0 : v;
    if (!log || snapped > 0) out.push_back(log ? std::log10(snapped) : snapped);
  }
  return out;
}

}  // namespace

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_value(double v, AxisFormat format) {
  switch (format) {
    case AxisFormat::kPercent:
      return fmt::format("{:.{}f}%", 100.0 * v, std::abs(v) < 0.1 ? 2 : 1);
    case AxisFormat::kBytes:
      if (v >= 1e6) return fmt::format("{:.3g} MB", v / 1e6);
      if (v >= 1e3) return fmt::format("{:.3g} KB", v / 1e3);
      return fmt::format("{:.0f} B", v);
    case AxisFormat::kMs:
      return fmt::format("{:.3g} ms", v);
    case AxisFormat::kNumber:
      if (std::abs(v) >= 1e4 && std::abs(v) < 1e12) return fmt::format("{:.0f}", v);  // no exponent
      break;
  }
  return fmt::format("{:.4g}", v);
}

namespace {

bool usable(const Chart& c, const ChartPoint& p) {
  return std::isfinite(p.x) && std::isfinite(p.y) && (!c.log_x || p.x > 0) && (!c.log_y || p.y > 0);
}

// Data coordinates to the plot area's.
struct Frame {
  Range xr, yr;
  bool log_x, log_y;
  double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  double axis_x(double t) const { return kLeft + (t - xr.lo) / (xr.hi - xr.lo) * pw; }
  double x(double v) const { return axis_x(log_x ? std::log10(v) : v); }
  double axis_y(double t) const { return kTop + ph - (t - yr.lo) / (yr.hi - yr.lo) * ph; }
  double y(double v) const { return axis_y(log_y ? std::log10(v) : v); }
};

// The plot's frame, grid, ticks and axis labels.
std::string draw_axes(const Chart& c, const Frame& f) {
  std::string out =
      fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
                  kLeft, kTop, f.pw, f.ph);
  for (double t : ticks(f.xr, c.log_x)) {
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\">{4}</text>\n",
        f.axis_x(t), kTop, kTop + f.ph, kTop + f.ph + 16,
        escape_html(format_value(c.log_x ? std::pow(10.0, t) : t, c.x_format)));
  }
  for (double t : ticks(f.yr, c.log_y)) {
    out += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" font-size=\"11\" text-anchor=\"end\">{5}</text>\n",
        kLeft, f.axis_y(t), kLeft + f.pw, kLeft - 6, f.axis_y(t) + 4,
        escape_html(format_value(c.log_y ? std::pow(10.0, t) : t, c.y_format)));
  }
  return out +
         fmt::format(
             "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}{}</text>\n"
             "<text x=\"16\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
             "{})\">{}</text>\n",
             kLeft + f.pw / 2, kHeight - 12, escape_html(c.x_label), c.log_x ? " (log scale)" : "",
             kTop + f.ph / 2, kTop + f.ph / 2, escape_html(c.y_label + (c.log_y ? " (log scale)" : "")));
}

// Series: lines first, then points on top (with tooltips; highlighted ones labelled); the legend on the
// right.
std::string draw_series(const Chart& c, const Frame& f) {
  std::string out;
  for (size_t si = 0; si < c.series.size(); ++si) {
    const auto& s = c.series[si];
    const char* color = kColors[si % std::size(kColors)];
    if (s.line) {
      std::string pts;
      for (const auto& p : s.points)
        if (usable(c, p)) pts += fmt::format("{:.1f},{:.1f} ", f.x(p.x), f.y(p.y));
      out += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", pts,
                         color, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    }
    const double ly = kTop + 8 + 20.0 * static_cast<double>(si);
    out += fmt::format(
        "<g class=\"legend\"><rect x=\"{}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\">{}</text></g>\n",
        kWidth - kRight + 14, ly, color, kWidth - kRight + 32, ly + 10, escape_html(s.name));
  }
  for (size_t si = 0; si < c.series.size(); ++si) {
    const auto& s = c.series[si];
    if (!s.markers) continue;
    const char* color = kColors[si % std::size(kColors)];
    for (const auto& p : s.points) {
      if (!usable(c, p)) continue;
      const double x = f.x(p.x), y = f.y(p.y);
      const std::string tip =
          fmt::format("{}{}{}: {} = {}, {} = {}", s.name, p.label.empty() ? "" : " — ", p.label, c.x_label,
                      format_value(p.x, c.x_format), c.y_label, format_value(p.y, c.y_format));
      out += fmt::format(
          "<circle class=\"point{}\" data-chart=\"{}\" data-series=\"{}\" data-label=\"{}\" cx=\"{:.1f}\" "
          "cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"{}><title>{}</title></circle>\n",
          p.highlight ? " highlight" : "", escape_html(c.id), escape_html(s.name), escape_html(p.label), x, y,
          p.highlight ? 7 : 4.5, color, p.highlight ? " stroke=\"#000\" stroke-width=\"2\"" : "",
          escape_html(tip));
      if (p.highlight) {  // the label on the side with room for it (about 7 units per character)
        const bool left = x + 10 + 7.0 * static_cast<double>(p.label.size()) > kLeft + f.pw;
        out += fmt::format(
            "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"12\" font-weight=\"bold\" "
            "text-anchor=\"{}\">{}</text>\n",
            left ? x - 10 : x + 10, y - 10, left ? "end" : "start", escape_html(p.label));
      }
    }
  }
  return out;
}

}  // namespace

std::string render_svg(const Chart& c) {
  // The points that can be drawn, and the range they span.
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  int drawable = 0, left_out = 0;
  for (const auto& s : c.series) {
    for (const auto& p : s.points) {
      if (!usable(c, p)) {
        left_out += s.markers;
        continue;
      }
      x_lo = std::min(x_lo, p.x);
      x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y);
      y_hi = std::max(y_hi, p.y);
      drawable += s.markers;
    }
  }
  std::string out = fmt::format(
      "<svg class=\"chart\" id=\"{0}\" data-chart=\"{0}\" data-points=\"{1}\" viewBox=\"0 0 {2} {3}\" "
      "width=\"{2}\" height=\"{3}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{4}\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{2}\" height=\"{3}\" fill=\"#fff\"/>\n"
      "<text x=\"{5}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{4}</text>\n",
      escape_html(c.id), drawable, kWidth, kHeight, escape_html(c.title), kLeft);
  if (x_lo > x_hi)
    return out + fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\">no data</text>\n</svg>\n", kLeft,
                             kHeight / 2);
  const Frame f{padded(x_lo, x_hi, c.log_x), padded(y_lo, y_hi, c.log_y), c.log_x, c.log_y};
  out += draw_axes(c, f) + draw_series(c, f);
  if (left_out > 0)
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#a00\">{} point(s) without a value left "
        "out</text>\n",
        kLeft, kHeight - 30, left_out);
  return out + "</svg>\n";
}

std::string html_page(const std::string& title, const std::string& body) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "img-src data:\">\n"
      "<title>{}</title>\n<style>\n"
      "body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1520px; }}\n"
      "table {{ border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }}\n"
      "th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}\n"
      "th:first-child, td:first-child {{ text-align: left; }}\n"
      ".charts {{ display: flex; flex-wrap: wrap; gap: 12px; }}\n"
      ".chart {{ border: 1px solid #ddd; max-width: 100%; height: auto; }}\n"
      ".pass {{ color: #070; }} .fail {{ color: #b00; }}\n"
      "pre {{ background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 12px; }}\n"
      "</style></head>\n<body>\n{}</body></html>\n",
      escape_html(title), body);
}

}  // namespace mighty::compress
