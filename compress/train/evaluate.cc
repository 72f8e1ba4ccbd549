#include "compress/train/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/io/timing.h"
#include "runtime/text/document_model.h"

namespace mighty::compress {
namespace {

std::pair<torch::Tensor, torch::Tensor> image_split(const Dataset& d, Split split) {
  switch (split) {
    case Split::kTrain:
      return {d.images.train_x, d.images.train_y};
    case Split::kValidation:
      return {d.images.val_x, d.images.val_y};
    case Split::kTest:
      return {d.images.test_x, d.images.test_y};
    case Split::kCalibration:
      return {d.images.calib_x, d.images.calib_y};
  }
  throw Error("unknown split");
}

const torch::Tensor& text_split(const Dataset& d, Split split) {
  switch (split) {
    case Split::kTrain:
      return d.text.train;
    case Split::kValidation:
      return d.text.val;
    case Split::kTest:
    case Split::kCalibration:
      return d.text.test;
  }
  throw Error("unknown split");
}

nlohmann::json evaluate_classifier(const Forward& model, const Dataset& d, Split split, bool detailed) {
  const auto [x, y] = image_split(d, split);
  const int64_t n = x.size(0), classes = d.classes();
  if (n == 0) return {{"examples", 0}};
  auto confusion = torch::zeros({classes, classes}, torch::kInt64);
  double loss_sum = 0.0;
  constexpr int64_t kBatch = 500;
  for (int64_t lo = 0; lo < n; lo += kBatch) {
    const int64_t hi = std::min(lo + kBatch, n);
    auto logits = model(normalize_images(x.slice(0, lo, hi), d.images.mean, d.images.std));
    auto labels = y.slice(0, lo, hi);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    auto pred = logits.argmax(1);
    confusion.view({-1}).index_add_(0, labels * classes + pred, torch::ones({hi - lo}, torch::kInt64));
  }
  const double correct = confusion.diagonal().sum().item<double>();
  nlohmann::json m = {{"examples", n}, {"accuracy", correct / n}, {"loss", loss_sum / n}};
  if (classes == 2) {
    // Binary: precision and recall of the second class (spam, say) reported on their own.
    const double tp = confusion[1][1].item<double>(), fp = confusion[0][1].item<double>();
    const double fn = confusion[1][0].item<double>();
    m["positive_class"] = d.images.class_names.size() == 2 ? d.images.class_names[1] : std::string("1");
    m["precision"] = tp + fp > 0 ? tp / (tp + fp) : 0.0;
    m["recall"] = tp + fn > 0 ? tp / (tp + fn) : 0.0;
  }
  if (detailed) {
    std::vector<double> per_class;
    std::vector<std::vector<int64_t>> matrix;
    for (int64_t c = 0; c < classes; ++c) {
      const double total = confusion[c].sum().item<double>();
      per_class.push_back(total > 0 ? confusion[c][c].item<double>() / total : 0.0);
      auto row = confusion[c].contiguous();
      matrix.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + classes);
    }
    m["per_class_accuracy"] = per_class;
    m["confusion"] = matrix;
    m["class_names"] = d.images.class_names;
  }
  return m;
}

nlohmann::json evaluate_lm(const Forward& model, const Dataset& d, Split split) {
  const auto& ids = text_split(d, split);
  const int64_t ctx = d.text.context;
  const int64_t windows = (ids.size(0) - 1) / ctx;
  double loss_sum = 0.0;
  int64_t tokens = 0;
  constexpr int64_t kBatch = 32;
  for (int64_t w = 0; w < windows; w += kBatch) {
    const int64_t b = std::min(kBatch, windows - w);
    auto x = ids.slice(0, w * ctx, (w + b) * ctx).view({b, ctx});
    auto y = ids.slice(0, w * ctx + 1, (w + b) * ctx + 1).view({b, ctx});
    auto logits = model(x);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    tokens += b * ctx;
  }
  const double loss = loss_sum / std::max<int64_t>(tokens, 1);
  return {{"characters", tokens}, {"loss", loss}, {"bits_per_char", loss / std::log(2.0)}};
}

}  // namespace

