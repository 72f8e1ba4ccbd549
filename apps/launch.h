// `mighty ... --nproc N`: N ranks of a data-parallel run on this machine. No LibTorch here: the launcher
// only starts, watches and stops processes.
#pragma once

#include <string>
#include <vector>

namespace mighty::apps {

// Runs `args` (argv of this program, without --nproc) as ranks 0..nproc-1: environment RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT. Returns 0 when every rank succeeded;
// otherwise the exit status of the first rank that failed (128 + signal for a killed one), after the others
// have exited on their own (they notice the lost rank within the collective timeout) or, `grace_s` later,
// were killed.
int launch_local(int nproc, const std::vector<std::string>& args, double grace_s);

// argv without the option `name` and its value ("--nproc 2" or "--nproc=2").
std::vector<std::string> without_option(int argc, char** argv, const std::string& name);

}  // namespace mighty::apps
