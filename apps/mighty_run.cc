// mighty-run: the deployable side. Links only the runtime and the kernels, never LibTorch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "kernels/cpu_features.h"
#include "runtime/artifact.h"
#include "runtime/atomic_file.h"
#include "runtime/error.h"
#include "runtime/idx.h"
#include "runtime/input_spec.h"
#include "runtime/inspect.h"
#include "runtime/session.h"
#include "runtime/tasks.h"

int main(int argc, char** argv) {
  CLI::App app{"mighty-run: run, evaluate, benchmark and inspect .mighty artifacts (no LibTorch)"};
  app.set_version_flag("--version", "mighty-run 0.1.0");
  app.require_subcommand(1);
  auto* cpu = app.add_subcommand("cpu", "Show the CPU features detected and the kernel path that will run");
  std::string artifact_path;
  auto* inspect =
      app.add_subcommand("inspect", "Verify an artifact and describe it: provenance, graph, tensors, sizes");
  inspect->add_option("artifact", artifact_path, ".mighty file")->required();
  std::string eval_artifact, images, labels, text;
  int64_t limit = 0;
  auto* eval = app.add_subcommand("eval", "Accuracy on an IDX image/label pair, or bits/char on a text file");
  eval->add_option("artifact", eval_artifact, ".mighty file")->required();
  eval->add_option("--images", images, "IDX images (plain or .gz)");
  eval->add_option("--labels", labels, "IDX labels (plain or .gz)");
  eval->add_option("--text", text, "UTF-8 text file (language models)");
  std::string documents;
  eval->add_option("--documents", documents,
                   "Folder of documents in subfolders named after the labels (document classifiers)");
  eval->add_option("--limit", limit, "Evaluate only the first N images / characters")
      ->check(CLI::NonNegativeNumber);
  std::string bench_artifact;
  int64_t runs = 200, batch = 64;
  auto* bench = app.add_subcommand("bench", "Batch-1 latency (median, p99) and throughput of an artifact");
  bench->add_option("artifact", bench_artifact, ".mighty file")->required();
  bench->add_option("--runs", runs, "Timed batch-1 runs")->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  bench->add_option("--batch", batch, "Throughput batch size")->check(CLI::Range(int64_t{1}, int64_t{65536}));
  std::string bench_email;
  bench->add_option("--email", bench_email, "Document classifiers: time this raw email end to end");
  std::string run_artifact, run_images, prompt;
  int64_t run_limit = 10, count = 200, top_k = 0;
  double temperature = 0.0;
  uint64_t seed = 1;
  auto* run =
      app.add_subcommand("run", "Classify IDX images, or continue a text prompt with a language model");
  run->add_option("artifact", run_artifact, ".mighty file")->required();
  run->add_option("--images", run_images, "IDX images to classify (plain or .gz)");
  run->add_option("--limit", run_limit, "Images to classify (default 10)")->check(CLI::PositiveNumber);
  run->add_option("--prompt", prompt, "Text to continue (language models)");
  std::vector<std::string> emails;
  run->add_option("--email", emails, "Raw email / text files to classify (document classifiers)");
  run->add_option("--tokens", count, "Characters to generate (default 200)")->check(CLI::PositiveNumber);
  run->add_option("--temperature", temperature, "0 = greedy (default); else sample")
      ->check(CLI::Range(0.0, 100.0));
  run->add_option("--top-k", top_k, "Sample among the k most likely characters (0 = all)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--seed", seed, "Sampling seed");
  int threads = 1;
  for (auto* cmd : {eval, bench, run}) {
    cmd->add_option("--threads", threads, "Threads for the int8 kernels (default 1)")
        ->check(CLI::Range(1, 256));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (cpu->parsed()) {
      using namespace mighty::kernels;
      const auto& f = cpu_features();
      fmt::print("cpu: {}\n", f.brand.empty() ? "(unknown)" : f.brand);
      fmt::print("avx2 {} fma {} avx512f {} avx512bw {} avx512vl {} avx512vnni {} (os: ymm {} zmm {})\n",
                 f.avx2, f.fma, f.avx512f, f.avx512bw, f.avx512vl, f.avx512vnni, f.os_saves_avx,
                 f.os_saves_avx512);
      fmt::print("best path: {}; selected: {}\n", isa_name(f.best_supported()), isa_name(selected_isa()));
      return 0;
    }
    if (run->parsed()) {
      const mighty::Session session = mighty::Session::load(run_artifact, threads);
      const auto spec = mighty::InputSpec::from_json(
          session.artifact().metadata().value("input", nlohmann::json()), run_artifact);
      if (spec.kind == "documents") {
        if (emails.empty()) throw mighty::Error("run: a document classifier needs --email FILE...");
        const auto& labels = session.artifact().metadata().value("labels", nlohmann::json::array());
        for (const auto& path : emails) {
          const std::string raw = mighty::read_file(path);
          const auto ids = session.document_ids(raw);
          const auto scores = session.run_document(raw);
          std::vector<double> p(scores.begin(), scores.end());
          const double top = *std::max_element(p.begin(), p.end());
          double sum = 0.0;
          for (double& v : p) sum += (v = std::exp(v - top));
          const int64_t best = std::max_element(p.begin(), p.end()) - p.begin();
          const std::string name = best < static_cast<int64_t>(labels.size()) && labels[best].is_string()
                                       ? labels[best].get<std::string>()
                                       : std::to_string(best);
          fmt::print("{}\t{}\t{:.4f}\t({} tokens)\n", path, name, p[best] / sum, ids.size());
        }
        return 0;
      }
      if (spec.kind == "text") {
        if (prompt.empty()) throw mighty::Error("run: a language model needs --prompt");
        double rate = 0.0;
        const std::string text =
            mighty::generate(session, spec, prompt, count, temperature, top_k, seed, &rate);
        fmt::print("{}{}\n", prompt, text);
        fmt::print(stderr, "generated {} characters at {:.1f} characters/s\n", count, rate);
        return 0;
      }
      if (run_images.empty()) throw mighty::Error("run: an image model needs --images");
      const mighty::IdxArray images = mighty::read_idx(run_images);
      const int64_t per = spec.example_size();
      if (images.dims.empty() || static_cast<int64_t>(images.data.size()) / images.dims[0] != per) {
        throw mighty::Error(fmt::format("{}: images do not have the model's {} pixels", run_images, per));
      }
      const auto& labels = session.artifact().metadata().value("labels", nlohmann::json::array());
      const int64_t n = std::min<int64_t>(run_limit, images.dims[0]);
      const auto x = spec.images(images.data.data(), n);
      const auto logits = session.run(x.data(), n);
      const int64_t classes = session.output_size();
      for (int64_t i = 0; i < n; ++i) {
        const float* row = logits.data() + i * classes;
        const int64_t best = std::max_element(row, row + classes) - row;
        const std::string name = best < static_cast<int64_t>(labels.size()) && labels[best].is_string()
                                     ? labels[best].get<std::string>()
                                     : std::to_string(best);
        fmt::print("{}\t{}\t{}\n", i, best, name);
      }
      return 0;
    }
    if (eval->parsed()) {
      const mighty::Session session = mighty::Session::load(eval_artifact, threads);
      const auto spec = mighty::InputSpec::from_json(
          session.artifact().metadata().value("input", nlohmann::json()), eval_artifact);
      nlohmann::json result;
      if (!documents.empty()) {
        result = mighty::evaluate_documents(session, documents, limit);
        fmt::print("accuracy {:.2f}% over {} documents", 100.0 * result["accuracy"].get<double>(),
                   result["examples"].get<int64_t>());
        if (result.contains("precision")) {
          fmt::print("; {} precision {:.2f}%, recall {:.2f}%", result["positive_class"].get<std::string>(),
                     100.0 * result["precision"].get<double>(), 100.0 * result["recall"].get<double>());
        }
        fmt::print("\n");
      } else if (!text.empty()) {
        result = mighty::evaluate_text(session, spec, text, limit);
        fmt::print("bits/char {:.4f} over {} characters\n", result["bits_per_char"].get<double>(),
                   result["characters"].get<int64_t>());
      } else {
        if (images.empty() || labels.empty())
          throw mighty::Error("eval needs --images and --labels, or --text");
        result = mighty::evaluate_images(session, spec, images, labels, limit);
        fmt::print("accuracy {:.2f}% over {} images\n", 100.0 * result["accuracy"].get<double>(),
                   result["examples"].get<int64_t>());
      }
      return 0;
    }
    if (bench->parsed()) {
      const mighty::Session session = mighty::Session::load(bench_artifact, threads);
      const auto spec = mighty::InputSpec::from_json(
          session.artifact().metadata().value("input", nlohmann::json()), bench_artifact);
      const auto r = mighty::benchmark(session, spec, runs, batch,
                                       bench_email.empty() ? "" : mighty::read_file(bench_email));
      fmt::print(
          "latency, batch 1: {:.3f} ms median, {:.3f} ms p99 ({} runs, {} thread{})\n"
          "throughput, batch {}: {:.0f} examples/s\n",
          r["latency_ms_b1"].get<double>(), r["latency_ms_b1_p99"].get<double>(), runs, threads,
          threads == 1 ? "" : "s", batch, r["throughput_per_s"].get<double>());
      return 0;
    }
    if (inspect->parsed()) {
      fmt::print("{}", mighty::describe_artifact(mighty::Artifact::open(artifact_path)));
      return 0;
    }
    for (auto* sub : app.get_subcommands()) {
      fmt::print(stderr, "mighty-run: error: '{}' is not available in this version\n", sub->get_name());
    }
    return 2;
  } catch (const mighty::Error& e) {
    fmt::print(stderr, "mighty-run: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "mighty-run: error: {}\n", e.what());
    return 1;
  }
}
