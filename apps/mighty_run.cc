// mighty-run: the deployable side. Links only the runtime and the kernels, never LibTorch.
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "kernels/cpu_features.h"
#include "runtime/artifact.h"
#include "runtime/error.h"
#include "runtime/inspect.h"

int main(int argc, char** argv) {
  CLI::App app{"mighty-run: run, evaluate, benchmark and inspect .mighty artifacts (no LibTorch)"};
  app.set_version_flag("--version", "mighty-run 0.1.0");
  app.require_subcommand(1);
  auto* cpu = app.add_subcommand("cpu", "Show the CPU features detected and the kernel path that will run");
  std::string artifact_path;
  auto* inspect =
      app.add_subcommand("inspect", "Verify an artifact and describe it: provenance, graph, tensors, sizes");
  inspect->add_option("artifact", artifact_path, ".mighty file")->required();
  for (const char* verb : {"run", "eval", "bench"}) {
    app.add_subcommand(verb, "(reserved: not available in this version)")->allow_extras();
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
