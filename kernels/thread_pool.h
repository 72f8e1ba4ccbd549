// A small pool for splitting kernels over cores. Work is a number of independent tasks; the caller runs tasks
// too. Workers spin briefly before sleeping, since a batch-1 GEMV is done in microseconds and a
// condition-variable wake-up alone costs about that much. Which thread runs which task never changes a
// result: tasks write disjoint outputs and each output is computed by the same instruction sequence.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
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

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) for i in [0, tasks) and returns when all are done. Not reentrant.
  void parallel_for(int64_t tasks, const std::function<void(int64_t)>& task);

 private:
  void worker_loop();
  void run_tasks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  int64_t tasks_ = 0;
  const std::function<void(int64_t)>* task_ = nullptr;
  bool stop_ = false;
};

}  // namespace mighty::kernels
