// What the server counts, in Prometheus's text format (GET /metrics): counters and histograms keyed by their
// labels. Thread-safe; every method takes the one lock briefly.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mighty::serve {

class Metrics {
 public:
  // Latency buckets, seconds (the histograms' upper bounds; +Inf is implied).
  static const std::vector<double>& latency_buckets();

  // A response: its model (or cascade) name ("" when the route named none) and HTTP status.
  void request(const std::string& model, int status);
  // A refused request, by kind (malformed_json, wrong_size, unknown_model, queue_full, ...).
  void error(const std::string& model, const std::string& kind);
  // Seconds spent by one request in a stage: "total", "queue", "run", or a cascade's "student"/"teacher".
  void latency(const std::string& model, const std::string& stage, double seconds);
  void batch(const std::string& model, int64_t examples);  // one batch the model ran
  // A cascade's examples: how many the student answered and how many went to the teacher.
  void cascade(const std::string& name, int64_t by_student, int64_t by_teacher);
  void reload(const std::string& model, bool accepted);  // a file (re)loaded or refused

  // The exposition; gauges the server knows at that moment are passed in.
  std::string prometheus(int64_t queue_depth, int64_t queue_limit, int64_t models_loaded) const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket (not cumulative), the last one +Inf
    double sum = 0.0;
    uint64_t count = 0;
  };
  void observe(const std::string& family, const std::string& labels, double value,
               const std::vector<double>& bounds);
  mutable std::mutex mutex_;
  // family -> rendered label set -> value
  std::map<std::string, std::map<std::string, double>> counters_;
  std::map<std::string, std::map<std::string, Histogram>> histograms_;
};

// A label value with Prometheus's escapes (backslash, quote, newline).
std::string prometheus_label(const std::string& value);

}  // namespace mighty::serve
