// mighty-run: the deployable side. Links only the runtime and the kernels, never LibTorch. One function per
// command: add_<command> declares its options, <command>() runs it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "apps/args.h"
#include "kernels/cpu_features.h"
#include "kernels/thread_pool.h"
#include "runtime/error.h"
#include "runtime/exec/session.h"
#include "runtime/exec/tasks.h"
#include "runtime/format/artifact.h"
#include "runtime/format/inspect.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/idx.h"
#include "runtime/text/document_model.h"
#ifdef MIGHTY_WITH_SERVE
#include "serve/server.h"
#endif

namespace {

struct Args {
  std::string artifact;
  int threads = 1;
  // eval
  std::string images, labels, text, documents;
  int64_t limit = 0;
  // bench
  int64_t runs = 200, batch = 64;
  std::string bench_email, bench_images, bench_text;
  // run
  std::string run_images, prompt;
  std::vector<std::string> emails;
  int64_t run_limit = 10, count = 200, top_k = 0;
  double temperature = 0.0;
  uint64_t seed = 1;
  bool logits = false;
#ifdef MIGHTY_WITH_SERVE
  mighty::serve::ServeOptions serve;
#endif
};

// The model's raw outputs, each as a C99 hex float (exact: two builds agree bit for bit iff the text does).
std::string hex_outputs(const float* v, int64_t n) {
  std::string s;
  for (int64_t i = 0; i < n; ++i) s += fmt::format("\t{:a}", v[i]);
  return s;
}

void add_threads(mighty::args::Command& cmd, Args& a) {
  cmd.option("--threads", &a.threads, "Threads for the int8 kernels (default 1)", 1, 256)
      .check("--threads", [](const std::string& v) {
        return mighty::kernels::ThreadPool::has_threads() || v == "1"
                   ? std::string()
                   : std::string("this build (WebAssembly without threads) runs on 1 thread");
      });
}

mighty::args::Command& add_eval(mighty::args::Parser& app, Args& a) {
  auto& eval = app.add("eval", "Accuracy on an IDX image/label pair, or bits/char on a text file");
  eval.positional("artifact", &a.artifact, ".mighty file")
      .option("--images", &a.images, "IDX images (plain or .gz)")
      .option("--labels", &a.labels, "IDX labels (plain or .gz)")
      .option("--text", &a.text, "UTF-8 text file (language models)")
      .option("--documents", &a.documents,
              "Folder of documents in subfolders named after the labels (document classifiers)")
      .option("--limit", &a.limit, "Evaluate only the first N images / characters", 0, INT64_MAX);
  add_threads(eval, a);
  return eval;
}

mighty::args::Command& add_bench(mighty::args::Parser& app, Args& a) {
  auto& bench = app.add("bench", "Batch-1 latency (median, p99) and throughput of an artifact");
  bench.positional("artifact", &a.artifact, ".mighty file")
      .option("--runs", &a.runs, "Timed batch-1 runs", 1, 1000000)
      .option("--batch", &a.batch, "Throughput batch size", 1, 65536)
      .option("--images", &a.bench_images, "Image models: time these IDX images (default: synthetic)")
      .option("--text", &a.bench_text, "Language models: time windows of this text (default: synthetic)")
      .option("--email", &a.bench_email, "Document classifiers: time this raw email end to end");
  add_threads(bench, a);
  return bench;
}

mighty::args::Command& add_run(mighty::args::Parser& app, Args& a) {
  auto& run = app.add("run", "Classify IDX images, or continue a text prompt with a language model");
  run.positional("artifact", &a.artifact, ".mighty file")
      .option("--images", &a.run_images, "IDX images to classify (plain or .gz)")
      .option("--limit", &a.run_limit, "Images to classify (default 10)", 1, INT64_MAX)
      .option("--prompt", &a.prompt, "Text to continue (language models)")
      .options("--email", &a.emails, "Raw email / text files to classify (document classifiers)")
      .flag("--logits", &a.logits,
            "Images and emails: also print the raw outputs, as hex floats (exact, for comparing builds)")
      .option("--tokens", &a.count, "Characters to generate (default 200)", 1, INT64_MAX)
      .option("--temperature", &a.temperature, "0 = greedy (default); else sample", 0.0, 100.0)
      .option("--top-k", &a.top_k, "Sample among the k most likely characters (0 = all)", 0, INT64_MAX)
      .option("--seed", &a.seed, "Sampling seed");
  add_threads(run, a);
  return run;
}

#ifdef MIGHTY_WITH_SERVE
mighty::args::Command& add_serve(mighty::args::Parser& app, Args& a) {
  auto& serve = app.add(
      "serve",
      "Serve every .mighty in a folder over HTTP (JSON; micro-batching, cascades, hot reload, metrics)");
  auto& o = a.serve;
  serve.positional("dir", &o.dir, "Folder of NAME.mighty files (and cascades.json)")
      .option("--host", &o.host, "Address to listen on (default 127.0.0.1: this machine only)")
      .option("--port", &o.port, "Port (0: any free port; see --port-file)", 0, 65535)
      .option("--port-file", &o.port_file, "Write the port here once listening")
      .option("--threads", &o.threads, "Kernel threads per model (default 1)", 1, 256)
      .option(
          "--workers", &o.workers,
          "Batches of one model run at once (default 2; one that finds the kernel pool busy runs on its own "
          "thread)",
          1, 64)
      .option("--http-threads", &o.http_threads, "Connections served at once (default 16)", 1, 1024)
      .option("--max-batch", &o.max_batch, "Most examples per model run (default 64)", 1, 65536)
      .option("--max-delay-us", &o.max_delay_us,
              "Longest a queued request waits for a batch to fill (default 0: run what is queued)", 0,
              1000000)
      .option("--max-queue", &o.max_queue, "Examples queued over all models before 503 (default 4096)", 1,
              int64_t{1} << 30)
      .option("--max-body-bytes", &o.max_body_bytes, "Largest request body (default 16 MiB)", 64,
              int64_t{1} << 32)
      .option("--max-items", &o.max_items, "Most instances per request (default 1024)", 1, int64_t{1} << 20)
      .option("--poll-ms", &o.poll_ms, "How often the folder is checked for new files (default 500)", 10,
              3600000);
  return serve;
}
#endif

int cpu() {
  using namespace mighty::kernels;
  const auto& f = cpu_features();
  fmt::print("cpu: {}\n", f.brand.empty() ? "(unknown)" : f.brand);
#if defined(__aarch64__)
  fmt::print("neon {} dotprod {} i8mm {} (getauxval AT_HWCAP, AT_HWCAP2)\n", f.neon, f.dotprod, f.i8mm);
#elif defined(__wasm__)
  fmt::print("simd128 {} (compiled in; an engine without it does not load the module); threads {}\n",
             f.simd128, ThreadPool::has_threads());
#else
  fmt::print("avx2 {} fma {} avx512f {} avx512bw {} avx512vl {} avx512vnni {} (os: ymm {} zmm {})\n", f.avx2,
             f.fma, f.avx512f, f.avx512bw, f.avx512vl, f.avx512vnni, f.os_saves_avx, f.os_saves_avx512);
  fmt::print("amx-tile {} amx-int8 {} (os: tile state {}; linux permission {}): {}\n", f.amx_tile, f.amx_int8,
             f.os_saves_amx, f.amx_permitted, f.amx_detail);
#endif
  fmt::print("best path: {}; selected: {}\n", isa_name(f.best_supported()), isa_name(selected_isa()));
  return 0;
}

std::string label_of(const mighty::Session& session, int64_t best) {
  const auto& labels = session.artifact().labels();
  return best < static_cast<int64_t>(labels.size()) ? labels[static_cast<size_t>(best)]
                                                    : std::to_string(best);
}

void run_emails(const mighty::Session& session, const Args& a) {
  if (a.emails.empty()) throw mighty::Error("run: a document classifier needs --email FILE...");
  const mighty::DocumentModel model(session);
  for (const auto& path : a.emails) {
    const std::string raw = mighty::read_file(path);
    const auto ids = model.ids(raw);
    const auto scores = model.run(raw);
    const std::vector<double> p =
        mighty::softmax_probabilities(scores.data(), static_cast<int64_t>(scores.size()));
    const int64_t best = std::max_element(p.begin(), p.end()) - p.begin();
    fmt::print("{}\t{}\t{:.4f}\t({} tokens){}\n", path, label_of(session, best), p[best], ids.size(),
               a.logits ? hex_outputs(scores.data(), static_cast<int64_t>(scores.size())) : "");
  }
}

void run_images(const mighty::Session& session, const Args& a) {
  if (a.run_images.empty()) throw mighty::Error("run: an image model needs --images");
  const mighty::InputSpec& spec = session.input_spec();
  const mighty::IdxArray images = mighty::read_idx(a.run_images);
  const int64_t per = spec.example_size();
  if (images.dims.empty() || static_cast<int64_t>(images.data.size()) / images.dims[0] != per)
    throw mighty::Error(fmt::format("{}: images do not have the model's {} pixels", a.run_images, per));
  const int64_t n = std::min<int64_t>(a.run_limit, images.dims[0]);
  const auto x = spec.images(images.data.data(), n);
  const auto logits = session.run(x.data(), n);
  const int64_t classes = session.output_size();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * classes;
    const int64_t best = std::max_element(row, row + classes) - row;
    fmt::print("{}\t{}\t{}{}\n", i, best, label_of(session, best), a.logits ? hex_outputs(row, classes) : "");
  }
}

