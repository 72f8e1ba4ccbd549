// Data-parallel training across processes and machines on LibTorch's c10d: rendezvous through a TCPStore
// hosted by rank 0, collectives on a Gloo process group. Every rank runs the same program on the same data;
// each trains on its shard of every global batch, gradients are all-reduced (weighted by shard size), so all
// ranks hold identical weights after every step. Rank 0 alone writes files; what a rank needs from a file
// (a checkpoint to resume, cached teacher weights) it receives from rank 0. See docs/distributed.md.
//
// Without init() (or with a world of 1) every function here is the single-process identity: collectives
// return their input and file helpers read the local disk.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mighty::compress::dist {

struct Options {
  int rank = 0;
  int world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 300.0;  // rendezvous and every collective
};

// Joins the group (blocks until all `world` ranks arrived or the timeout passed: then throws Error).
void init(const Options& options);
// This rank leaves: no collective follows (the later stages run on rank 0 alone).
void finish();

bool joined();  // this process belongs to a group of more than one rank (finished or not)
bool active();  // joined a group of more than one rank and not finished
int rank();
int world();
bool writes();  // this process writes the run's files (rank 0, or not distributed)

// [begin, end) of this rank's part of n items (contiguous, sizes differ by at most one).
std::pair<int64_t, int64_t> shard(int64_t n);

// Parameters and buffers of rank 0, copied into every rank.
void broadcast_module(torch::nn::Module& module);
// Floating-point buffers (BatchNorm running statistics) replaced by their mean over ranks.
void average_buffers(torch::nn::Module& module);
// grad := sum over ranks of weight_r * grad_r, in buckets; an undefined gradient counts as zeros.
void allreduce_gradients(const std::vector<torch::Tensor>& params, double weight);
// Element-wise sum over ranks.
std::vector<double> sum(std::vector<double> values);

// `bytes` of rank `root`, received by every rank (the others' argument is ignored).
std::string broadcast_bytes(const std::string& bytes, int root);

// While one lives, this process works alone inside its group (mighty tune's trials): active() is false, it
// writes its own files, and no collective is made; the group is there again after.
class Solo {
 public:
  Solo();
  ~Solo();
  Solo(const Solo&) = delete;
  Solo& operator=(const Solo&) = delete;
};

// Rank 0's view of a file: whether it exists, and its bytes (rank 0 reads, the others receive).
bool exists(const std::string& path);
std::string read_file(const std::string& path);

// Which ranks are gone, as a phrase ("lost rank 1 (its heartbeat stopped)"); takes about two seconds.
std::string lost_ranks();

// Best effort: tells the other ranks why this one stops (they print it when they notice the loss).
void report_failure(const std::string& message);

}  // namespace mighty::compress::dist
