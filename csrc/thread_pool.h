// Persistent thread pool for batch decoding: std::thread workers + an atomic work counter.
// The calling thread takes part, so a pool of N threads runs N - 1 workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "status.h"

namespace slipstream {

class ThreadPool {
 public:
  explicit ThreadPool(int32_t num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int32_t num_threads() const { return static_cast<int32_t>(workers_.size()) + 1; }

  // Runs fn(i) for i in [0, n) across the pool; returns when all are done. fn must not throw.
  // Concurrent calls on one pool are serialized.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

  // Process-wide pool for a thread count, created on first use and reused afterwards
  // (re-created in a forked child, whose copy has no live workers). num_threads <= 0 means
  // the hardware concurrency.
  static ThreadPool& Get(int32_t num_threads);

 private:
  void WorkerLoop();
  void RunItems();

  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // serializes ParallelFor calls
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  int32_t busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

int32_t DefaultNumThreads();

// The per-sample loop of every batch entry point: runs sample(i) for i in [0, batch) on the
// pool for num_threads (<= 0: hardware concurrency; serially for one thread or one sample),
// turning exceptions into kInternalError. codes[i] and (*messages)[i] (resized to batch) get
// each sample's status and message; on_failure(i) runs for each failed sample. Returns the
// number of failed samples.
int64_t RunSamples(int64_t batch, int32_t num_threads,
                   const std::function<Result(int64_t)>& sample,
                   const std::function<void(int64_t)>& on_failure, int32_t* codes,
                   std::vector<std::string>* messages);

}  // namespace slipstream
