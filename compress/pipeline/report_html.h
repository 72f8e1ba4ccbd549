// report.html: the run's report for people — the models side by side (table, quality against size and
// against batch-1 latency), each training run's validation curve, the cascade's threshold curve with the
// stored threshold marked, and the whole report.md as text. Self-contained (pipeline/chart.h): it opens
// offline.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace mighty::compress {

std::string report_html(const nlohmann::json& report, const std::string& markdown);

}  // namespace mighty::compress
