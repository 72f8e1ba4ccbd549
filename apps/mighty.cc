// mighty: the whole toolkit from the command line. Argument parsing only; the work lives in compress/.
#include <torch/torch.h>

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "compress/pipeline/jobs.h"
#include "compress/pipeline/pipeline.h"
#include "compress/recipe/recipe.h"
#include "compress/train/distributed.h"
#include "compress/tune/tune.h"
#include "launch.h"
#include "runtime/error.h"

namespace {

constexpr const char* kVersion = "0.1.0";

struct Common {
  std::string recipe;
  std::string out = "";
  int threads = 0;
  // Data-parallel training (train, compress): flags win over the usual environment variables.
  int nproc = 0;
  int rank = -1;
  int world = 0;
  std::string master;
  double dist_timeout = 0.0;
};

// Where errors go: stderr, or on ranks other than 0 (whose progress is silenced) a copy of it.
int g_error_fd = 2;

void add_distributed(CLI::App* cmd, Common& c) {
  cmd->add_option("--nproc", c.nproc, "Start this many data-parallel ranks on this machine")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--rank", c.rank, "This process's rank (default: $RANK)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--world-size", c.world, "Number of ranks (default: $WORLD_SIZE, else 1)")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--master", c.master, "Rank 0's HOST:PORT (default: $MASTER_ADDR:$MASTER_PORT)");
  cmd->add_option("--dist-timeout", c.dist_timeout,
                  "Seconds a rank waits for the others (rendezvous, each collective; default 300, or "
                  "$MIGHTY_DIST_TIMEOUT)")
      ->check(CLI::PositiveNumber);
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 20) {
    throw mighty::Error(fmt::format("environment: {}='{}' is not a non-negative integer", name, v));
  }
  return static_cast<int>(x);
}

double timeout_of(const Common& c) {
  if (c.dist_timeout > 0) return c.dist_timeout;
  if (const char* v = std::getenv("MIGHTY_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double t = std::strtod(v, &end);
    if (*end != '\0' || !(t > 0)) {
      throw mighty::Error(fmt::format("environment: MIGHTY_DIST_TIMEOUT='{}' is not a positive number", v));
    }
    return t;
  }
  return 300.0;
}

// The group this process belongs to, from flags and environment (world 1: not distributed).
mighty::compress::dist::Options distributed_options(const Common& c) {
  mighty::compress::dist::Options o;
  o.world = c.world > 0 ? c.world : env_int("WORLD_SIZE", 1);
  o.rank = c.rank >= 0 ? c.rank : env_int("RANK", 0);
  o.timeout_s = timeout_of(c);
  std::string master = c.master;
  if (master.empty()) {
    const char* addr = std::getenv("MASTER_ADDR");
    const char* port = std::getenv("MASTER_PORT");
    master = fmt::format("{}:{}", addr ? addr : "127.0.0.1", port ? port : "29500");
  }
  const auto colon = master.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw mighty::Error(fmt::format("--master '{}': expected HOST:PORT", master));
  }
  o.master_addr = master.substr(0, colon);
  try {
    size_t used = 0;
    o.master_port = std::stoi(master.substr(colon + 1), &used);
    if (used != master.size() - colon - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw mighty::Error(fmt::format("--master '{}': the port is not a number", master));
  }
  if (o.rank >= o.world) throw mighty::Error(fmt::format("rank {} is not in a world of {}", o.rank, o.world));
  return o;
}

// Joins the group; ranks other than 0 keep quiet (rank 0's progress speaks for all) except for errors.
void join_group(const Common& c) {
  const auto o = distributed_options(c);
  if (o.world == 1) return;
  if (o.rank > 0 && std::getenv("MIGHTY_LOG_ALL_RANKS") == nullptr) {
    g_error_fd = ::dup(2);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::close(devnull);
    }
  }
  mighty::compress::dist::init(o);
  // Gloo's own threads may throw when a peer vanishes, which ends the process through std::terminate; say
  // which rank was lost instead of dying silently (other ranks' stderr goes to /dev/null).
  std::set_terminate([] {
    std::string line = fmt::format("mighty: error: rank {}: distributed: terminated: {}\n",
                                   mighty::compress::dist::rank(), mighty::compress::dist::lost_ranks());
    const ssize_t written = ::write(g_error_fd, line.data(), line.size());
    (void)written;
    ::_exit(1);
  });
}

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("recipe", c.recipe, "Recipe file (JSON); see docs/recipes.md")->required();
  cmd->add_option("--out", c.out, "Run directory (default: runs/<recipe name>)");
  cmd->add_option("--threads", c.threads, "Threads for LibTorch (default: all cores)")
      ->check(CLI::Range(1, 1024));
}

