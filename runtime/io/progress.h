// Progress for long work: a redrawn bar with rate and ETA on a terminal, plain periodic lines in logs and CI.
// MIGHTY_PROGRESS=bar|plain|off overrides the choice.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mighty {

class Progress {
 public:
  enum class Style { kBar, kPlain, kOff };

  // `total` units of work named `unit` (e.g. "step"); `out` defaults to stderr.
  Progress(std::string label, int64_t total, std::string unit = "it", std::FILE* out = stderr);
  Progress(std::string label, int64_t total, std::string unit, std::FILE* out, Style style);
  ~Progress();

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` units are complete; `status` is appended (e.g. "loss 0.412 acc 88.1%").
  void update(int64_t done, std::string_view status = {});
  // Prints a line of its own (e.g. an epoch summary) without breaking the bar.
  void note(std::string_view line);
  // Ends the bar at `done` units (draws the final state and a newline on a terminal).
  void finish(int64_t done, std::string_view status = {});

  static Style style_for(std::FILE* out);

 private:
  void draw(int64_t done, std::string_view status, bool final_line);

  std::string label_;
  int64_t total_;
  std::string unit_;
  std::FILE* out_;
  Style style_;
  int64_t start_done_ = -1;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int last_plain_decile_ = -1;
  bool finished_ = false;
};

// "1:05:09" / "4:02" style durations.
std::string format_duration(double seconds);

}  // namespace mighty
