#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "compress/passes/accuracy_control.h"
#include "compress/passes/export.h"
#include "compress/passes/quantize.h"
#include "compress/pipeline/pipeline.h"
#include "compress/recipe/recipe.h"
#include "compress/train/evaluate.h"
#include "helpers.h"
#include "onnx_io/onnxruntime.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/format/inspect.h"
#include "runtime/io/atomic_file.h"

using namespace mighty;
using namespace mighty::compress;

namespace {

std::string temp_dir(const std::string& name) { return testing::fresh_temp_dir("quant", name); }

const Dataset& small_data() {
  static const Dataset data = testing::small_fashion_mnist(512, 100, 300, 200, /*augment=*/false, 3);
  return data;
}

// A CNN with BatchNorm whose statistics are not the identity (a few training-mode passes move them).
GraphModule small_cnn() {
  ModelSpec s;
  s.arch = "cnn";
  CnnBlockSpec a, b;
  a.channels = 6;
  b.channels = 8;
  b.pool = "max";
  s.blocks = {a, b};
  s.hidden = {16};
  s = fill_from_data(s, small_data(), "/student/model");
  torch::manual_seed(11);
  GraphModule m(build_graph(s));
  {
    torch::NoGradGuard no_grad;
    m->train();
    for (int i = 0; i < 3; ++i) m->forward(torch::randn({16, 1, 28, 28}) * 1.5 + 0.3);
    for (auto& kv : m->named_parameters()) {
      if (kv.key().find(".bn.") != std::string::npos) kv.value().uniform_(0.5, 1.5);
    }
  }
  m->eval();
  return m;
}

Session session_of(ArtifactWriter& w, const std::string& name) {
  return Session(Artifact::from_bytes(w.serialize(), name), 1);
}

}  // namespace

TEST_CASE("observers on known distributions") {
  torch::manual_seed(5);
  SECTION("uniform [0, 10]: every method keeps about the full range") {
    const auto x = torch::rand({200000}) * 10.0;
    RangeObserver o;
    o.observe_range(x);
    o.observe_histogram(x);
    REQUIRE(o.range("minmax", 0).second == Approx(10.0).epsilon(1e-3));
    REQUIRE(o.range("minmax", 0).first == 0.0f);
    REQUIRE(o.range("percentile", 99.0).second == Approx(9.9).epsilon(0.01));
    for (const char* m : {"mse", "entropy"}) REQUIRE(o.range(m, 0).second > 9.0);
  }
  SECTION("a few huge outliers: minmax follows them, the others clip them") {
    auto x = torch::randn({100000}).abs();
    x[0] = 1000.0f;
    RangeObserver o;
    o.observe_range(x);
    o.observe_histogram(x);
    REQUIRE(o.range("minmax", 0).second == Approx(1000.0));
    REQUIRE(o.range("percentile", 99.99).second < 50.0);
    REQUIRE(o.range("mse", 0).second < 1000.0);
    REQUIRE(o.range("entropy", 0).second < 1000.0);
  }
  SECTION("symmetric data keeps both ends; the range always contains 0") {
    const auto x = torch::randn({100000}) + 5.0;  // all positive
    RangeObserver o;
    o.observe_range(x);
    o.observe_histogram(x);
    REQUIRE(o.range("minmax", 0).first == 0.0f);
    const auto y = torch::randn({100000});
    RangeObserver p;
    p.observe_range(y);
    p.observe_histogram(y);
    const auto [lo, hi] = p.range("percentile", 99.9);
    REQUIRE(lo == Approx(-3.09).margin(0.1));  // the 0.1% tails of a standard normal
    REQUIRE(hi == Approx(3.09).margin(0.1));
  }
  REQUIRE(glob_match("features.*.conv", "features.12.conv"));
  REQUIRE_FALSE(glob_match("features.?.conv", "features.12.conv"));
  REQUIRE(glob_match("out", "out"));
  REQUIRE_FALSE(glob_match("out", "output"));
}