torch::Tensor example_input(const Dataset& d, int64_t batch) {
  if (d.classifies()) {
    auto x = d.images.test_x.slice(0, 0, std::min<int64_t>(batch, d.images.test_x.size(0)));
    while (x.size(0) < batch) x = torch::cat({x, x}).slice(0, 0, batch);
    return normalize_images(x, d.images.mean, d.images.std);
  }
  const int64_t ctx = d.text.context;
  auto ids = d.text.test.slice(0, 0, ctx).view({1, ctx});
  return ids.expand({batch, ctx}).contiguous();
}

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kValidation:
      return "validation";
    case Split::kTest:
      return "test";
    case Split::kCalibration:
      return "calibration";
  }
  return "?";
}

nlohmann::json evaluate_forward(const Forward& forward, const Dataset& data, Split split, bool detailed) {
  torch::NoGradGuard no_grad;
  auto m = data.classifies() ? evaluate_classifier(forward, data, split, detailed)
                             : evaluate_lm(forward, data, split);
  m["split"] = split_name(split);
  return m;
}

nlohmann::json evaluate_split(GraphModule& model, const Dataset& data, Split split, bool detailed) {
  const bool was_training = model->is_training();
  model->eval();
  auto m = evaluate_forward([&](const torch::Tensor& x) { return model->forward(x); }, data, split, detailed);
  if (was_training) model->train();
  return m;
}

Forward remembered(Forward forward) {
  struct Memory {
    std::vector<std::pair<torch::Tensor, torch::Tensor>> calls;
    size_t next = 0;
  };
  auto memory = std::make_shared<Memory>();
  return [forward = std::move(forward), memory](const torch::Tensor& x) {
    auto& m = *memory;
    auto same = [&](size_t i) {
      return m.calls[i].first.sizes() == x.sizes() && torch::equal(m.calls[i].first, x);
    };
    if (m.next < m.calls.size() && same(m.next)) return m.calls[m.next++].second;
    if (m.next == m.calls.size() && !m.calls.empty() && same(0)) {  // the next pass over the split
      m.next = 1;
      return m.calls[0].second;
    }
    auto y = forward(x);
    if (m.next == m.calls.size()) {  // the first pass: remember
      m.calls.emplace_back(x, y);
      ++m.next;
    }
    return y;
  };
}

nlohmann::json compare_models(const Forward& teacher, const Forward& student, const Dataset& data,
                              Split split) {
  torch::NoGradGuard no_grad;
  double agree = 0.0, kl_sum = 0.0;
  int64_t count = 0;
  auto accumulate = [&](const torch::Tensor& x) {
    auto t = teacher(x), s = student(x);
    t = t.reshape({-1, t.size(-1)});
    s = s.reshape({-1, s.size(-1)});
    agree += t.argmax(1).eq(s.argmax(1)).sum().item<double>();
    auto log_t = torch::log_softmax(t, 1);
    kl_sum += (log_t.exp() * (log_t - torch::log_softmax(s, 1))).sum().item<double>();
    count += t.size(0);
  };
  if (data.classifies()) {
    const auto [x, y] = image_split(data, split);
    constexpr int64_t kBatch = 500;
    for (int64_t lo = 0; lo < x.size(0); lo += kBatch) {
      accumulate(normalize_images(x.slice(0, lo, std::min(lo + kBatch, x.size(0))), data.images.mean,
                                  data.images.std));
    }
  } else {
    const auto& ids = text_split(data, split);
    const int64_t ctx = data.text.context, windows = (ids.size(0) - 1) / ctx;
    constexpr int64_t kBatch = 32;
    for (int64_t w = 0; w < windows; w += kBatch) {
      const int64_t b = std::min(kBatch, windows - w);
      accumulate(ids.slice(0, w * ctx, (w + b) * ctx).view({b, ctx}));
    }
  }
  const double n = static_cast<double>(std::max<int64_t>(count, 1));
  return {{"split", split_name(split)}, {"count", count}, {"agreement", agree / n}, {"kl", kl_sum / n}};
}

