// mighty: the whole toolkit from the command line. Argument parsing only; the work lives in compress/.
#include <torch/torch.h>

#include <malloc.h>

#include <cstdio>
#include <string>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "compress/jobs.h"
#include "compress/pipeline.h"
#include "compress/recipe.h"
#include "runtime/error.h"

namespace {

constexpr const char* kVersion = "0.1.0";

struct Common {
  std::string recipe;
  std::string out = "";
  int threads = 0;
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("recipe", c.recipe, "Recipe file (JSON); see docs/recipes.md")->required();
  cmd->add_option("--out", c.out, "Run directory (default: runs/<recipe name>)");
  cmd->add_option("--threads", c.threads, "Threads for LibTorch (default: all cores)")
      ->check(CLI::Range(1, 1024));
}

void apply_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);  // LibTorch's own default here is 1
}

std::string out_dir(const Common& c, const mighty::compress::Recipe& r) {
  return c.out.empty() ? "runs/" + r.name : c.out;
}

}  // namespace

int main(int argc, char** argv) {
  // LibTorch allocates and frees activation-sized buffers (megabytes) at every step. With glibc's defaults
  // the freed memory goes back to the OS (trimmed, or unmapped above the mmap threshold) and comes back as
  // fresh pages that the kernel must fault in and zero: measured, a third of the process's time in
  // distillation went to the kernel (7.1 -> 9.0 steps/s with the settings below; quantize + verify of the
  // default recipe 2 min -> 1 min). Keep it in the heap: no mmap for large blocks (im2col buffers pass
  // glibc's 32 MB ceiling for the mmap threshold), a generous top pad, and no trimming below 1 GB.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TOP_PAD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{"mighty: distill, prune and quantize models into one small int8 file, and prove it"};
  app.set_version_flag("--version", std::string("mighty ") + kVersion);
  app.require_subcommand(1);

  Common train_args;
  bool resume = false;
  int64_t stop_after = 0;
  auto* train =
      app.add_subcommand("train", "Train the recipe's teacher; writes weights, metrics.json and a table");
  add_common(train, train_args);
  train->add_flag("--resume", resume, "Continue from the run directory's last complete checkpoint");
  train
      ->add_option("--stop-after", stop_after, "Stop after this many steps, as if interrupted (resume later)")
      ->check(CLI::PositiveNumber);

  Common eval_args;
  std::string weights;
  auto* eval = app.add_subcommand("eval",
                                  "Evaluate the trained teacher on the test split (accuracy or bits/char, "
                                  "size, latency)");
  add_common(eval, eval_args);
  eval->add_option("--weights", weights, "Weights file (default: <run directory>/teacher.pt)");

  Common export_args;
  bool export_int8 = false;
  auto* export_cmd = app.add_subcommand("export",
                                        "Export the trained teacher as a .mighty artifact "
                                        "(<run directory>/teacher.fp32.mighty or teacher.int8.mighty)");
  add_common(export_cmd, export_args);
  export_cmd->add_flag("--int8", export_int8,
                       "int8 weights (per channel), activations quantized per row at run time");

  Common compress_args;
  bool compress_resume = false;
  int64_t compress_stop_after = 0;
  auto* compress =
      app.add_subcommand("compress",
                         "Run the recipe: teacher (trained once and cached, or loaded), then its "
                         "stages; writes <run directory>/report.json and report.md");
  add_common(compress, compress_args);
  compress->add_flag("--resume", compress_resume,
                     "Continue: skip completed stage runs, resume the interrupted one from its checkpoint");
  compress
      ->add_option("--stop-after", compress_stop_after,
                   "Stop a training run after this many steps, as if interrupted (resume later)")
      ->check(CLI::PositiveNumber);

  // Verbs of the full pipeline; their names are taken so recipes and scripts can rely on them.
  for (const char* verb : {"inspect", "run", "bench"}) {
    app.add_subcommand(verb, "(reserved: not available in this version)")->allow_extras();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    // Every verb: threads, the recipe, and the run directory (default runs/<recipe name>).
    auto start = [](const Common& c) {
      apply_threads(c.threads);
      auto recipe = mighty::compress::load_recipe(c.recipe);
      mighty::compress::JobOptions options;
      options.out_dir = out_dir(c, recipe);
      return std::make_pair(std::move(recipe), options);
    };
    if (train->parsed()) {
      auto [recipe, options] = start(train_args);
      options.resume = resume;
      options.stop_after_steps = stop_after;
      mighty::compress::run_train(recipe, options);
      return 0;
    }
    if (eval->parsed()) {
      const auto [recipe, options] = start(eval_args);
      mighty::compress::run_eval(recipe, options, weights);
      return 0;
    }
    if (compress->parsed()) {
      auto [recipe, options] = start(compress_args);
      options.resume = compress_resume;
      options.stop_after_steps = compress_stop_after;
      const auto report = mighty::compress::run_compress(recipe, options);
      (void)report;  // a run stopped with --stop-after is continued with --resume
      return 0;
    }
    if (export_cmd->parsed()) {
      auto [recipe, options] = start(export_args);
      options.int8 = export_int8;
      mighty::compress::run_export(recipe, options);
      return 0;
    }
    for (auto* sub : app.get_subcommands()) {
      fmt::print(stderr, "mighty: error: '{}' is not available in this version of mighty\n", sub->get_name());
    }
    return 2;
  } catch (const mighty::Error& e) {
    fmt::print(stderr, "mighty: error: {}\n", e.what());
  } catch (const c10::Error& e) {
    fmt::print(stderr, "mighty: error: LibTorch: {}\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fmt::print(stderr, "mighty: error: {}\n", e.what());
  }
  return 1;
}