TEST_CASE("BatchNorm folding keeps the function") {
  GraphModule m = small_cnn();
  GraphModule folded = fold_batchnorm(m);
  for (const auto& n : folded->graph().nodes()) REQUIRE(n.op != OpKind::kBatchNorm2d);
  REQUIRE(folded->graph().nodes().size() + 2 == m->graph().nodes().size());
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, 1, 28, 28});
  REQUIRE(torch::allclose(folded->forward(x), m->forward(x), 1e-4, 1e-4));
}

TEST_CASE("the LibTorch simulation is what the runtime computes: static and dynamic") {
  GraphModule m = small_cnn();
  for (const char* activations : {"static", "dynamic"}) {
    INFO(activations);
    QuantizeSpec spec;
    spec.activations = activations;
    spec.observer = "mse";
    nlohmann::json report;
    QuantizedModel qm = quantize_model(m, spec, small_data(), report);
    REQUIRE(report["layers"].size() == 4);  // 2 convs, 1 hidden linear, out
    for (const auto& l : report["layers"]) REQUIRE(l["sqnr_db"].get<double>() > 15.0);
    auto writer = qm.export_artifact({{"producer", "test"}});
    const Session s = session_of(writer, "q.mighty");
    torch::NoGradGuard no_grad;
    const auto x = normalize_images(small_data().images.test_x, 0.286, 0.353);
    const auto sim = qm.forward(x);
    const auto xc = x.contiguous();
    const auto out = s.run(xc.data_ptr<float>(), x.size(0));
    const auto rt = torch::from_blob(const_cast<float*>(out.data()), sim.sizes(), torch::kFloat32);
    // Identical logits, bit for bit: every int8 layer is computed by the same expressions, and what lies
    // between them here (ReLU, max pooling, flatten) is exact.
    REQUIRE(torch::equal(sim, rt));
    if (std::string(activations) == "static") {
      REQUIRE(s.graph().nodes()[1].attrs["quant"]["output_relu"] ==
              true);  // conv -> ReLU -> conv stays uint8
      // conv -> ReLU -> max pool -> flatten -> Linear too (the Linear reads the channels-last map).
      REQUIRE(report["layers"][1]["layer"] == "features.1.conv");
      REQUIRE(report["layers"][1]["output"] == "uint8 (ReLU fused)");
    }
    // And the simulation tracks the float model.
    const auto fp = m->forward(x);
    REQUIRE(sim.argmax(1).eq(fp.argmax(1)).to(torch::kFloat32).mean().item<double>() > 0.9);
  }
}

