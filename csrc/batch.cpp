#include "batch.h"

#include <unistd.h>

#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <new>

#include "decode_crop.h"
#include "jpeg_decoder.h"  // TakeJpegWarnings
#include "yuv420.h"

namespace slipstream {

int32_t DefaultNumThreads() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int32_t>(hc);
}

ThreadPool::ThreadPool(int32_t num_threads) {
  if (num_threads < 1) num_threads = 1;
  workers_.reserve(static_cast<size_t>(num_threads - 1));
  for (int32_t i = 0; i < num_threads - 1; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunItems() {
  const auto& fn = *fn_;
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) break;
    fn(i);
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    RunItems();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  std::lock_guard<std::mutex> run_lock(run_mu_);
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    busy_ = static_cast<int32_t>(workers_.size());
    ++generation_;
  }
  work_cv_.notify_all();
  RunItems();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return busy_ == 0; });
  fn_ = nullptr;
}

ThreadPool& ThreadPool::Get(int32_t num_threads) {
  if (num_threads <= 0) num_threads = DefaultNumThreads();
  static std::mutex mu;
  // Intentionally leaked: joining workers during static destruction at interpreter exit can
  // deadlock, and pools inherited through fork() have no threads to join.
  static auto* pools = new std::map<int32_t, ThreadPool*>();
  static pid_t owner = getpid();
  std::lock_guard<std::mutex> lock(mu);
  if (getpid() != owner) {  // forked child: the parent's workers do not exist here
    pools = new std::map<int32_t, ThreadPool*>();
    owner = getpid();
  }
  auto it = pools->find(num_threads);
  if (it != pools->end()) return *it->second;
  auto* pool = new ThreadPool(num_threads);
  (*pools)[num_threads] = pool;
  return *pool;
}

int64_t RunSamples(int64_t batch, int32_t num_threads,
                   const std::function<Result(int64_t)>& sample,
                   const std::function<void(int64_t)>& on_failure, int32_t* codes,
                   std::vector<std::string>* messages) {
  messages->assign(static_cast<size_t>(batch > 0 ? batch : 0), std::string());
  if (batch <= 0) return 0;
  auto one = [&](int64_t i) {
    Result r;
    TakeJpegWarnings();  // drop what an earlier call left on this thread
    try {
      r = sample(i);
    } catch (const std::bad_alloc&) {
      r = Result::Fail(kInternalError, "out of memory");
    } catch (const std::exception& e) {
      r = Result::Fail(kInternalError, e.what());
    }
    const JpegWarnings warned = TakeJpegWarnings();
    if (r.ok() && warned.count > 0) {  // decoded, pixels kept: kJpegWarning, not a failure
      codes[i] = kJpegWarning;
      (*messages)[i] = "libjpeg warning: " + warned.first;
      return;
    }
    codes[i] = r.code;
    if (!r.ok()) {
      on_failure(i);
      (*messages)[i] = std::move(r.message);
    }
  };
  const int32_t threads = num_threads <= 0 ? DefaultNumThreads() : num_threads;
  if (threads == 1 || batch == 1) {
    for (int64_t i = 0; i < batch; ++i) one(i);
  } else {
    ThreadPool::Get(threads).ParallelFor(batch, one);
  }
  int64_t failed = 0;
  for (int64_t i = 0; i < batch; ++i) failed += codes[i] != kOk && codes[i] != kJpegWarning;
  return failed;
}