int run(const Args& a) {
  const mighty::Session session = mighty::Session::load(a.artifact, a.threads);
  const mighty::InputSpec& spec = session.input_spec();
  if (spec.kind == "documents") {
    run_emails(session, a);
  } else if (spec.kind == "text") {
    if (a.prompt.empty()) throw mighty::Error("run: a language model needs --prompt");
    double rate = 0.0;
    const std::string text =
        mighty::generate(session, spec, a.prompt, a.count, a.temperature, a.top_k, a.seed, &rate);
    fmt::print("{}{}\n", a.prompt, text);
    fmt::print(stderr, "generated {} characters at {:.1f} characters/s\n", a.count, rate);
  } else {
    run_images(session, a);
  }
  return 0;
}

int eval(const Args& a) {
  const mighty::Session session = mighty::Session::load(a.artifact, a.threads);
  if (!a.documents.empty()) {
    const auto result = mighty::evaluate_documents(session, a.documents, a.limit);
    fmt::print("accuracy {:.2f}% over {} documents", 100.0 * result["accuracy"].get<double>(),
               result["examples"].get<int64_t>());
    if (result.contains("precision")) {
      fmt::print("; {} precision {:.2f}%, recall {:.2f}%", result["positive_class"].get<std::string>(),
                 100.0 * result["precision"].get<double>(), 100.0 * result["recall"].get<double>());
    }
    fmt::print("\n");
  } else if (!a.text.empty()) {
    const auto result = mighty::evaluate_text(session, session.input_spec(), a.text, a.limit);
    fmt::print("bits/char {:.4f} over {} characters\n", result["bits_per_char"].get<double>(),
               result["characters"].get<int64_t>());
  } else {
    if (a.images.empty() || a.labels.empty())
      throw mighty::Error("eval needs --images and --labels, or --text");
    const auto result = mighty::evaluate_images(session, session.input_spec(), a.images, a.labels, a.limit);
    fmt::print("accuracy {:.2f}% over {} images\n", 100.0 * result["accuracy"].get<double>(),
               result["examples"].get<int64_t>());
  }
  return 0;
}

