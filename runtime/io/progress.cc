#include "runtime/io/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

namespace mighty {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  const int64_t h = total / 3600, m = (total / 60) % 60, s = total % 60;
  if (h > 0) return fmt::format("{}:{:02}:{:02}", h, m, s);
  return fmt::format("{}:{:02}", m, s);
}

Progress::Style Progress::style_for(std::FILE* out) {
  if (const char* env = std::getenv("MIGHTY_PROGRESS")) {
    const std::string v = env;
    if (v == "bar") return Style::kBar;
    if (v == "plain") return Style::kPlain;
    if (v == "off") return Style::kOff;
  }
  return ::isatty(::fileno(out)) ? Style::kBar : Style::kPlain;
}

Progress::Progress(std::string label, int64_t total, std::string unit, std::FILE* out)
    : Progress(std::move(label), total, std::move(unit), out, style_for(out)) {}

Progress::Progress(std::string label, int64_t total, std::string unit, std::FILE* out, Style style)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      unit_(std::move(unit)),
      out_(out),
      style_(style) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_ && style_ == Style::kBar) std::fputc('\n', out_);
}

void Progress::update(int64_t done, std::string_view status) {
  if (style_ == Style::kOff) return;
  if (start_done_ < 0) start_done_ = done;
  const auto now = std::chrono::steady_clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (style_ == Style::kBar) {
    if (since_draw < 0.1 && done < total_) return;
  } else {
    // Plain: a line at every tenth of the work, and at least every 30 s in between.
    const int decile = static_cast<int>(10 * std::min(done, total_) / total_);
    if (decile == last_plain_decile_ && since_draw < 30.0) return;
    last_plain_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, status, false);
}

void Progress::note(std::string_view line) {
  if (style_ == Style::kOff) return;
  if (style_ == Style::kBar) fmt::print(out_, "\r\033[2K");
  fmt::print(out_, "{}: {}\n", label_, line);
  std::fflush(out_);
}

void Progress::finish(int64_t done, std::string_view status) {
  if (finished_) return;
  finished_ = true;
  if (style_ == Style::kOff) return;
  draw(done, status, true);
}

void Progress::draw(int64_t done, std::string_view status, bool final_line) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t counted = done - std::max<int64_t>(start_done_, 0);
  const double rate = elapsed > 0 ? counted / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : NAN;
  const double fraction = std::clamp(static_cast<double>(done) / total_, 0.0, 1.0);
  const std::string timing = final_line ? fmt::format("{} elapsed", format_duration(elapsed))
                                        : fmt::format("ETA {}", format_duration(eta));
  if (style_ == Style::kBar) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, ' ');
    fmt::print(out_, "\r\033[2K{} [{}] {:3.0f}% {}/{} {:.1f} {}/s {} {}", label_, bar, 100 * fraction, done,
               total_, rate, unit_, timing, status);
    if (final_line) std::fputc('\n', out_);
  } else {
    fmt::print(out_, "{}: {}/{} {}s ({:.0f}%) {:.1f} {}/s {} {}\n", label_, done, total_, unit_,
               100 * fraction, rate, unit_, timing, status);
  }
  std::fflush(out_);
}

}  // namespace mighty
