// Running a batch on the persistent thread pool: the pool itself, the per-sample loop every
// batch entry point shares (RunSamples), and the batch entry points (DecodeViewsBatch,
// JpegToI420Batch). The single-image kernels they call live in decode_crop.h and yuv420.h.
//
// Per-sample status: a batch never stops at a bad sample. codes[i] gets sample i's StatusCode
// (status.h) and (*messages)[i] its message (empty when ok); the other samples are still
// processed, and the entry point returns the number of failed samples. A sample that decoded
// while libjpeg warned about corrupt data gets kJpegWarning (its pixels kept, not counted as
// failed: the caller decides, slipstream's strict=True makes it a failure).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "resize.h"  // PixelMap
#include "status.h"

namespace slipstream {

// Persistent thread pool: std::thread workers + an atomic work counter. The calling thread
// takes part, so a pool of N threads runs N - 1 workers.
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

// The decode batch entry point (K >= 1 views per sample, JPEG or YUV420). Sample i has bytes
// data[offsets[i] : offsets[i] + sizes[i]] (bounds checked against data_size), K = views
// windows windows[4K*i : 4K*(i+1)] and flips flips[K*i : K*(i+1)] (non-zero mirrors); its view
// k, of size out_hw[2k] x out_hw[2k+1], goes to outs[k] + i * out_hw[2k] * out_hw[2k+1] * 3
// (one contiguous [batch, h_k, w_k, 3] buffer per view), through DecodeImageViews. Sample i
// has format formats[i] (ImageFormat codes, decode_crop.h: a field may mix JPEG and raw RGB
// items), or `format` for every sample when formats is null; YUV420 and raw RGB samples also
// need the true sizes heights[i], widths[i] (which may be null when every sample is JPEG). A failed sample's outputs (all its views) are zeroed
// and its message names the view when K > 1. Returns the number of failed samples.
// With a PixelMap (resize.h) the outputs hold elements of map->type (normalized float32,
// float16, bfloat16 bits), out_hw[2k] * out_hw[2k+1] * 3 of them per sample and view, mapped
// from the 8-bit result right after its decode (DecodeImageViewsAs); null means uint8. A
// failed sample's outputs hold pixel value 0 mapped the same way (zero for uint8).
int64_t DecodeViewsBatch(const uint8_t* data, uint64_t data_size, const uint64_t* offsets,
                         const uint64_t* sizes, int64_t batch, int32_t views,
                         const int32_t* windows, const uint8_t* flips, const int32_t* out_hw,
                         uint8_t* const* outs, int32_t num_threads, int32_t* codes,
                         std::vector<std::string>* messages, int32_t policy, int32_t format,
                         const int32_t* heights, const int32_t* widths,
                         const PixelMap* map = nullptr, const uint8_t* formats = nullptr);

// Batch JpegToI420 (yuv420.h): sample i reads data[offsets[i] : + sizes[i]] and writes
// out[out_offsets[i] : + I420Size(heights[i], widths[i])] (both bounds checked). With
// formats, an item whose code is kFormatRgb (decode_crop.h) is raw RGB, converted by RgbToI420.
int64_t JpegToI420Batch(const uint8_t* data, uint64_t data_size, const uint64_t* offsets,
                        const uint64_t* sizes, int64_t batch, const int32_t* heights,
                        const int32_t* widths, uint8_t* out, uint64_t out_size,
                        const uint64_t* out_offsets, int32_t num_threads, int32_t* codes,
                        std::vector<std::string>* messages, const uint8_t* formats = nullptr);

}  // namespace slipstream
