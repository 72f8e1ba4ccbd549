#include "kernels/thread_pool.h"

#include <chrono>

namespace mighty::kernels {

ThreadPool::ThreadPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  if (!has_threads()) return;
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::claim(int64_t task, uint64_t generation) {
  std::atomic<uint64_t>& flag = claims_[task].generation;
  uint64_t seen = flag.load(std::memory_order_relaxed);
  return seen != generation && flag.compare_exchange_strong(seen, generation, std::memory_order_relaxed);
}

void ThreadPool::run_tasks(int self, uint64_t generation) {
  const int64_t stride = threads();
  for (int64_t i = self; i < tasks_; i += stride)
    if (claim(i, generation)) (*task_)(i);
  for (int64_t i = 0; i < tasks_; ++i)
    if (claim(i, generation)) (*task_)(i);
}

void ThreadPool::worker_loop(int self) {
  uint64_t seen = 0;
  while (true) {
    // Spin for a short while (reading the clock every 64 checks), then sleep until the next batch of work.
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    for (int i = 1; generation_.load(std::memory_order_acquire) == seen; ++i) {
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= spin_until) break;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();  // lets the core's other thread run and eases the exit from the loop
#endif
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    run_tasks(self, seen);
    busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t tasks, const std::function<void(int64_t)>& task) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    // One thread, or none to start: the caller runs each thread's home tasks in turn.
    for (int64_t home = 0; home < threads_; ++home)
      for (int64_t i = home; i < tasks; i += threads_) task(i);
    return;
  }
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (claim_capacity_ < tasks) {  // new flags start unclaimed: generation 0 is never a parallel_for's
      claims_ = std::make_unique<Claim[]>(static_cast<size_t>(tasks));
      claim_capacity_ = tasks;
    }
    task_ = &task;
    tasks_ = tasks;
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation = generation_.fetch_add(1, std::memory_order_release) + 1;
  }
  wake_.notify_all();
  run_tasks(0, generation);
  while (busy_.load(std::memory_order_acquire) != 0) {
  }
}

}  // namespace mighty::kernels
