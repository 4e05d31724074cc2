// DALI CPU operator `SlipstreamDecodeCrop` (Python: fn.slipstream_decode_crop): a thin wrapper
// over slipstream::DecodeImageViews (csrc/decode_crop.h), the one JPEG / YUV420 / raw RGB
// dispatch the native backend uses too, so both CPU paths give bit-identical crops.
//
// Inputs:  0  encoded items, uint8 1-D per sample (ragged): JPEG bytes, or YUV420 (planar
//             I420, csrc/yuv420.h) items with format="yuv420"
//          1  crop windows, int32 [4] = (y, x, h, w) per sample, or [K, 4] for K views
// Args:    size    (int or [out_h, out_w])
//          flip    (per-sample tensor argument, default 0)
//          format  "jpeg" (default), "yuv420" or "raw" (raw RGB pixels, h x w x 3 bytes)
//          item_format  optional per-sample tensor argument: each item's ImageFormat code
//                  (csrc/decode_crop.h: 0 JPEG, 1 YUV420, 2 raw RGB), for a field mixing JPEG
//                  and raw items (FFCV smart/proportion files); overrides `format`
//          image_size  yuv420, raw and item_format only, required there: each item's true
//                  size (h, w), as a
//                  per-sample tensor argument (any integer type, 2 values per sample), or
//                  one constant [h, w] for the whole batch. A YUV420 item has no header, so
//                  its size travels beside it (from the companion's .meta.npy). An argument
//                  input rather than a third regular input: it is a per-sample parameter of
//                  the decode (as fn.resize's `size`), not data the operator transforms, and
//                  JPEG graphs do not carry an unused input.
//          status  bool, default false: add output 1, the per-sample status (below)
//          strict  bool, default false: a JPEG libjpeg warns about (corrupt data it decodes
//                  anyway, as garbage) fails (zero pixels, status 5) instead of keeping its
//                  pixels with status 5 (kJpegWarning, which is not a failure when false)
//          dtype   "uint8" (default), "float32", "float16" or "bfloat16" (int16 bits: DALI
//                  has no bfloat16 type): the fused float output, csrc/resize.h PixelMap
//          mean, std  3 floats each (units of x / 255), float dtypes only: normalization
//                  float32(v) * (1 / (255 * std)) - mean / std, then the cast; the same
//                  values as the native kernel and torch (slipstream ImageOutput)
// Outputs: 0  [H, W, 3] (layout HWC) of dtype per sample, or [K, H, W, 3] for [K, 4] windows
//          1  (status=true only) int32 scalar (shape []) per sample: 0 when it decoded, else
//             the kernel's StatusCode (csrc/status.h) of its first failed view
//
// Samples are decoded on DALI's thread pool (one task per sample). A failed sample (a corrupt
// JPEG, a YUV420 item too short for its image_size, a window outside the image) never stops
// the others; its pixels are zeroed. With status=true that is all: the batch comes back and
// output 1 says which samples failed (nothing is thrown across DALI for a sample's data).
// With status=false (the default, for hand-written pipelines) every failure of the batch is
// reported by one DALI error naming the sample index (and view) and the kernel's message.
// Malformed arguments (window shape, flip count, image_size) throw either way.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

