// Dynamic micro-batching for one loaded model: requests of any size are queued, and worker threads run
// them together in batches of at most `max_batch` examples — whatever is queued when it is free, after
// waiting at most `max_delay` from the oldest request for more to arrive. Each request gets back exactly its
// own rows. The examples queued over all models are bounded (QueueLimit): past it a submit is refused at
// once, which the server answers with 503 and Retry-After.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mighty::serve {

// One request's examples for one model, already in the model's input form.
struct Job {
  int64_t count = 0;
  std::vector<float> floats;                    // image models: count x example floats
  std::vector<std::vector<int64_t>> sequences;  // token models: one id sequence per example
};

struct JobResult {
  std::vector<float> outputs;  // count x the model's outputs per example
  double queue_seconds = 0.0, run_seconds = 0.0;
  int64_t batch_examples = 0;  // the size of the batch the request ran in
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Examples waiting or running, over every model of a server.
class QueueLimit {
 public:
  explicit QueueLimit(int64_t limit) : limit_(limit) {}
  bool try_acquire(int64_t n);
  void release(int64_t n) { queued_.fetch_sub(n); }
  int64_t depth() const { return queued_.load(); }
  int64_t limit() const { return limit_; }

 private:
  std::atomic<int64_t> queued_{0};
  const int64_t limit_;
};

class Batcher {
 public:
  // Runs a batch: the jobs in order; returns each job's outputs.
  using Runner = std::function<std::vector<std::vector<float>>(const std::vector<const Job*>&)>;
  struct Options {
    int64_t max_batch = 64;
    std::chrono::microseconds max_delay{0};
    int workers = 1;  // batches run at once (each on the session's pool when free, else on its own thread)
  };
  Batcher(Runner run, Options options, QueueLimit& limit);
  ~Batcher();  // runs what is queued, then stops the worker
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues a job; throws QueueFull when the server's queue limit would be passed.
  std::future<JobResult> submit(Job job);

 private:
  struct Pending {
    Job job;
    std::promise<JobResult> promise;
    std::chrono::steady_clock::time_point queued_at;
  };
  void work();
  Runner run_;
  Options options_;
  QueueLimit& limit_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  int64_t queued_examples_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;  // last: start after everything above exists
};

}  // namespace mighty::serve