TEST_CASE("a session checks uint8 outputs: parameters and the chain to the next conv") {
  GraphModule m = small_cnn();
  QuantizeSpec spec;
  nlohmann::json report;
  QuantizedModel qm = quantize_model(m, spec, small_data(), report);
  REQUIRE(report["layers"][0]["output"] == "uint8 (ReLU fused)");
  auto error_with = [&](const std::function<void(nlohmann::json&)>& edit,
                        const char* node = "features.0.conv") {
    auto writer = qm.export_artifact({{"producer", "test"}});
    for (auto& n : writer.metadata()["graph"]["nodes"])
      if (n["name"] == node) edit(n["attrs"]["quant"]);
    try {
      session_of(writer, "bad.mighty");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  REQUIRE(error_with([](nlohmann::json&) {}) == "no error");
  REQUIRE_THAT(error_with([](nlohmann::json& q) { q["output_zero_point"] = 300; }),
               Catch::Contains(
                   "metadata /graph/nodes/1/attrs/quant/output_zero_point: expected an integer in [0, 255]"));
  REQUIRE_THAT(error_with([](nlohmann::json& q) { q["output_scale"] = -1.0; }),
               Catch::Contains(
                   "bad.mighty: metadata /graph/nodes/1/attrs/quant/output_scale: expected a finite number"));
  REQUIRE_THAT(error_with([](nlohmann::json& q) { q["output_scale"] = 0.123; }),
               Catch::Contains("which is not a static int8 conv with input scale 0.123"));
  REQUIRE_THAT(error_with([](nlohmann::json& q) { q["output_relu"] = false; }),
               Catch::Contains("quant.output_relu must say whether a ReLU follows"));
  REQUIRE_THAT(error_with([](nlohmann::json& q) { q["output_zero_point"] = 3; }, "features.1.conv"),
               Catch::Contains("which is not a static int8 Linear (after Flatten) with input scale"));
}

TEST_CASE("quantize options: exclusions, overrides, bias correction, SmoothQuant") {
  GraphModule m = small_cnn();
  QuantizeSpec spec;
  spec.exclude = {"out"};
  spec.overrides = {{"features.0.*", "minmax", "dynamic"}};
  nlohmann::json report;
  QuantizedModel qm = quantize_model(m, spec, small_data(), report);
  REQUIRE(report["excluded"] == nlohmann::json::array({"out"}));
  REQUIRE(report["layers"].size() == 3);
  REQUIRE(report["layers"][0]["activations"] == "dynamic");
  REQUIRE(report["layers"][1]["observer"] == "percentile");
  auto writer = qm.export_artifact({{"producer", "test"}});
  const Session s = session_of(writer, "q.mighty");
  const auto& nodes = s.graph().nodes();
  REQUIRE_FALSE(nodes.back().attrs.contains("quant"));  // "out" stays fp32
  REQUIRE(nodes[1].attrs["quant"]["activation"] == "dynamic");

  spec.exclude = {"nothing.*"};
  REQUIRE_THROWS_WITH(
      quantize_model(m, spec, small_data(), report),
      Catch::Contains("exclude pattern 'nothing.*' matches no Linear, Conv2d or EmbeddingBag layer"));

  // Bias correction moves biases and does not make the calibration error worse.
  QuantizeSpec plain;
  plain.bias_correction = false;
  nlohmann::json r0, r1;
  quantize_model(m, plain, small_data(), r0);
  plain.bias_correction = true;
  quantize_model(m, plain, small_data(), r1);
  REQUIRE(r1["layers"].back()["sqnr_db"].get<double>() >= r0["layers"].back()["sqnr_db"].get<double>() - 0.5);
  REQUIRE(r1["layers"][0]["bias_correction_max"].get<double>() > 0.0);

  // SmoothQuant on a transformer keeps the float function and lowers the LayerNorm outputs' peaks.
  ModelSpec t;
  t.arch = "transformer";
  t.d_model = 16;
  t.heads = 2;
  t.layers = 1;
  t.ffn = 32;
  t.input_shape = {12};
  t.vocab = 20;
  t.classes = 20;
  torch::manual_seed(4);
  GraphModule lm(build_graph(t));
  {
    torch::NoGradGuard no_grad;
    auto w = lm->named_parameters()["blocks.0.ln2.weight"];
    w.uniform_(0.5, 1.5);
    w[3] = 30.0f;  // an outlier channel
  }
  Dataset text;
  text.kind = "text";
  text.text.context = 12;
  text.text.train = torch::randint(0, 20, {2000}, torch::kInt64);
  QuantizeSpec sq;
  sq.activations = "dynamic";
  sq.smoothquant_alpha = 0.5;
  sq.calibration_examples = 32;
  nlohmann::json rs;
  QuantizedModel smoothed = quantize_model(lm, sq, text, rs);
  // ln1 -> attn.in_proj (the attention split for int8 projections), ln2 -> fc1 and ln_f -> out
  REQUIRE(rs["smoothquant"].size() == 3);
  REQUIRE(rs["int8_attention"] == true);
  const auto& first = rs["smoothquant"][0];
  REQUIRE(first["act_max_after"].get<double>() < first["act_max_before"].get<double>());
  torch::NoGradGuard no_grad;
  const auto x = text.text.train.slice(0, 0, 48).view({4, 12});
  REQUIRE(torch::allclose(smoothed.fp32()->forward(x), lm->forward(x), 1e-3, 1e-3));
}

// A small CNN trained a little on small_data (about 70% validation accuracy), so quantization errors show.
GraphModule trained_small_cnn() {
  GraphModule m = small_cnn();
  const Dataset& d = small_data();
  torch::manual_seed(5);
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(0.003));
  m->train();
  const auto x = normalize_images(d.images.train_x, d.images.mean, d.images.std);
  for (int step = 0; step < 60; ++step) {
    const int64_t lo = (step * 64) % (x.size(0) - 64);
    opt.zero_grad();
    torch::nn::functional::cross_entropy(m->forward(x.slice(0, lo, lo + 64)),
                                         d.images.train_y.slice(0, lo, lo + 64))
        .backward();
    opt.step();
  }
  m->eval();
  return m;
}

TEST_CASE(
    "accuracy control: the most sensitive layers fall back until the validation drop is within the limit") {
  GraphModule m = trained_small_cnn();
  QuantizeSpec spec;
  spec.percentile = 55.0;  // ranges clipped hard: static activations lose accuracy
  spec.bias_correction = false;
  nlohmann::json report;
  // Off: the plain quantization, no section.
  quantize_with_accuracy_control(m, spec, small_data(), report);
  REQUIRE_FALSE(report.contains("accuracy_control"));
  // A loose limit: measured, nothing falls back.
  spec.accuracy_control.max_drop = 100.0;
  quantize_with_accuracy_control(m, spec, small_data(), report);
  const auto& loose = report["accuracy_control"];
  REQUIRE(loose["met"] == true);
  REQUIRE(loose["steps"].empty());
  const double fp32 = loose["fp32"].get<double>(), int8 = loose["int8"].get<double>();
  INFO("validation accuracy fp32 " << fp32 << ", int8 " << int8);
  REQUIRE(fp32 - int8 > 1.0);  // the clipped ranges cost accuracy: the fallback has something to do
  // A tight limit with dynamic fallback: layers go dynamic in order of their measured gain until it holds.
  spec.accuracy_control = {std::max(0.0, (fp32 - int8) / 4.0), "dynamic"};
  QuantizedModel qm = quantize_with_accuracy_control(m, spec, small_data(), report);
  const auto& a = report["accuracy_control"];
  REQUIRE(a["met"] == true);
  REQUIRE(a["final"]["drop"].get<double>() <= spec.accuracy_control.max_drop);
  REQUIRE_FALSE(a["steps"].empty());
  std::vector<std::pair<double, std::string>> by_gain;
  for (const auto& l : a["sensitivity"])
    by_gain.emplace_back(l["gain"].get<double>(), l["layer"].get<std::string>());
  std::stable_sort(by_gain.begin(), by_gain.end(),
                   [](const auto& x, const auto& y) { return x.first > y.first; });
  for (size_t i = 0; i < a["steps"].size(); ++i) REQUIRE(a["steps"][i]["layer"] == by_gain[i].second);
  // The returned model is the last step's: those layers dynamic, its quality the one reported.
  for (const auto& name : a["final"]["layers_fallen_back"]) {
    bool dynamic = false;
    for (const auto& l : report["layers"])
      dynamic = dynamic || (l["layer"] == name && l["activations"] == "dynamic");
    REQUIRE(dynamic);
  }
  const auto measured = evaluate_forward([&](const torch::Tensor& x) { return qm.forward(x); }, small_data(),
                                         Split::kValidation);
  REQUIRE(100.0 * measured["accuracy"].get<double>() == Approx(a["final"]["quality"].get<double>()));
  // fp32 fallback with no drop allowed: it ends when the int8 model is as good as the float one.
  spec.accuracy_control = {0.0, "fp32"};
  quantize_with_accuracy_control(m, spec, small_data(), report);
  REQUIRE(report["accuracy_control"]["final"]["drop"].get<double>() <= 0.0);
  REQUIRE(report["excluded"].size() == report["accuracy_control"]["final"]["layers_fallen_back"].size());
}

TEST_CASE("compress end to end on a small subset: distill, quantize, export, verify with criteria") {
  const std::string ort = onnx_io::ort_node_modules(data_cache_dir());  // scripts/setup installed it there
  const std::string cache = temp_dir("cache");
  const testing::ScopedEnv data_cache("MIGHTY_DATA", cache);
  std::filesystem::create_directories(std::filesystem::path(onnx_io::ort_node_modules(cache)).parent_path());
  std::filesystem::create_directory_symlink(ort, onnx_io::ort_node_modules(cache));
  auto recipe_with = [](const std::string& criteria) {
    return R"({"name": "e2e", "seed": 2,
    "data": {"kind": "images", "validation_size": 100, "train_limit": 512, "test_limit": 300,
             "calibration_size": 200, "normalize": {"mean": 0.286, "std": 0.353}},
    "teacher": {"model": {"arch": "cnn", "blocks": [{"channels": 8, "pool": "max"}], "hidden": [32]},
                "train": {"lr": 0.003, "batch_size": 64, "steps": 24}},
    "student": {"from_teacher": {"width": 0.5}},
    "stages": [{"kind": "distill", "train": {"lr": 0.003, "batch_size": 64, "steps": 24}},
               {"kind": "quantize", "observer": "percentile"},
               {"kind": "export"},
               {"kind": "verify", "latency_runs": 3)" +
           criteria + R"(}],
    "eval": {"latency_runs": 3, "throughput_batch": 4}})";
  };
  JobOptions o;
  o.quiet = true;
  o.out_dir = temp_dir("e2e");
  const auto report = run_compress(parse_recipe(recipe_with(R"(, "max_bytes": 100000000)"), "e2e.json"), o);
  REQUIRE(report["verify"]["pass"] == true);
  const auto& models = report["models"];
  REQUIRE(models.size() == 6);
  REQUIRE(models[3]["role"] == "student_int8");
  REQUIRE(models[3]["engine"] == "runtime int8");
  REQUIRE(models[2]["engine"] == "runtime fp32");
  // The runtime's fp32 path gives LibTorch's accuracy; int8 stays close.
  REQUIRE(models[2]["accuracy"] == models[1]["accuracy"]);
  REQUIRE(std::abs(models[3]["accuracy"].get<double>() - models[1]["accuracy"].get<double>()) < 0.05);
  REQUIRE(report["verify"]["simulation_vs_runtime"]["agreement"].get<double>() >= 0.999);
  // ONNX Runtime on the exported files: the same predictions, int8 layers on integer kernels.
  REQUIRE(models[4]["engine"] == "onnxruntime fp32");
  REQUIRE(models[5]["engine"] == "onnxruntime int8");
  REQUIRE(std::abs(models[4]["accuracy"].get<double>() - models[2]["accuracy"].get<double>()) <= 1.0 / 300);
  REQUIRE(models[4]["identical_to_mighty"].get<double>() >= 0.99);
  REQUIRE(models[5]["identical_to_mighty"].get<double>() >= 0.99);
  REQUIRE(models[5]["version"] == "1.30.0");
  const auto ops = models[5]["optimized_op_types"].get<std::vector<std::string>>();
  REQUIRE(std::count(ops.begin(), ops.end(), "com.microsoft:QLinearConv") == 1);
  REQUIRE(std::count(ops.begin(), ops.end(), "com.microsoft:QGemm") == 2);
  REQUIRE(std::count(ops.begin(), ops.end(), "Conv") + std::count(ops.begin(), ops.end(), "Gemm") == 0);
  for (const auto& m : {models[4], models[5]}) {
    const auto& p = m["paired"];
    REQUIRE(p["speedup_b1"].get<double>() == Approx(p["onnxruntime"]["latency_ms_b1"].get<double>() /
                                                    p["mighty"]["latency_ms_b1"].get<double>()));
    REQUIRE(p["overhead_ms_b1"].get<double>() > 0);
    REQUIRE(p["speedup_b1_net"].get<double>() <= p["speedup_b1"].get<double>());
    REQUIRE(m["latency_ms_b1"] == p["onnxruntime"]["latency_ms_b1"]);
  }
  // The speedup comes from alternating teacher / int8 runs.
  const auto& paired = report["verify"]["speedup_paired"];
  REQUIRE(paired["runs"] == 3);
  REQUIRE(paired["ratio"].get<double>() ==
          Approx(paired["a_ms"].get<double>() / paired["b_ms"].get<double>()));
  REQUIRE(report["verify"]["speedup_b1"] == paired["ratio"]);
  // The cascade: chosen on validation at >= the teacher's validation accuracy, measured on test; its
  // threshold travels in the shipped file (for mighty-run serve) when the target was reachable.
  const auto& cascade = report["verify"]["cascade"];
  REQUIRE(cascade["selected_on"] == "validation");
  REQUIRE(std::filesystem::exists(o.out_dir + "/teacher.fp32.mighty"));
  const auto& cv = cascade["validation"];
  if (cv["met"].get<bool>()) {
    REQUIRE(cv["accuracy"].get<double>() >= cv["target_accuracy"].get<double>());
    // Against the teacher, with a margin: gains minus losses clear `margin_se` standard errors.
    const double gain = cv["gain"].get<double>(), loss = cv["loss"].get<double>();
    REQUIRE(gain - loss >= cv["margin_se"].get<double>() * std::sqrt(gain + loss));
  }
  REQUIRE(cv["target"] == "teacher");
  REQUIRE(cv["margin_se"] == 1.0);
  REQUIRE(cv["target_accuracy"] == cv["teacher_accuracy"]);
  // report.html draws the cascade's curve (21 points and the chosen threshold).
  const std::string html = read_file(o.out_dir + "/report.html");
  REQUIRE(html.find("data-chart=\"cascade_accuracy\" data-points=\"22\"") != std::string::npos);
  REQUIRE(cascade["test"]["examples"] == 300);
  for (const char* k : {"teacher", "student", "cascade"})
    REQUIRE(cascade["cpu_seconds_per_million"][k].get<double>() > 0);
  REQUIRE(cascade["curve_test"].size() == 21);
  REQUIRE(cascade["curve_test"][0]["student_share"] == 1.0);   // threshold 0: all to the student
  REQUIRE(cascade["curve_test"][20]["student_share"] == 0.0);  // above 1: all to the fallback
  REQUIRE(cascade["curve_test"][20]["accuracy"] == cascade["test"]["fallback_accuracy"]);
  // The fallback mixes the two models' probabilities. Default cascade_blend "auto": the student weights 0.1
  // ... 0.5 are tried on validation, the one with the most (gain - loss) against the teacher (the smaller on
  // a tie) is used unless it is worse than the teacher by more than the margin; then the teacher alone.
  REQUIRE(cv["blend_requested"] == "auto");
  REQUIRE(cv["blend_tried"].size() == 5);
  double best = -1e9, best_blend = 0.0;
  for (size_t k = 0; k < 5; ++k) {
    const auto& m = cv["blend_tried"][k];
    REQUIRE(m["blend"].get<double>() == Approx(0.1 * static_cast<double>(k + 1)));
    REQUIRE(m["accuracy"].get<double>() - cv["teacher_accuracy"].get<double>() ==
            Approx((m["gain"].get<double>() - m["loss"].get<double>()) / 100.0));  // 100 validation examples
    if (m["gain"].get<double>() - m["loss"].get<double>() > best) {
      best = m["gain"].get<double>() - m["loss"].get<double>();
      best_blend = m["blend"].get<double>();
    }
  }
  REQUIRE(cv["blend_checked"] == best_blend);
  const double mix_gain = cv["blend_gain"].get<double>(), mix_loss = cv["blend_loss"].get<double>();
  REQUIRE(mix_gain - mix_loss == best);
  REQUIRE(cascade["blend"] == (mix_gain - mix_loss >= -std::sqrt(mix_gain + mix_loss) ? best_blend : 0.0));
  if (cascade["blend"] == 0.0)
    REQUIRE(cascade["test"]["fallback_accuracy"] == cascade["test"]["teacher_accuracy"]);
  // The shipped file carries its verify results.
  const Artifact shipped = Artifact::open(o.out_dir + "/model.mighty");
  REQUIRE(shipped.metadata()["verify"]["pass"] == true);
  REQUIRE(shipped.metadata()["role"] == "student_int8");
  REQUIRE(shipped.metadata().contains("cascade") == cv["met"].get<bool>());
  if (cv["met"].get<bool>()) {
    REQUIRE(shipped.metadata()["cascade"]["threshold"] == cascade["threshold"]);
    REQUIRE(shipped.metadata()["cascade"]["blend"] == cascade["blend"]);
  }
  REQUIRE(shipped.metadata()["onnx"]["files"] == nlohmann::json({"model.onnx", "student.fp32.onnx"}));
  REQUIRE(shipped.metadata()["onnx"]["checked_by"] == "onnxruntime 1.30.0");
  REQUIRE_THAT(describe_artifact(shipped),
               Catch::Contains("model.onnx, student.fp32.onnx (checked by onnxruntime 1.30.0)"));
  REQUIRE_THAT(read_file(o.out_dir + "/report.md"),
               Catch::Contains("| student | student_int8 | runtime int8 |") &&
                   Catch::Contains("| student | student_int8 | onnxruntime int8 |") &&
                   Catch::Contains("The graph ONNX Runtime optimized from"));

  // Criteria that cannot be met fail the run after the report is written.
  o.out_dir = temp_dir("e2e_fail");
  REQUIRE_THROWS_WITH(run_compress(parse_recipe(recipe_with(R"(, "max_bytes": 100, "min_speedup": 1000000,
                                                "min_speedup_vs_onnxruntime": 1000000, "cascade_blend": 0.25)"),
                                                "e2e.json"),
                                   o),
                      Catch::Contains("verify: criteria not met: min_speedup") &&
                          Catch::Contains("max_bytes") && Catch::Contains("min_speedup_vs_onnxruntime"));
  REQUIRE_THAT(read_file(o.out_dir + "/report.md"), Catch::Contains("**FAIL**"));
  {  // A fixed cascade_blend is used unless the mix is worse than the teacher on validation by the margin.
    const auto failed = nlohmann::json::parse(read_file(o.out_dir + "/report.json"))["verify"]["cascade"];
    const auto& fv = failed["validation"];
    REQUIRE(fv["blend_requested"] == 0.25);
    REQUIRE(fv["blend_tried"].empty());
    const double g = fv["blend_gain"].get<double>(), l = fv["blend_loss"].get<double>();
    REQUIRE(fv["blend_accuracy"].get<double>() - fv["teacher_accuracy"].get<double>() ==
            Approx((g - l) / 100.0));
    REQUIRE(failed["blend"] == (g - l >= -std::sqrt(g + l) ? 0.25 : 0.0));
  }
  // A criterion that needs ONNX Runtime where it cannot run: one line saying why, before the measurements.
  o.out_dir = temp_dir("e2e_no_ort");
  REQUIRE_THROWS_WITH(
      run_compress(
          parse_recipe(recipe_with(R"(, "onnxruntime": false, "min_speedup_vs_onnxruntime": 2)"), "e2e.json"),
          o),
      Catch::Contains("min_speedup_vs_onnxruntime needs ONNX Runtime") &&
          Catch::Contains("verify.onnxruntime is off"));
}

TEST_CASE("stage order is checked") {
  auto err = [](const std::string& stages) {
    try {
      parse_recipe(R"({"data": {"kind": "images"}, "teacher": {"model": {"arch": "mlp", "hidden": [4]},
        "train": {"steps": 1}}, "student": {"from_teacher": {}}, "stages": )" +
                       stages + "}",
                   "s.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  REQUIRE(err(R"([{"kind": "quantize"}, {"kind": "export"}, {"kind": "verify"}])") == "no error");
  REQUIRE_THAT(err(R"([{"kind": "export"}, {"kind": "quantize"}])"),
               Catch::Contains("/stages/1/kind: 'quantize' cannot come after 'export'"));
  REQUIRE_THAT(err(R"([{"kind": "quantize"}, {"kind": "verify"}])"),
               Catch::Contains("/stages/1/kind: 'verify' checks the exported artifact"));
  REQUIRE_THAT(err(R"([{"kind": "quantize", "observer": "kl"}])"),
               Catch::Contains("/stages/0/observer: 'kl' is not one of"));
}
