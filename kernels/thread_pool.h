// A small pool for splitting kernels over cores. Work is a number of independent tasks; the caller runs tasks
// too. Workers spin briefly before sleeping, since a batch-1 GEMV is done in microseconds and a
// condition-variable wake-up alone costs about that much. Which thread runs which task never changes a
// result: tasks write disjoint outputs and each output is computed by the same instruction sequence.
//
// Tasks have home threads: thread t (0 = the caller) runs tasks t, t + threads, ... first, so a layer called
// again and again finds its share of the weights in the same core's private cache; a thread that is done
// then takes any task no thread has started (a worker that was asleep or descheduled does not hold the
// caller up).
//
// Where the platform has no threads (WebAssembly built without pthreads, as for a web page that is not
// cross-origin isolated), a pool of N threads keeps its N home-thread split but the caller runs every task,
// in home-thread order: the same results, and the split logic is still exercised by the tests. Programs
// that take a thread count from a user check has_threads() and refuse more than one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mighty::kernels {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // total threads including the caller; 1 = run inline
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  // Whether this build can start threads at all.
  static constexpr bool has_threads() {
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
    return false;
#else
    return true;
#endif
  }

  // Runs task(i) for i in [0, tasks) and returns when all are done. Not reentrant.
  void parallel_for(int64_t tasks, const std::function<void(int64_t)>& task);

 private:
  void worker_loop(int self);
  void run_tasks(int self, uint64_t generation);
  bool claim(int64_t task, uint64_t generation);

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // Each on its own cache line: workers spin on generation_ while the caller spins on busy_.
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> busy_{0};
  // claims_[i].generation == generation: task i of that parallel_for has been started by some thread.
  struct alignas(64) Claim {
    std::atomic<uint64_t> generation{0};
  };
  std::unique_ptr<Claim[]> claims_;
  int64_t claim_capacity_ = 0;
  int64_t tasks_ = 0;
  const std::function<void(int64_t)>* task_ = nullptr;
  bool stop_ = false;
};

}  // namespace mighty::kernels