int64_t DecodeViewsBatch(const uint8_t* data, uint64_t data_size, const uint64_t* offsets,
                         const uint64_t* sizes, int64_t batch, int32_t views,
                         const int32_t* windows, const uint8_t* flips, const int32_t* out_hw,
                         uint8_t* const* outs, int32_t num_threads, int32_t* codes,
                         std::vector<std::string>* messages, int32_t policy, int32_t format,
                         const int32_t* heights, const int32_t* widths,
                         const PixelMap* map, const uint8_t* formats) {
  static const PixelMap kBytes;  // uint8: decoded straight into the outputs
  const PixelMap& pixel_map = map != nullptr ? *map : kBytes;
  const int64_t elem = PixelTypeBytes(pixel_map.type);
  std::vector<int64_t> view_bytes(static_cast<size_t>(views));
  for (int32_t k = 0; k < views; ++k) {
    view_bytes[k] = static_cast<int64_t>(out_hw[2 * k]) * out_hw[2 * k + 1] * 3 * elem;
  }
  auto sample = [&](int64_t i) -> Result {
    const uint64_t off = offsets[i], n = sizes[i];
    if (off > data_size || n > data_size - off) {
      return Result::Fail(kInvalidArgument,
                          "byte range [" + std::to_string(off) + ", " + std::to_string(off) +
                              "+" + std::to_string(n) + ") is outside the data buffer of " +
                              std::to_string(data_size) + " bytes");
    }
    const int32_t fmt = formats != nullptr ? static_cast<int32_t>(formats[i]) : format;
    if (fmt != kFormatJpeg && (heights == nullptr || widths == nullptr)) {
      return Result::Fail(kInvalidArgument,
                          "a YUV420 or raw RGB item needs the images' heights and widths");
    }
    EncodedImage image;
    image.data = data + off;
    image.size = n;
    image.format = fmt;
    if (fmt != kFormatJpeg) image.height = heights[i], image.width = widths[i];
    thread_local std::vector<void*> sample_outs;
    sample_outs.resize(static_cast<size_t>(views));
    for (int32_t k = 0; k < views; ++k) sample_outs[k] = outs[k] + i * view_bytes[k];
    int32_t failed_view = 0;
    Result r = DecodeImageViewsAs(image, windows + 4 * views * i, views, out_hw,
                                  flips + views * i, pixel_map, sample_outs.data(), policy,
                                  &failed_view);
    if (!r.ok() && views > 1) r.message = "view " + std::to_string(failed_view) + ": " + r.message;
    return r;
  };
  auto zero = [&](int64_t i) {  // pixel value 0 (normalized as the outputs are)
    for (int32_t k = 0; k < views; ++k) {
      FillPixels(0, view_bytes[k] / elem, pixel_map, outs[k] + i * view_bytes[k]);
    }
  };
  return RunSamples(batch, num_threads, sample, zero, codes, messages);
}

int64_t JpegToI420Batch(const uint8_t* data, uint64_t data_size, const uint64_t* offsets,
                        const uint64_t* sizes, int64_t batch, const int32_t* heights,
                        const int32_t* widths, uint8_t* out, uint64_t out_size,
                        const uint64_t* out_offsets, int32_t num_threads, int32_t* codes,
                        std::vector<std::string>* messages, const uint8_t* formats) {
  auto sample = [&](int64_t i) -> Result {
    const uint64_t off = offsets[i], n = sizes[i], oo = out_offsets[i];
    if (heights[i] < 1 || widths[i] < 1) {
      return Result::Fail(kInvalidArgument, "recorded size must be >= 1x1");
    }
    const uint64_t need = I420Size(heights[i], widths[i]);
    if (off > data_size || n > data_size - off) {
      return Result::Fail(kInvalidArgument, "JPEG byte range is outside the data buffer");
    }
    if (oo > out_size || need > out_size - oo) {
      return Result::Fail(kInvalidArgument, "YUV420 item range is outside the output buffer");
    }
    if (formats != nullptr && formats[i] == kFormatRgb) {
      const uint64_t pixels = static_cast<uint64_t>(heights[i]) * widths[i] * 3;
      if (n != pixels) {
        return Result::Fail(kInvalidArgument, "raw RGB item is " + std::to_string(n) +
                                                  " bytes, its recorded size needs " +
                                                  std::to_string(pixels));
      }
      RgbToI420(data + off, static_cast<int64_t>(widths[i]) * 3, heights[i], widths[i],
                out + oo);
      return Result::Ok();
    }
    return JpegToI420(data + off, n, heights[i], widths[i], out + oo, need);
  };
  return RunSamples(batch, num_threads, sample, [](int64_t) {}, codes, messages);
}

}  // namespace slipstream