int bench(const Args& a) {
  const mighty::Session session = mighty::Session::load(a.artifact, a.threads);
  mighty::BenchInputs inputs;
  inputs.images = a.bench_images;
  inputs.text = a.bench_text;
  if (!a.bench_email.empty()) inputs.document = mighty::read_file(a.bench_email);
  const auto r = mighty::benchmark(session, session.input_spec(), a.runs, a.batch, inputs);
  fmt::print("input: {}\n", r["input"].get<std::string>());
  fmt::print(
      "latency, batch 1: {:.4f} ms median, {:.4f} ms p99 ({} runs, {} thread{})\n"
      "throughput, batch {}: {:.0f} examples/s\n",
      r["latency_ms_b1"].get<double>(), r["latency_ms_b1_p99"].get<double>(), a.runs, a.threads,
      a.threads == 1 ? "" : "s", a.batch, r["throughput_per_s"].get<double>());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mighty::args::Parser app("mighty-run",
                           "mighty-run: run, evaluate, benchmark and inspect .mighty artifacts (no LibTorch)",
                           "mighty-run 0.1.0");
  Args a;
  auto& cpu_cmd = app.add("cpu", "Show the CPU features detected and the kernel path that will run");
  auto& inspect_cmd =
      app.add("inspect", "Verify an artifact and describe it: provenance, graph, tensors, sizes");
  inspect_cmd.positional("artifact", &a.artifact, ".mighty file");
  auto& eval_cmd = add_eval(app, a);
  auto& bench_cmd = add_bench(app, a);
  auto& run_cmd = add_run(app, a);
#ifdef MIGHTY_WITH_SERVE
  auto& serve_cmd = add_serve(app, a);
#endif
  if (const int code = app.parse(argc, argv); code >= 0) return code;
  try {
    if (cpu_cmd.parsed()) return cpu();
    if (run_cmd.parsed()) return run(a);
    if (eval_cmd.parsed()) return eval(a);
    if (bench_cmd.parsed()) return bench(a);
#ifdef MIGHTY_WITH_SERVE
    if (serve_cmd.parsed()) return mighty::serve::serve(a.serve);
#endif
    fmt::print("{}", mighty::describe_artifact(mighty::Artifact::open(a.artifact)));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "mighty-run: error: {}\n", e.what());
    return 1;
  }
}