void apply_threads(int threads) {
  // Ranks started together on one machine share its cores.
  const int local =
      std::max(1, std::atoi(std::getenv("LOCAL_WORLD_SIZE") ? std::getenv("LOCAL_WORLD_SIZE") : "1"));
  const int n =
      threads > 0 ? threads
                  : std::max(1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) / local);
  torch::set_num_threads(n);  // LibTorch's own default here is 1
}

std::string out_dir(const Common& c, const mighty::compress::Recipe& r) {
  return c.out.empty() ? "runs/" + r.name : c.out;
}

namespace dist = mighty::compress::dist;

// A process of a data-parallel group ends without running destructors: after a lost peer, tearing down the
// group's connections could block the exit that reports it.
int finish(int code) {
  if (dist::joined()) {
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
  }
  return code;
}

// One line on the saved error descriptor (and, in a group, to the other ranks), then the exit code.
int fail(const std::string& message) {
  std::string line = message;
  if (dist::joined()) {
    line = fmt::format("rank {}: {}", dist::rank(), message);
    dist::report_failure(message);
  }
  line = "mighty: error: " + line + "\n";
  const ssize_t written = ::write(g_error_fd, line.data(), line.size());
  (void)written;  // nowhere left to report a failed report
  return finish(1);
}

struct Args {
  Common train_args, eval_args, export_args, compress_args, tune_args;
  bool resume = false, compress_resume = false, export_int8 = false, tune_resume = false;
  double budget_minutes = 0.0;
  int64_t stop_after = 0, compress_stop_after = 0;
  std::string weights, report_dir;
};

struct Verbs {
  CLI::App *train, *eval, *export_cmd, *compress, *report, *tune;
};

Verbs declare_verbs(CLI::App& app, Args& a) {
  Verbs v{};
  v.train =
      app.add_subcommand("train", "Train the recipe's teacher; writes weights, metrics.json and a table");
  add_common(v.train, a.train_args);
  add_distributed(v.train, a.train_args);
  v.train->add_flag("--resume", a.resume, "Continue from the run directory's last complete checkpoint");
  v.train
      ->add_option("--stop-after", a.stop_after,
                   "Stop after this many steps, as if interrupted (resume later)")
      ->check(CLI::PositiveNumber);

  v.eval = app.add_subcommand("eval",
                              "Evaluate the trained teacher on the test split (accuracy or bits/char, "
                              "size, latency)");
  add_common(v.eval, a.eval_args);
  v.eval->add_option("--weights", a.weights, "Weights file (default: <run directory>/teacher.pt)");

  v.export_cmd = app.add_subcommand("export",
                                    "Export the trained teacher as a .mighty artifact "
                                    "(<run directory>/teacher.fp32.mighty or teacher.int8.mighty)");
  add_common(v.export_cmd, a.export_args);
  v.export_cmd->add_flag("--int8", a.export_int8,
                         "int8 weights (per channel), activations quantized per row at run time");

  v.compress = app.add_subcommand("compress",
                                  "Run the recipe: teacher (trained once and cached, or loaded), then its "
                                  "stages; writes <run directory>/report.json and report.md");
  add_common(v.compress, a.compress_args);
  add_distributed(v.compress, a.compress_args);
  v.compress->add_flag("--resume", a.compress_resume,
                       "Continue: skip completed stage runs, resume the interrupted one from its checkpoint");
  v.compress
      ->add_option("--stop-after", a.compress_stop_after,
                   "Stop a training run after this many steps, as if interrupted (resume later)")
      ->check(CLI::PositiveNumber);

  v.tune = app.add_subcommand("tune",
                              "Search the recipe's 'tune' space for the best model meeting its constraints "
                              "(successive halving on the validation split), then export and verify it; "
                              "writes <run directory>/report.html");
  add_common(v.tune, a.tune_args);
  add_distributed(v.tune, a.tune_args);  // --nproc N: N trials side by side
  v.tune->get_option("--out")->description("Run directory (default: runs/<recipe name>-tune)");
  v.tune
      ->add_option("--budget-minutes", a.budget_minutes,
                   "Stop starting trials when the next one would pass this budget (default: the whole plan)")
      ->check(CLI::PositiveNumber);
  v.tune->add_flag("--resume", a.tune_resume, "Continue a killed or stopped search in the run directory");

  v.report = app.add_subcommand(
      "report", "Write a compress run's report.md and report.html again from its report.json");
  v.report->add_option("run", a.report_dir, "Run directory (the --out of mighty compress)")->required();
  return v;
}

