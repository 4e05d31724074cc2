// DALI CPU operator `SlipstreamDecodeCrop` (Python: fn.slipstream_decode_crop): a thin wrapper
// over slipstream::DecodeCropResize and DecodeCropResizeViews (csrc/decode_crop.h), the
// kernels the native backend uses, so both CPU paths give bit-identical crops.
//
// Inputs:  0  encoded JPEG bytes, uint8 1-D per sample (ragged)
//          1  crop windows, int32 [4] = (y, x, h, w) per sample, or [K, 4] for K views
// Args:    size  (int or [out_h, out_w]), flip (per-sample tensor argument, default 0)
// Output:  uint8 [H, W, 3] (layout HWC) per sample, or [K, H, W, 3] for [K, 4] windows.
//
// Samples are decoded on DALI's thread pool (one task per sample). A failed sample never
// aborts: every failure of the batch is collected and reported by one DALI error naming the
// sample index and the libjpeg message.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

// The plugin builds with -fvisibility=hidden (its copy of the csrc kernels stays private),
// but DALI's own types keep default visibility: the DALIException thrown here (DALI_FAIL)
// must share its type_info with libdali's, which catches it on the executor thread.
#pragma GCC visibility push(default)
#include "dali/core/error_handling.h"
#include "dali/pipeline/operator/operator.h"
#pragma GCC visibility pop
#include "decode_crop.h"

namespace slipstream_dali {

using dali::CPUBackend;
using dali::OutputDesc;
using dali::TensorListShape;
using dali::Workspace;

class SlipstreamDecodeCrop : public dali::Operator<CPUBackend> {
 public:
  explicit SlipstreamDecodeCrop(const dali::OpSpec &spec) : dali::Operator<CPUBackend>(spec) {
    std::vector<int> size = spec.GetRepeatedArgument<int>("size");
    if (size.size() == 1) size.push_back(size[0]);
    DALI_ENFORCE(size.size() == 2 && size[0] >= 1 && size[1] >= 1,
                 "slipstream_decode_crop: `size` must be an int or [height, width], both >= 1");
    out_h_ = size[0];
    out_w_ = size[1];
  }

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override {
    const auto &jpegs = ws.Input<CPUBackend>(0);
    const auto &windows = ws.Input<CPUBackend>(1);
    const int batch = jpegs.num_samples();
    DALI_ENFORCE(jpegs.type() == DALI_UINT8,
                 dali::make_string("slipstream_decode_crop: input 0 (encoded JPEG bytes) must be "
                                   "uint8, got ", jpegs.type()));
    DALI_ENFORCE(windows.type() == DALI_INT32,
                 dali::make_string("slipstream_decode_crop: input 1 (crop windows) must be "
                                   "int32, got ", windows.type()));
    const int wdim = windows.sample_dim();
    DALI_ENFORCE(wdim == 1 || wdim == 2,
                 "slipstream_decode_crop: crop windows must have shape [4] or [K, 4] per sample");
    ReadFlips(ws, batch);
    TensorListShape<> shape(batch, wdim + 2);
    for (int i = 0; i < batch; i++) {
      auto ws_shape = windows.tensor_shape_span(i);
      DALI_ENFORCE(ws_shape[wdim - 1] == 4,
                   dali::make_string("slipstream_decode_crop: sample ", i, ": crop windows must "
                                     "have shape [4] or [K, 4], got ", windows.tensor_shape(i)));
      const int64_t views = wdim == 2 ? ws_shape[0] : 1;
      const int64_t nflip = static_cast<int64_t>(flip_counts_[i]);
      DALI_ENFORCE(nflip == 1 || nflip == views,
                   dali::make_string("slipstream_decode_crop: sample ", i, ": `flip` must hold 1 "
                                     "or K (= ", views, ") values, got ", nflip));
      if (wdim == 2) {
        shape.set_tensor_shape(i, dali::TensorShape<>{views, out_h_, out_w_, 3});
      } else {
        shape.set_tensor_shape(i, dali::TensorShape<>{out_h_, out_w_, 3});
      }
    }
    output_desc.resize(1);
    output_desc[0].type = DALI_UINT8;
    output_desc[0].shape = std::move(shape);
    return true;
  }

