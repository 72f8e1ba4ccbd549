#include "serve/metrics.h"

#include <fmt/format.h>

namespace mighty::serve {
namespace {

const std::vector<double>& batch_buckets() {
  static const std::vector<double> b = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return b;
}

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

const Family kFamilies[] = {
    {"mighty_requests_total", "counter", "HTTP responses by model (or cascade) and status code"},
    {"mighty_request_errors_total", "counter", "Refused requests by model and kind of error"},
    {"mighty_request_duration_seconds", "histogram",
     "Seconds per request by model and stage (total, queue, run; a cascade's student and teacher)"},
    {"mighty_batch_examples", "histogram", "Examples per batch a model ran"},
    {"mighty_cascade_examples_total", "counter", "A cascade's examples by the stage that answered them"},
    {"mighty_model_reloads_total", "counter", "Model files loaded (accepted) or refused, by model"},
};

}  // namespace

const std::vector<double>& Metrics::latency_buckets() {
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
  return b;
}

std::string prometheus_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Metrics::request(const std::string& model, int status) {
  std::lock_guard lock(mutex_);
  counters_["mighty_requests_total"]
           [fmt::format("model=\"{}\",code=\"{}\"", prometheus_label(model), status)] += 1;
}

void Metrics::error(const std::string& model, const std::string& kind) {
  std::lock_guard lock(mutex_);
  counters_["mighty_request_errors_total"]
           [fmt::format("model=\"{}\",kind=\"{}\"", prometheus_label(model), prometheus_label(kind))] += 1;
}

void Metrics::observe(const std::string& family, const std::string& labels, double value,
                      const std::vector<double>& bounds) {
  Histogram& h = histograms_[family][labels];
  if (h.counts.empty()) h.counts.assign(bounds.size() + 1, 0);
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++h.counts[i];
  h.sum += value;
  ++h.count;
}

void Metrics::latency(const std::string& model, const std::string& stage, double seconds) {
  std::lock_guard lock(mutex_);
  observe("mighty_request_duration_seconds",
          fmt::format("model=\"{}\",stage=\"{}\"", prometheus_label(model), prometheus_label(stage)), seconds,
          latency_buckets());
}

void Metrics::batch(const std::string& model, int64_t examples) {
  std::lock_guard lock(mutex_);
  observe("mighty_batch_examples", fmt::format("model=\"{}\"", prometheus_label(model)),
          static_cast<double>(examples), batch_buckets());
}

void Metrics::cascade(const std::string& name, int64_t by_student, int64_t by_teacher) {
  std::lock_guard lock(mutex_);
  auto& c = counters_["mighty_cascade_examples_total"];
  c[fmt::format("cascade=\"{}\",stage=\"student\"", prometheus_label(name))] +=
      static_cast<double>(by_student);
  c[fmt::format("cascade=\"{}\",stage=\"teacher\"", prometheus_label(name))] +=
      static_cast<double>(by_teacher);
}

void Metrics::reload(const std::string& model, bool accepted) {
  std::lock_guard lock(mutex_);
  counters_["mighty_model_reloads_total"][fmt::format("model=\"{}\",result=\"{}\"", prometheus_label(model),
                                                      accepted ? "accepted" : "refused")] += 1;
}

std::string Metrics::prometheus(int64_t queue_depth, int64_t queue_limit, int64_t models_loaded) const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const Family& f : kFamilies) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.type);
    if (std::string(f.type) == "counter") {
      const auto it = counters_.find(f.name);
      if (it == counters_.end()) continue;
      for (const auto& [labels, value] : it->second)
        out += fmt::format("{}{{{}}} {}\n", f.name, labels, value);
      continue;
    }
    const auto it = histograms_.find(f.name);
    if (it == histograms_.end()) continue;
    const auto& bounds = std::string(f.name) == "mighty_batch_examples" ? batch_buckets() : latency_buckets();
    for (const auto& [labels, h] : it->second) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h.counts.size(); ++i) {
        cumulative += h.counts[i];
        const std::string le = i < bounds.size() ? fmt::format("{}", bounds[i]) : std::string("+Inf");
        out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", f.name, labels, le, cumulative);
      }
      out +=
          fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", f.name, labels, h.sum, f.name, labels, h.count);
    }
  }
  out += fmt::format(
      "# HELP mighty_queue_examples Examples waiting in the models' queues\n# TYPE mighty_queue_examples "
      "gauge\n"
      "mighty_queue_examples {}\n"
      "# HELP mighty_queue_limit_examples The most examples the queues hold before 503\n"
      "# TYPE mighty_queue_limit_examples gauge\nmighty_queue_limit_examples {}\n"
      "# HELP mighty_models_loaded Models being served\n# TYPE mighty_models_loaded gauge\n"
      "mighty_models_loaded {}\n",
      queue_depth, queue_limit, models_loaded);
  return out;
}

}  // namespace mighty::serve