// The plugin builds with -fvisibility=hidden (its copy of the csrc kernels stays private);
// DALI's own types (DALIException thrown by DALI_FAIL, the operator base) keep the default
// visibility they have in any DALI plugin.
#pragma GCC visibility push(default)
#include "dali/core/error_handling.h"
#include "dali/pipeline/operator/operator.h"
#pragma GCC visibility pop
#include "decode_crop.h"  // DecodeImageViewsAs: the one JPEG / YUV420 dispatch
#include "jpeg_decoder.h"  // TakeJpegWarnings
#include "resize.h"       // PixelMap: the fused float output

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
    with_status_ = spec.GetArgument<bool>("status");
    strict_ = spec.GetArgument<bool>("strict");
    const std::string format = spec.GetArgument<std::string>("format");
    if (format == "jpeg") {
      format_ = slipstream::kFormatJpeg;
    } else if (format == "yuv420") {
      format_ = slipstream::kFormatYuv420;
    } else if (format == "raw") {
      format_ = slipstream::kFormatRgb;
    } else {
      DALI_FAIL(dali::make_string("slipstream_decode_crop: `format` must be \"jpeg\", "
                                  "\"yuv420\" or \"raw\", got \"", format, "\""));
    }
    const std::string dtype = spec.GetArgument<std::string>("dtype");
    if (dtype == "uint8") {
      pixel_type_ = slipstream::kPixelUint8, out_type_ = DALI_UINT8;
    } else if (dtype == "float32") {
      pixel_type_ = slipstream::kPixelFloat32, out_type_ = DALI_FLOAT;
    } else if (dtype == "float16") {
      pixel_type_ = slipstream::kPixelFloat16, out_type_ = DALI_FLOAT16;
    } else if (dtype == "bfloat16") {
      pixel_type_ = slipstream::kPixelBFloat16, out_type_ = DALI_INT16;
    } else {
      DALI_FAIL(dali::make_string("slipstream_decode_crop: `dtype` must be \"uint8\", "
                                  "\"float32\", \"float16\" or \"bfloat16\", got \"", dtype,
                                  "\""));
    }
    const bool has_mean = spec.ArgumentDefined("mean"), has_std = spec.ArgumentDefined("std");
    DALI_ENFORCE(has_mean == has_std, "slipstream_decode_crop: give both `mean` and `std`");
    std::vector<float> mean, stdev;
    if (has_mean) {
      DALI_ENFORCE(pixel_type_ != slipstream::kPixelUint8,
                   "slipstream_decode_crop: `mean` and `std` need a float `dtype`");
      mean = spec.GetRepeatedArgument<float>("mean");
      stdev = spec.GetRepeatedArgument<float>("std");
      DALI_ENFORCE(mean.size() == 3 && stdev.size() == 3,
                   "slipstream_decode_crop: `mean` and `std` need 3 values each");
    }
    DALI_ENFORCE(slipstream::MakePixelMap(pixel_type_, has_mean ? mean.data() : nullptr,
                                          has_mean ? stdev.data() : nullptr, &map_),
                 "slipstream_decode_crop: `std` must be finite and non-zero, `mean` finite");
    const bool has_size = spec.ArgumentDefined("image_size");
    per_item_ = spec.ArgumentDefined("item_format");
    if (format_ != slipstream::kFormatJpeg || per_item_) {
      DALI_ENFORCE(has_size,
                   "slipstream_decode_crop: format=\"yuv420\", \"raw\" and `item_format` "
                   "need `image_size`, each item's true (height, width): such an item has no "
                   "header");
    } else {
      DALI_ENFORCE(!has_size,
                   "slipstream_decode_crop: `image_size` is for format=\"yuv420\" or \"raw\" "
                   "or with `item_format` only (a JPEG carries its size in its header)");
    }
  }

 protected:
  bool SetupImpl(std::vector<OutputDesc> &output_desc, const Workspace &ws) override {
    const auto &jpegs = ws.Input<CPUBackend>(0);
    const auto &windows = ws.Input<CPUBackend>(1);
    const int batch = jpegs.num_samples();
    DALI_ENFORCE(jpegs.type() == DALI_UINT8,
                 dali::make_string("slipstream_decode_crop: input 0 (",
                                   format_ == slipstream::kFormatJpeg ? "encoded JPEG bytes"
                                                                      : "YUV420 items",
                                   ") must be uint8, got ", jpegs.type()));
    DALI_ENFORCE(windows.type() == DALI_INT32,
                 dali::make_string("slipstream_decode_crop: input 1 (crop windows) must be "
                                   "int32, got ", windows.type()));
    const int wdim = windows.sample_dim();
    DALI_ENFORCE(wdim == 1 || wdim == 2,
                 "slipstream_decode_crop: crop windows must have shape [4] or [K, 4] per sample");
    ReadFlips(ws, batch);
    if (format_ != slipstream::kFormatJpeg || per_item_) ReadImageSizes(ws, batch);
    if (per_item_) ReadItemFormats(ws, batch);
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
    output_desc.resize(with_status_ ? 2 : 1);
    output_desc[0].type = out_type_;
    output_desc[0].shape = std::move(shape);
    if (with_status_) {
      output_desc[1].type = DALI_INT32;
      output_desc[1].shape = dali::uniform_list_shape(batch, dali::TensorShape<>{});
    }
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
    const int64_t view_elems = static_cast<int64_t>(out_h_) * out_w_ * 3;
    const int64_t view_bytes = view_elems * slipstream::PixelTypeBytes(pixel_type_);
    auto &pool = ws.GetThreadPool();
    for (int i = 0; i < batch; i++) {
      const int64_t nbytes = jpegs.tensor_shape(i).num_elements();
      const int64_t views = multi ? windows.tensor_shape(i)[0] : 1;
      pool.AddWork(
          [&, i, nbytes, views](int) {
            const uint8_t *data = jpegs.tensor<uint8_t>(i);
            const int32_t *win = windows.tensor<int32_t>(i);
            uint8_t *out = static_cast<uint8_t *>(output.raw_mutable_tensor(i));
            std::vector<uint8_t> view_flips(static_cast<size_t>(views));
            std::vector<void *> view_outs(static_cast<size_t>(views));
            std::vector<int32_t> view_sizes(static_cast<size_t>(2 * views));
            for (int64_t k = 0; k < views; k++) {
              view_flips[k] = flips_[flip_offsets_[i] + (flip_counts_[i] == 1 ? 0 : k)];
              view_outs[k] = out + k * view_bytes;
              view_sizes[2 * k] = out_h_, view_sizes[2 * k + 1] = out_w_;
            }
            slipstream::EncodedImage image;
            image.data = data;
            image.size = static_cast<uint64_t>(nbytes);
            image.format = per_item_ ? item_formats_[i] : format_;
            if (image.format != slipstream::kFormatJpeg) {
              image.height = image_hw_[2 * i];
              image.width = image_hw_[2 * i + 1];
            }
            int32_t failed = 0;
            slipstream::TakeJpegWarnings();  // this sample's warnings only
            // JPEG: one entropy decode per distinct DCT scale among the K views.
            slipstream::Result r = slipstream::DecodeImageViewsAs(
                image, win, static_cast<int32_t>(views), view_sizes.data(), view_flips.data(),
                map_, view_outs.data(), slipstream::kScaleAny, &failed);
            const slipstream::JpegWarnings warned = slipstream::TakeJpegWarnings();
            if (r.ok() && warned.count > 0) {  // corrupt data decoded anyway
              r = slipstream::Result::Fail(slipstream::kJpegWarning,
                                           "libjpeg warning: " + warned.first);
              if (!strict_) {  // pixels kept; the status still says so
                results_[i] = std::move(r);
                return;
              }
            }
            if (!r.ok()) {  // pixel value 0, mapped as the outputs are (zero for uint8)
              slipstream::FillPixels(0, views * view_elems, map_, out);
              results_[i] = std::move(r);
              failed_view_[i] = failed;
            }
          },
          nbytes);  // larger files first: better load balance
    }
    pool.RunAll();
    if (!with_status_) {
      ReportFailures(batch, multi);
      return;
    }
    auto &status = ws.Output<CPUBackend>(1);
    for (int i = 0; i < batch; i++) *status.mutable_tensor<int32_t>(i) = results_[i].code;
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
      flip_offsets_[i] = flips_.size();
      flip_counts_[i] = arg.tensor_shape(i).num_elements();
      const bool known = VisitIntegers(arg, i, [&](const auto *p, int64_t n) {
        for (int64_t k = 0; k < n; k++) flips_.push_back(p[k] != 0);
      });
      if (!known) {
        DALI_FAIL(dali::make_string("slipstream_decode_crop: `flip` must be a boolean or "
                                    "integer tensor, got ", arg.type()));
      }
    }
  }

  // Per-sample true sizes (h, w) of YUV420 items, from the tensor argument (2 integers per
  // sample, any integer type) or the constant [h, w].
  void ReadImageSizes(const Workspace &ws, int batch) {
    image_hw_.resize(2 * static_cast<size_t>(batch));
    if (!spec_.HasTensorArgument("image_size")) {
      std::vector<int> hw = spec_.GetRepeatedArgument<int>("image_size");
      DALI_ENFORCE(hw.size() == 2,
                   dali::make_string("slipstream_decode_crop: `image_size` must hold 2 values "
                                     "(height, width), got ", hw.size()));
      for (int i = 0; i < batch; i++) image_hw_[2 * i] = hw[0], image_hw_[2 * i + 1] = hw[1];
      return;
    }
    const auto &arg = ws.ArgumentInput("image_size");
    DALI_ENFORCE(arg.num_samples() == batch,
                 dali::make_string("slipstream_decode_crop: `image_size` has ", arg.num_samples(),
                                   " samples, the batch has ", batch));
    for (int i = 0; i < batch; i++) {
      DALI_ENFORCE(arg.tensor_shape(i).num_elements() == 2,
                   dali::make_string("slipstream_decode_crop: sample ", i, ": `image_size` must "
                                     "hold 2 values (height, width), got shape ",
                                     arg.tensor_shape(i)));
      const bool known = arg.type() != DALI_BOOL &&
                         VisitIntegers(arg, i, [&](const auto *p, int64_t) {
                           for (int k = 0; k < 2; k++) image_hw_[2 * i + k] = ClampToInt32(p[k]);
                         });
      if (!known) {
        DALI_FAIL(dali::make_string("slipstream_decode_crop: `image_size` must be an "
                                    "integer tensor, got ", arg.type()));
      }
    }
  }

  // Per-sample ImageFormat codes from the `item_format` tensor argument (one integer per
  // sample); an unknown code reaches the kernel, which rejects that sample by name.
  void ReadItemFormats(const Workspace &ws, int batch) {
    item_formats_.assign(batch, slipstream::kFormatJpeg);
    if (!spec_.HasTensorArgument("item_format")) {
      const int code = spec_.GetArgument<int>("item_format");
      item_formats_.assign(batch, code);
      return;
    }
    const auto &arg = ws.ArgumentInput("item_format");
    DALI_ENFORCE(arg.num_samples() == batch,
                 dali::make_string("slipstream_decode_crop: `item_format` has ",
                                   arg.num_samples(), " samples, the batch has ", batch));
    for (int i = 0; i < batch; i++) {
      DALI_ENFORCE(arg.tensor_shape(i).num_elements() == 1,
                   dali::make_string("slipstream_decode_crop: sample ", i, ": `item_format` "
                                     "must hold 1 value, got shape ", arg.tensor_shape(i)));
      const bool known = arg.type() != DALI_BOOL &&
                         VisitIntegers(arg, i, [&](const auto *p, int64_t) {
                           item_formats_[i] = ClampToInt32(p[0]);
                         });
      if (!known) {
        DALI_FAIL(dali::make_string("slipstream_decode_crop: `item_format` must be an "
                                    "integer tensor, got ", arg.type()));
      }
    }
  }

  // Calls visit(values, count) with sample i of a boolean or integer tensor argument as a
  // `const T*` of its own element type; false (nothing called) for any other type.
  template <typename Visit>
  static bool VisitIntegers(const dali::TensorList<CPUBackend> &arg, int i, Visit &&visit) {
    const int64_t n = arg.tensor_shape(i).num_elements();
    switch (arg.type()) {
#define SLIPSTREAM_INTEGER_CASE(ID, T) \
  case ID:                             \
    visit(arg.tensor<T>(i), n);        \
    return true;
      SLIPSTREAM_INTEGER_CASE(DALI_BOOL, bool)
      SLIPSTREAM_INTEGER_CASE(DALI_UINT8, uint8_t)
      SLIPSTREAM_INTEGER_CASE(DALI_INT8, int8_t)
      SLIPSTREAM_INTEGER_CASE(DALI_UINT16, uint16_t)
      SLIPSTREAM_INTEGER_CASE(DALI_INT16, int16_t)
      SLIPSTREAM_INTEGER_CASE(DALI_UINT32, uint32_t)
      SLIPSTREAM_INTEGER_CASE(DALI_INT32, int32_t)
      SLIPSTREAM_INTEGER_CASE(DALI_UINT64, uint64_t)
      SLIPSTREAM_INTEGER_CASE(DALI_INT64, int64_t)
#undef SLIPSTREAM_INTEGER_CASE
      default:
        return false;
    }
  }

  // Out-of-range sizes become -1: the kernel then rejects that sample by name.
  template <typename T>
  static int32_t ClampToInt32(T v) {
    if constexpr (std::is_signed_v<T>) {
      if (v < 0) return -1;
    }
    return static_cast<uint64_t>(v) > static_cast<uint64_t>(INT32_MAX) ? -1
                                                                        : static_cast<int32_t>(v);
  }

  void ReportFailures(int batch, bool multi) {
    std::string msg;
    int failed = 0;
    for (int i = 0; i < batch; i++) {
      if (results_[i].ok() || (!strict_ && results_[i].code == slipstream::kJpegWarning)) continue;
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
  int32_t format_ = slipstream::kFormatJpeg;
  int32_t pixel_type_ = slipstream::kPixelUint8;
  dali::DALIDataType out_type_ = DALI_UINT8;
  slipstream::PixelMap map_;  // uint8 -> output elements (normalize + cast)
  bool with_status_ = false;  // output 1: per-sample status instead of a DALI error
  bool strict_ = false;       // libjpeg warnings fail the sample
  std::vector<int32_t> image_hw_;  // YUV420, raw RGB: (h, w) per sample
  bool per_item_ = false;              // item_format given: per-sample formats
  std::vector<int32_t> item_formats_;  // ImageFormat code per sample (per_item_ only)
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
    .DocStr(R"(Fused JPEG (or YUV420, or raw RGB) decode, crop, antialiased resize and flip.

Wraps slipstream's C++ kernel (libjpeg-turbo DCT scaling + region-of-interest decode +
Pillow-compatible antialiased bilinear resize): outputs are bit-identical to
``slipstream.native.decode_crop`` for the same windows. With ``format="yuv420"`` the inputs
are planar I420 items (a slip cache's YUV420 companion) and ``image_size`` gives each item's
true ``(height, width)``: only the window's rows and columns are converted to RGB, then
resized as the JPEG path does (bit-identical to ``slipstream.native.yuv420``). Gray and
CMYK JPEGs are converted to RGB. Output is uint8 ``[H, W, 3]`` (layout ``HWC``) per sample,
or ``[K, H, W, 3]`` when the windows of a sample have shape ``[K, 4]``: JPEG views sharing a
DCT scale are then resized from one decode of the region covering their windows (one
entropy decode per distinct scale, not per view), each bit-identical to its single-window
decode. With ``format="raw"`` (or a per-sample ``item_format`` of 2) an item is raw RGB pixels
(``height x width x 3`` bytes, its size in ``image_size``): no decode, the window is resized
from full resolution as the YUV420 path does (a window of the output's size is copied).
A sample that fails to decode (corrupt or truncated data, a YUV420 item shorter than its
``image_size`` needs, a window outside the image) gets zero pixels and never stops the other
samples. With ``status=True`` the operator has a second output, an int32 scalar per sample
(0 = decoded, else slipstream's status code, as ``slipstream.native.STATUS_*``), and raises
nothing for a sample's data; with ``status=False`` (default) it raises one error naming
every failed sample index.)")
    .NumInput(2)
    .NumOutput(1)
    // A second output only with status=True (DALI counts the outputs per OpSpec).
    .OutputFn([](const dali::OpSpec &spec) { return spec.GetArgument<bool>("status") ? 2 : 1; })
    .InputDox(0, "jpegs", "TensorList of uint8, 1-D per sample",
              "Encoded JPEG bytes (or YUV420 items with ``format=\"yuv420\"``), one ragged "
              "1-D buffer per sample.")
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
                    0, true)
    .AddOptionalArg("format",
                    "What input 0 holds: ``\"jpeg\"`` (encoded JPEG), ``\"yuv420\"`` (planar "
                    "I420 items, odd sides padded to even) or ``\"raw\"`` (raw RGB pixels, "
                    "height x width x 3 bytes); the last two need ``image_size``.",
                    "jpeg")
    .AddOptionalArg("item_format",
                    "Per-sample format code (0 JPEG, 1 YUV420, 2 raw RGB) for a batch mixing "
                    "formats (e.g. a slip cache field with JPEG and raw items); overrides "
                    "``format``; needs ``image_size``.",
                    0, true)
    .AddOptionalArg(
        "image_size",
        "``format=\"yuv420\"`` / ``\"raw\"`` or with ``item_format`` only (required there): "
        "each item's true ``(height, width)``. A "
        "per-sample tensor argument (any integer type, 2 values per sample) or one constant "
        "``[height, width]`` for every sample.",
        DALI_INT_VEC, nullptr, true)
    .AddOptionalArg("status",
                    "Add a second output: an int32 scalar per sample, 0 when the sample decoded, "
                    "else the kernel's status code (1 invalid argument, e.g. a window outside "
                    "the image or a YUV420 item too short; 2 corrupt or truncated data; 3 "
                    "unsupported; 4 internal error). A failed sample's pixels are zero. Then "
                    "no error is raised for a sample's data, only for malformed arguments. "
                    "5: decoded although libjpeg warned about corrupt data (pixels kept unless "
                    "``strict``).",
                    false)
    .AddOptionalArg("strict",
                    "Treat libjpeg's corrupt-data warnings (a bad Huffman code, corrupt scan "
                    "data: the image decodes as garbage) as a failure of the sample: zero "
                    "pixels, status 5, and an error with ``status=False``. When false "
                    "(default) such a sample keeps its pixels and only its status says 5.",
                    false)
    .AddOptionalArg("dtype",
                    "Output element type: ``\"uint8\"``, ``\"float32\"``, ``\"float16\"`` or "
                    "``\"bfloat16\"`` (returned as int16 holding the bits: DALI has no bfloat16 "
                    "type). Float outputs are the 8-bit result mapped per channel (flip "
                    "included), normalized with ``mean`` and ``std`` when given.",
                    "uint8")
    .AddOptionalArg(
        "mean",
        "Float ``dtype`` only, with ``std``: per-channel mean of ``x / 255`` (3 values). The "
        "output is ``float32(x) * (1 / (255 * std)) - mean / std`` in float32 (multiply and "
        "subtract each rounded; torch's ``(x / 255 - mean) / std`` as slipstream computes it), "
        "then cast rounding to nearest even.",
        DALI_FLOAT_VEC, nullptr)
    .AddOptionalArg("std",
                    "Per-channel standard deviation of ``x / 255`` (3 values), with ``mean``.",
                    DALI_FLOAT_VEC, nullptr);

}  // namespace dali