  void RunImpl(Workspace &ws) override {
    const auto &jpegs = ws.Input<CPUBackend>(0);
    const auto &windows = ws.Input<CPUBackend>(1);
    auto &output = ws.Output<CPUBackend>(0);
    const int batch = jpegs.num_samples();
    const bool multi = windows.sample_dim() == 2;
    if (!multi) output.SetLayout("HWC");
    results_.assign(batch, slipstream::Result::Ok());
    failed_view_.assign(batch, 0);
    const int64_t view_bytes = static_cast<int64_t>(out_h_) * out_w_ * 3;
    auto &pool = ws.GetThreadPool();
    for (int i = 0; i < batch; i++) {
      const int64_t nbytes = jpegs.tensor_shape(i).num_elements();
      const int64_t views = multi ? windows.tensor_shape(i)[0] : 1;
      pool.AddWork(
          [&, i, nbytes, views](int) {
            const uint8_t *data = jpegs.tensor<uint8_t>(i);
            const int32_t *win = windows.tensor<int32_t>(i);
            uint8_t *out = output.mutable_tensor<uint8_t>(i);
            std::vector<uint8_t> view_flips(static_cast<size_t>(views));
            std::vector<uint8_t *> view_outs(static_cast<size_t>(views));
            std::vector<int32_t> view_sizes(static_cast<size_t>(2 * views));
            for (int64_t k = 0; k < views; k++) {
              view_flips[k] = flips_[flip_offsets_[i] + (flip_counts_[i] == 1 ? 0 : k)];
              view_outs[k] = out + k * view_bytes;
              view_sizes[2 * k] = out_h_, view_sizes[2 * k + 1] = out_w_;
            }
            int32_t failed = 0;
            // K views: one entropy decode per distinct DCT scale among them.
            slipstream::Result r = slipstream::DecodeCropResizeViews(
                data, static_cast<uint64_t>(nbytes), win, static_cast<int32_t>(views),
                view_sizes.data(), view_flips.data(), view_outs.data(), slipstream::kScaleAny,
                &failed);
            if (!r.ok()) {
              std::memset(out, 0, static_cast<size_t>(views * view_bytes));
              results_[i] = std::move(r);
              failed_view_[i] = failed;
            }
          },
          nbytes);  // larger files first: better load balance
    }
    pool.RunAll();
    ReportFailures(batch, multi);
  }

 private:
  // Per-sample flip values as uint8, from the scalar argument or a tensor argument of any
  // boolean/integer type holding 1 (or K) values per sample.
  void ReadFlips(const Workspace &ws, int batch) {
    flips_.clear();
    flip_offsets_.assign(batch, 0);
    flip_counts_.assign(batch, 1);
    if (!spec_.HasTensorArgument("flip")) {
      const uint8_t f = spec_.GetArgument<int>("flip") != 0;
      flips_.assign(batch, f);
      for (int i = 0; i < batch; i++) flip_offsets_[i] = i;
      return;
    }
    const auto &arg = ws.ArgumentInput("flip");
    DALI_ENFORCE(arg.num_samples() == batch,
                 dali::make_string("slipstream_decode_crop: `flip` has ", arg.num_samples(),
                                   " samples, the batch has ", batch));
    for (int i = 0; i < batch; i++) {
      const int64_t n = arg.tensor_shape(i).num_elements();
      flip_offsets_[i] = flips_.size();
      flip_counts_[i] = n;
      switch (arg.type()) {
#define SLIPSTREAM_FLIP_CASE(ID, T)                         \
  case ID: {                                          \
    const T *p = arg.tensor<T>(i);                          \
    for (int64_t k = 0; k < n; k++) flips_.push_back(p[k] != 0); \
    break;                                                  \
  }
        SLIPSTREAM_FLIP_CASE(DALI_BOOL, bool)
        SLIPSTREAM_FLIP_CASE(DALI_UINT8, uint8_t)
        SLIPSTREAM_FLIP_CASE(DALI_INT8, int8_t)
        SLIPSTREAM_FLIP_CASE(DALI_UINT16, uint16_t)
        SLIPSTREAM_FLIP_CASE(DALI_INT16, int16_t)
        SLIPSTREAM_FLIP_CASE(DALI_UINT32, uint32_t)
        SLIPSTREAM_FLIP_CASE(DALI_INT32, int32_t)
        SLIPSTREAM_FLIP_CASE(DALI_UINT64, uint64_t)
        SLIPSTREAM_FLIP_CASE(DALI_INT64, int64_t)
#undef SLIPSTREAM_FLIP_CASE
        default:
          DALI_FAIL(dali::make_string("slipstream_decode_crop: `flip` must be a boolean or "
                                      "integer tensor, got ", arg.type()));
      }
    }
  }