int dispatch(const CLI::App& app, const Verbs& v, Args& a, int argc, char** argv) {
  // --nproc N: this process only starts the ranks and waits for them.
  for (auto [cmd, args] :
       {std::make_pair(v.train, &a.train_args), std::make_pair(v.compress, &a.compress_args),
        std::make_pair(v.tune, &a.tune_args)}) {
    if (!cmd->parsed() || args->nproc <= 1) continue;
    if (args->rank >= 0 || args->world > 0) {
      throw mighty::Error("--nproc starts its own ranks: do not combine it with --rank or --world-size");
    }
    return mighty::apps::launch_local(args->nproc, mighty::apps::without_option(argc, argv, "--nproc"),
                                      timeout_of(*args) + 30.0);
  }
  // Every verb: threads, the recipe, and the run directory (default runs/<recipe name>).
  auto start = [&](const Common& c) {
    auto recipe = mighty::compress::load_recipe(c.recipe);
    if (&c == &a.train_args || &c == &a.compress_args || &c == &a.tune_args) join_group(c);
    apply_threads(c.threads);
    mighty::compress::JobOptions options;
    options.out_dir = out_dir(c, recipe);
    return std::make_pair(std::move(recipe), options);
  };
  if (v.train->parsed()) {
    auto [recipe, options] = start(a.train_args);
    options.resume = a.resume;
    options.stop_after_steps = a.stop_after;
    mighty::compress::run_train(recipe, options);
    return finish(0);
  }
  if (v.eval->parsed()) {
    const auto [recipe, options] = start(a.eval_args);
    mighty::compress::run_eval(recipe, options, a.weights);
    return 0;
  }
  if (v.compress->parsed()) {
    auto [recipe, options] = start(a.compress_args);
    options.resume = a.compress_resume;
    options.stop_after_steps = a.compress_stop_after;
    const auto report = mighty::compress::run_compress(recipe, options);
    (void)report;  // a run stopped with --stop-after is continued with --resume
    return finish(0);
  }
  if (v.tune->parsed()) {
    // A rank waits at the end of each round of trials for the slowest one (minutes, not the seconds of a
    // training step): a longer default wait. A rank that dies closes its connections, which the others
    // notice.
    if (a.tune_args.dist_timeout <= 0 && std::getenv("MIGHTY_DIST_TIMEOUT") == nullptr)
      a.tune_args.dist_timeout = 4 * 3600.0;
    auto [recipe, options] = start(a.tune_args);
    mighty::compress::TuneOptions t;
    t.out_dir = a.tune_args.out.empty() ? "runs/" + recipe.name + "-tune" : a.tune_args.out;
    t.resume = a.tune_resume;
    t.budget_minutes = a.budget_minutes;
    mighty::compress::run_tune(recipe, t);
    return finish(0);
  }
  if (v.report->parsed()) {
    fmt::print("{}\n", mighty::compress::rewrite_reports(a.report_dir));
    return 0;
  }
  if (v.export_cmd->parsed()) {
    auto [recipe, options] = start(a.export_args);
    options.int8 = a.export_int8;
    mighty::compress::run_export(recipe, options);
    return 0;
  }
  for (auto* sub : app.get_subcommands()) {
    fmt::print(stderr, "mighty: error: '{}' is not available in this version of mighty\n", sub->get_name());
  }
  return 2;
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
  Args args;
  const Verbs verbs = declare_verbs(app, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return dispatch(app, verbs, args, argc, argv);
  } catch (const mighty::Error& e) {
    return fail(e.what());
  } catch (const c10::Error& e) {
    return fail(std::string("LibTorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
