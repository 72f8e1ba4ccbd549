#include "compress/train/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace mighty::compress::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kBeat = std::chrono::milliseconds(500);
constexpr int64_t kBucketElements = int64_t{1} << 22;  // 16 MB of fp32 per all-reduce

// The group. Allocated once and never destroyed: after a lost peer, tearing down Gloo's pairs and the
// store could block the exit that reports it.
struct Group {
  Options options;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::atomic<bool> stop_beat{false};
  std::thread beat;
  bool finished = false;
  int solo = 0;  // Solo scopes open
};
Group* g = nullptr;

std::string alive_key(int r) { return fmt::format("mighty/alive/{}", r); }
std::string failed_key(int r) { return fmt::format("mighty/failed/{}", r); }

// A connection to the store. The rendezvous one (`member`) is counted: rank 0's server waits until all
// ranks' have arrived. Extra connections (heartbeat, diagnosis) are not.
c10::intrusive_ptr<c10d::TCPStore> connect(const Options& o, bool member, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.master_port);
  so.isServer = member && o.rank == 0;
  so.numWorkers = member ? c10::optional<size_t>(static_cast<size_t>(o.world)) : c10::nullopt;
  so.waitWorkers = member;
  so.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
}

std::chrono::milliseconds timeout_ms(const Options& o) {
  return std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000.0));
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Which ranks are gone: those whose heartbeat counter stood still for four beats. If the store itself does
// not answer, rank 0 (its host) is gone.
std::string diagnose() {
  const Options& o = g->options;
  try {
    auto s = connect(o, false, std::chrono::seconds(5));
    std::vector<int64_t> before(o.world), after(o.world);
    for (int r = 0; r < o.world; ++r) before[r] = s->add(alive_key(r), 0);
    std::this_thread::sleep_for(4 * kBeat);
    for (int r = 0; r < o.world; ++r) after[r] = s->add(alive_key(r), 0);
    std::string lost;
    for (int r = 0; r < o.world; ++r) {
      if (r == o.rank || before[r] != after[r]) continue;
      std::string why = "its heartbeat stopped";
      if (s->check({failed_key(r)})) {
        const auto bytes = s->get(failed_key(r));
        why = "it failed: " + std::string(bytes.begin(), bytes.end());
      }
      lost += fmt::format("{}rank {} ({})", lost.empty() ? "" : ", ", r, why);
    }
    if (lost.empty()) {
      return fmt::format(
          "every rank is still alive, so one was busy for longer than the {:g} s collective "
          "timeout (--dist-timeout)",
          o.timeout_s);
    }
    return "lost " + lost;
  } catch (const std::exception&) {
    return fmt::format("lost rank 0 (its rendezvous store at {}:{} no longer answers)", o.master_addr,
                       o.master_port);
  }
}

template <class F>
void guarded(const std::string& what, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error(fmt::format("distributed: {} failed on rank {}: {} (Gloo: {})", what, g->options.rank,
                            diagnose(), first_line(e.what_without_backtrace())));
  } catch (const std::exception& e) {
    throw Error(fmt::format("distributed: {} failed on rank {}: {} (Gloo: {})", what, g->options.rank,
                            diagnose(), first_line(e.what())));
  }
}

void allreduce(torch::Tensor& t, const std::string& what) {
  std::vector<at::Tensor> ts{t};
  guarded(what, [&] { g->pg->allreduce(ts)->wait(); });
}

void broadcast(torch::Tensor& t, const std::string& what) {
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions bo;
  bo.rootRank = 0;
  guarded(what, [&] { g->pg->broadcast(ts, bo)->wait(); });
}

}  // namespace

void init(const Options& o) {
  if (g != nullptr) throw Error("distributed: joined a group already");
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world) {
    throw Error(fmt::format("distributed: rank {} is not in a world of {}", o.rank, o.world));
  }
  if (o.master_port < 1 || o.master_port > 65535) {
    throw Error(fmt::format("distributed: master port {} is not a TCP port", o.master_port));
  }
  if (!(o.timeout_s > 0)) throw Error("distributed: the timeout must be positive");
  g = new Group;
  g->options = o;
  if (o.world == 1) return;
  const auto timeout = timeout_ms(o);
  try {
    g->store = connect(o, true, timeout);
    auto go = c10d::ProcessGroupGloo::Options::create(timeout);
    // One machine: loopback. Several: the interface GLOO_SOCKET_IFNAME names, else the address this
    // machine's hostname resolves to (as PyTorch does).
    const bool local = o.master_addr == "127.0.0.1" || o.master_addr == "localhost";
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    go->devices.push_back(local    ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                          : ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("mighty/gloo", g->store), o.rank, o.world, go);
  } catch (const std::exception& e) {
    throw Error(fmt::format("distributed: rank {} of {} could not join the group at {}:{} within {:g} s: {}",
                            o.rank, o.world, o.master_addr, o.master_port, o.timeout_s,
                            first_line(e.what())));
  }
  // The heartbeat, on its own connection to the store.
  auto beat_store = connect(o, false, timeout);
  g->beat = std::thread([beat_store, r = o.rank] {
    while (!g->stop_beat.load()) {
      try {
        beat_store->add(alive_key(r), 1);
      } catch (const std::exception&) {
        return;  // the store is gone; the next collective reports it
      }
      std::this_thread::sleep_for(kBeat);
    }
  });
  g->beat.detach();
}

