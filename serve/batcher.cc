#include "serve/batcher.h"

#include <algorithm>
#include <exception>

namespace mighty::serve {

bool QueueLimit::try_acquire(int64_t n) {
  int64_t now = queued_.load();
  do {
    if (now + n > limit_) return false;
  } while (!queued_.compare_exchange_weak(now, now + n));
  return true;
}

Batcher::Batcher(Runner run, Options options, QueueLimit& limit)
    : run_(std::move(run)), options_(options), limit_(limit) {
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { work(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

std::future<JobResult> Batcher::submit(Job job) {
  if (!limit_.try_acquire(job.count)) throw QueueFull("the server's queue is full");
  Pending p{std::move(job), {}, std::chrono::steady_clock::now()};
  auto future = p.promise.get_future();
  {
    std::lock_guard lock(mutex_);
    queued_examples_ += p.job.count;
    queue_.push_back(std::move(p));
  }
  wake_.notify_one();
  return future;
}

void Batcher::work() {
  for (;;) {
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      if (options_.max_delay.count() > 0) {
        const auto deadline = queue_.front().queued_at + options_.max_delay;
        wake_.wait_until(lock, deadline, [&] { return stopping_ || queued_examples_ >= options_.max_batch; });
      }
      // Whole requests in arrival order up to max_batch examples (a larger request runs alone).
      int64_t examples = 0;
      while (!queue_.empty() &&
             (batch.empty() || examples + queue_.front().job.count <= options_.max_batch)) {
        examples += queue_.front().job.count;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_examples_ -= examples;
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<const Job*> jobs;
    int64_t examples = 0;
    for (const Pending& p : batch) {
      jobs.push_back(&p.job);
      examples += p.job.count;
    }
    std::vector<std::vector<float>> outputs;
    std::exception_ptr failed;
    try {
      outputs = run_(jobs);
    } catch (...) {
      failed = std::current_exception();
    }
    const auto end = std::chrono::steady_clock::now();
    limit_.release(
        examples);  // before anyone hears back: a caller that has its answer sees the queue without it
    for (size_t i = 0; i < batch.size(); ++i) {
      if (failed) {
        batch[i].promise.set_exception(failed);
        continue;
      }
      JobResult r;
      r.outputs = std::move(outputs[i]);
      r.queue_seconds = std::chrono::duration<double>(start - batch[i].queued_at).count();
      r.run_seconds = std::chrono::duration<double>(end - start).count();
      r.batch_examples = examples;
      batch[i].promise.set_value(std::move(r));
    }
  }
}

}  // namespace mighty::serve