  void ReportFailures(int batch, bool multi) {
    std::string msg;
    int failed = 0;
    for (int i = 0; i < batch; i++) {
      if (results_[i].ok()) continue;
      if (failed < 8) {
        msg += failed ? "; " : "";
        msg += "sample " + std::to_string(i);
        if (multi) msg += " view " + std::to_string(failed_view_[i]);
        msg += ": " + results_[i].message;
      }
      failed++;
    }
    if (failed == 0) return;
    if (failed > 8) msg += "; ... and " + std::to_string(failed - 8) + " more";
    DALI_FAIL(dali::make_string("slipstream_decode_crop: ", failed, " of ", batch,
                                " samples failed to decode: ", msg));
  }

  int32_t out_h_ = 0;
  int32_t out_w_ = 0;
  std::vector<uint8_t> flips_;
  std::vector<size_t> flip_offsets_;
  std::vector<int64_t> flip_counts_;
  std::vector<slipstream::Result> results_;
  std::vector<int64_t> failed_view_;
};

}  // namespace slipstream_dali

// The registration macros expect to be expanded inside namespace dali.
namespace dali {

DALI_REGISTER_OPERATOR(SlipstreamDecodeCrop, ::slipstream_dali::SlipstreamDecodeCrop, CPU);

DALI_SCHEMA(SlipstreamDecodeCrop)
    .DocStr(R"(Fused JPEG decode, crop, antialiased resize and optional horizontal flip.

Wraps slipstream's C++ kernel (libjpeg-turbo DCT scaling + region-of-interest decode +
Pillow-compatible antialiased bilinear resize): outputs are bit-identical to
``slipstream.native.decode_crop`` for the same windows. Gray and CMYK JPEGs are converted to
RGB. Output is uint8 ``[H, W, 3]`` (layout ``HWC``) per sample, or ``[K, H, W, 3]`` when the
windows of a sample have shape ``[K, 4]``: the views sharing a DCT scale are then resized
from one decode of the region covering their windows (one entropy decode per distinct
scale, not per view), each bit-identical to its single-window decode.
A corrupt sample or a window outside the image raises an error naming the sample index.)")
    .NumInput(2)
    .NumOutput(1)
    .InputDox(0, "jpegs", "TensorList of uint8, 1-D per sample",
              "Encoded JPEG bytes, one ragged 1-D buffer per sample.")
    .InputDox(1, "windows", "TensorList of int32, shape [4] or [K, 4] per sample",
              "Crop windows ``(y, x, h, w)`` in source-pixel coordinates; must lie inside the "
              "image.")
    .AddArg("size",
            "Output size: one int (square) or ``[height, width]``.",
            DALI_INT_VEC)
    .AddOptionalArg("flip",
                    "Mirror the output horizontally where non-zero. A per-sample tensor "
                    "argument (bool or any integer type) holding 1 value per sample, or K values "
                    "(one per view) with ``[K, 4]`` windows.",
                    0, true);

}  // namespace dali