void finish() {
  if (g == nullptr || g->solo > 0) return;  // a Solo scope's work ends, not the group
  g->stop_beat = true;
  g->finished = true;
}

bool joined() { return g != nullptr && g->options.world > 1; }
bool active() { return g != nullptr && !g->finished && g->solo == 0 && g->options.world > 1; }
int rank() { return g == nullptr ? 0 : g->options.rank; }
int world() { return active() ? g->options.world : 1; }
bool writes() { return rank() == 0 || (g != nullptr && g->solo > 0); }

Solo::Solo() {
  if (g != nullptr) ++g->solo;
}
Solo::~Solo() {
  if (g != nullptr) --g->solo;
}

std::string broadcast_bytes(const std::string& bytes, int root) {
  if (!active()) return bytes;
  auto size =
      torch::tensor({rank() == root ? static_cast<int64_t>(bytes.size()) : int64_t{0}}, torch::kInt64);
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  std::vector<at::Tensor> ts{size};
  guarded(fmt::format("broadcast of rank {}'s result size", root), [&] { g->pg->broadcast(ts, bo)->wait(); });
  const int64_t n = size.item<int64_t>();
  if (n == 0) return {};
  auto data = torch::empty({n}, torch::kUInt8);
  if (rank() == root) std::memcpy(data.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<at::Tensor> ds{data};
  guarded(fmt::format("broadcast of rank {}'s result", root), [&] { g->pg->broadcast(ds, bo)->wait(); });
  return std::string(reinterpret_cast<const char*>(data.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

std::pair<int64_t, int64_t> shard(int64_t n) {
  const int64_t w = world(), r = active() ? rank() : 0;
  return {n * r / w, n * (r + 1) / w};
}

void broadcast_module(torch::nn::Module& module) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  for (auto& t : module.parameters()) broadcast(t, "broadcast of the initial weights");
  for (auto& t : module.buffers()) broadcast(t, "broadcast of the initial buffers");
}

void average_buffers(torch::nn::Module& module) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  for (auto& t : module.buffers()) {
    if (!t.is_floating_point()) continue;
    allreduce(t, "averaging of the BatchNorm statistics");
    t.div_(static_cast<double>(world()));
  }
}

void allreduce_gradients(const std::vector<torch::Tensor>& params, double weight) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  size_t i = 0;
  while (i < grads.size()) {
    size_t j = i;
    int64_t elements = 0;
    std::vector<torch::Tensor> flat;
    while (j < grads.size() && (j == i || elements + grads[j].numel() <= kBucketElements)) {
      elements += grads[j].numel();
      flat.push_back(grads[j].reshape({-1}));
      ++j;
    }
    auto bucket = torch::cat(flat).mul_(weight);
    allreduce(bucket, "all-reduce of the gradients");
    int64_t at = 0;
    for (size_t k = i; k < j; ++k) {
      const int64_t n = grads[k].numel();
      grads[k].copy_(bucket.slice(0, at, at + n).view_as(grads[k]));
      at += n;
    }
    i = j;
  }
}

std::vector<double> sum(std::vector<double> values) {
  if (!active() || values.empty()) return values;
  auto t = torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kFloat64).clone();
  allreduce(t, "all-reduce of the training statistics");
  std::memcpy(values.data(), t.data_ptr<double>(), values.size() * sizeof(double));
  return values;
}

bool exists(const std::string& path) {
  if (!active()) return std::filesystem::exists(path);
  auto flag = torch::tensor({rank() == 0 && std::filesystem::exists(path) ? 1 : 0}, torch::kInt64);
  broadcast(flag, "broadcast of whether " + path + " exists");
  return flag.item<int64_t>() != 0;
}

std::string read_file(const std::string& path) {
  if (!active()) return mighty::read_file(path);
  std::string bytes, error;
  if (rank() == 0) {
    try {
      bytes = mighty::read_file(path);
    } catch (const Error& e) {
      error = e.what();
    }
  }
  auto size =
      torch::tensor({error.empty() ? static_cast<int64_t>(bytes.size()) : int64_t{-1}}, torch::kInt64);
  broadcast(size, "broadcast of the size of " + path);
  const int64_t n = size.item<int64_t>();
  if (n < 0) throw Error(rank() == 0 ? error : fmt::format("{}: rank 0 could not read it", path));
  auto data = torch::empty({n}, torch::kUInt8);
  if (rank() == 0 && n > 0) std::memcpy(data.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  if (n > 0) broadcast(data, "broadcast of " + path);
  return std::string(reinterpret_cast<const char*>(data.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

std::string lost_ranks() {
  return g == nullptr || g->options.world == 1 ? std::string("no group") : diagnose();
}

void report_failure(const std::string& message) {
  if (g == nullptr || g->options.world == 1) return;
  try {
    auto s = connect(g->options, false, std::chrono::seconds(2));
    s->set(failed_key(g->options.rank), std::vector<uint8_t>(message.begin(), message.end()));
  } catch (const std::exception&) {
    // Nobody left to tell.
  }
}

}  // namespace mighty::compress::dist