std::string summarize_metrics(const nlohmann::json& m) {
  if (m.contains("accuracy")) {
    return fmt::format("accuracy {:.2f}%, loss {:.4f}", 100.0 * m["accuracy"].get<double>(),
                       m["loss"].get<double>());
  }
  if (m.contains("bits_per_char")) {
    return fmt::format("bits/char {:.4f}, loss {:.4f}", m["bits_per_char"].get<double>(),
                       m["loss"].get<double>());
  }
  return "no examples";
}

nlohmann::json measure_speed(GraphModule& model, const Dataset& data, const EvalSpec& spec) {
  model->eval();
  return measure_speed([&](const torch::Tensor& x) { return model->forward(x); }, data, spec);
}

nlohmann::json measure_speed(const Forward& forward, const Dataset& data, const EvalSpec& spec) {
  torch::NoGradGuard no_grad;
  const auto one = example_input(data, 1);
  const auto batch = example_input(data, spec.throughput_batch);
  auto speed = measure_latency([&] { forward(one); }, [&] { forward(batch); }, spec.latency_runs,
                               spec.throughput_batch);
  speed["threads"] = torch::get_num_threads();
  return speed;
}

nlohmann::json paired_latency(const Forward& a, const Forward& b, const Dataset& data, int64_t runs) {
  torch::NoGradGuard no_grad;
  using clock = std::chrono::steady_clock;
  const auto one = example_input(data, 1);
  for (int i = 0; i < 10; ++i) {
    a(one);
    b(one);
  }
  std::vector<double> ta, tb;
  auto time = [&](const Forward& f) {
    const auto t0 = clock::now();
    f(one);
    return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  };
  for (int64_t i = 0; i < runs; ++i) {
    ta.push_back(time(a));
    tb.push_back(time(b));
  }
  const double ma = percentile(ta, 0.5), mb = percentile(tb, 0.5);
  return {{"a_ms", ma}, {"b_ms", mb}, {"ratio", ma / mb}, {"runs", runs}};
}

std::string quality_cell(const nlohmann::json& m) {
  if (m.contains("accuracy") && m.contains("precision")) {
    return fmt::format("{:.2f}% ({} precision {:.2f}%, recall {:.2f}%)", 100.0 * m["accuracy"].get<double>(),
                       m.value("positive_class", "positive"), 100.0 * m["precision"].get<double>(),
                       100.0 * m["recall"].get<double>());
  }
  if (m.contains("accuracy")) return fmt::format("{:.2f}%", 100.0 * m["accuracy"].get<double>());
  if (m.contains("bits_per_char")) return fmt::format("{:.4f} bits/char", m["bits_per_char"].get<double>());
  return "-";
}

Forward session_forward(const Session& s) {
  // A sequence model over documents runs each row alone, without its -1 padding.
  const bool one_by_one = s.has_input_spec() && s.input_spec().kind == "documents" && !pads_documents(s);
  return [&s, one_by_one](const torch::Tensor& x) {
    const int64_t batch = x.size(0);
    std::vector<float> out;
    std::vector<int64_t> shape;
    if (x.scalar_type() == torch::kInt64 && one_by_one) {
      const auto ids = x.contiguous();
      const int64_t length = x.size(1);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t* row = ids.data_ptr<int64_t>() + b * length;
        const auto real = static_cast<int64_t>(std::find(row, row + length, int64_t{-1}) - row);
        const std::vector<float> y = s.run_tokens(row, 1, real);
        out.insert(out.end(), y.begin(), y.end());
      }
      shape = {batch, s.output_size()};
    } else if (x.scalar_type() == torch::kInt64) {
      const auto ids = x.contiguous();
      const int64_t length = x.size(1);
      out = s.run_tokens(ids.data_ptr<int64_t>(), batch, length);
      const bool per_token = s.graph().nodes()[static_cast<size_t>(s.graph().output())].shape.size() > 1;
      shape = per_token ? std::vector<int64_t>{batch, length, s.output_size(length) / length}
                        : std::vector<int64_t>{batch, s.output_size(length)};
    } else {
      const auto in = x.to(torch::kFloat32).contiguous();
      out = s.run(in.data_ptr<float>(), batch);
      shape = {batch, s.output_size()};
    }
    return torch::from_blob(out.data(), shape, torch::kFloat32).clone();
  };
}

}  // namespace mighty::compress
