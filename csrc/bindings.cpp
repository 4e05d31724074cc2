// pybind11 bindings for the slipstream C++ kernels: module `slipstream._core`.
// Only slipstream/native (decode.py, yuv420.py) imports this module; it turns CoreError into
// DecodeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch.h"
#include "decode_crop.h"
#include "jpeg_decoder.h"
#include "resize.h"
#include "yuv420.h"

namespace py = pybind11;
using namespace slipstream;

namespace {

struct CoreError : std::runtime_error {
  int32_t code;
  CoreError(int32_t c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

using U8Array = py::array_t<uint8_t, py::array::c_style>;

void Check(const Result& r) {
  if (!r.ok()) throw CoreError(r.code, r.message);
}

// dtype equivalence (not identity: unpickled or byte-order-marked dtypes are other objects).
template <typename T>
bool HasDtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

// A 1-D view of a C-contiguous uint8 array (no copy, any ndim).
const uint8_t* BytesOf(const py::array& a, uint64_t* size) {
  if (!HasDtype<uint8_t>(a)) throw py::value_error("data must be uint8");
  if (!(a.flags() & py::array::c_style)) throw py::value_error("data must be C-contiguous");
  *size = static_cast<uint64_t>(a.nbytes());
  return static_cast<const uint8_t*>(a.data());
}

// Checks a batch argument's dtype and contiguity.
void Need(const py::array& a, bool dtype_ok, const char* name) {
  if (!dtype_ok) throw py::value_error(std::string(name) + ": wrong dtype");
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous");
  }
}

// uint64 item offsets and sizes, and a writeable uint8 output.
void NeedItemsAndOut(const py::array& offsets, const py::array& sizes, py::array& out) {
  Need(offsets, HasDtype<uint64_t>(offsets), "offsets");
  Need(sizes, HasDtype<uint64_t>(sizes), "sizes");
  Need(out, HasDtype<uint8_t>(out), "out");
  if (!out.writeable()) throw py::value_error("out must be writeable");
}

// [(index, code, message)] of the failed samples of a batch.
py::list Failures(const std::vector<int32_t>& codes, const std::vector<std::string>& messages) {
  py::list failures;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] != kOk) failures.append(py::make_tuple(i, codes[i], messages[i]));
  }
  return failures;
}

py::tuple PyReadHeader(const py::array& data) {
  uint64_t size = 0;
  const uint8_t* p = BytesOf(data, &size);
  JpegHeader h;
  Result r;
  {
    py::gil_scoped_release release;
    r = ReadJpegHeader(p, size, &h);
  }
  Check(r);
  return py::make_tuple(h.height, h.width, h.components, ColorSpaceName(h.colorspace),
                        h.progressive);
}

U8Array PyDecodeFull(const py::array& data, int32_t scale_num) {
  uint64_t size = 0;
  const uint8_t* p = BytesOf(data, &size);
  if (scale_num < 1 || scale_num > 8) throw py::value_error("scale_num must be in 1..8");
  JpegHeader h;
  Result r;
  {
    py::gil_scoped_release release;
    r = ReadJpegHeader(p, size, &h);
  }
  Check(r);
  const int32_t oh = ScaledDim(h.height, scale_num), ow = ScaledDim(h.width, scale_num);
  U8Array out({static_cast<py::ssize_t>(oh), static_cast<py::ssize_t>(ow), py::ssize_t{3}});
  uint8_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    r = DecodeJpegFull(p, size, scale_num, o, static_cast<uint64_t>(oh) * ow * 3);
  }
  Check(r);
  return out;
}

// decode_views: K views [K, 4] of one stored image of any format (DecodeImageViews, the one
// JPEG / YUV420 dispatch), all of one output size -> uint8 [K, out_h, out_w, 3].
U8Array PyDecodeViews(const py::array& data, const py::array& windows,
                      const std::vector<int32_t>& size, const py::array& flips, int32_t format,
                      int32_t height, int32_t width, int32_t policy) {
  uint64_t data_size = 0;
  const uint8_t* p = BytesOf(data, &data_size);
  if (windows.ndim() != 2 || windows.shape(1) != 4 || !HasDtype<int32_t>(windows) ||
      !(windows.flags() & py::array::c_style)) {
    throw py::value_error("windows must be a C-contiguous int32 array [K, 4]");
  }
  const int64_t views = windows.shape(0);
  if (views < 1 || views > (1 << 20)) throw py::value_error("need 1 <= K <= 2**20 views");
  if (flips.ndim() != 1 || flips.shape(0) != views || !HasDtype<uint8_t>(flips) ||
      !(flips.flags() & py::array::c_style)) {
    throw py::value_error("flips must be a C-contiguous uint8 array [K]");
  }
  if (size.size() != 2 || size[0] < 1 || size[1] < 1) {
    throw py::value_error("size must be (out_h, out_w), both >= 1");
  }
  if (format != kFormatJpeg && format != kFormatYuv420 && format != kFormatRgb) {
    throw py::value_error("format must be 0 (JPEG), 1 (YUV420) or 2 (raw RGB)");
  }
  const int32_t out_h = size[0], out_w = size[1];
  U8Array out({static_cast<py::ssize_t>(views), static_cast<py::ssize_t>(out_h),
               static_cast<py::ssize_t>(out_w), py::ssize_t{3}});
  uint8_t* o = out.mutable_data();
  const auto* w = static_cast<const int32_t*>(windows.data());
  const auto* fl = static_cast<const uint8_t*>(flips.data());
  Result r;
  int32_t failed = 0;
  {
    py::gil_scoped_release release;
    EncodedImage image;
    image.data = p;
    image.size = data_size;
    image.format = format;
    image.height = height;
    image.width = width;
    std::vector<uint8_t*> outs(static_cast<size_t>(views));
    std::vector<int32_t> out_hw(static_cast<size_t>(2 * views));
    for (int64_t k = 0; k < views; ++k) {
      outs[k] = o + k * static_cast<int64_t>(out_h) * out_w * 3;
      out_hw[2 * k] = out_h, out_hw[2 * k + 1] = out_w;
    }
    r = DecodeImageViews(image, w, static_cast<int32_t>(views), out_hw.data(), fl, outs.data(),
                         policy, &failed);
  }
  if (!r.ok() && views > 1) r.message = "view " + std::to_string(failed) + ": " + r.message;
  Check(r);
  return out;
}

// The PixelMap of an output type and optional per-channel mean / std (3 floats each).
PixelMap MakeMap(int32_t pixel_type, const py::object& mean, const py::object& std) {
  if (PixelTypeBytes(pixel_type) == 0) {
    throw py::value_error("pixel_type must be 0 (uint8), 1 (float32), 2 (float16) or 3 "
                          "(bfloat16)");
  }
  if (mean.is_none() != std.is_none()) throw py::value_error("give both mean and std, or none");
  std::vector<float> m, sd;
  if (!mean.is_none()) {
    if (pixel_type == kPixelUint8) throw py::value_error("uint8 output cannot be normalized");
    m = mean.cast<std::vector<float>>();
    sd = std.cast<std::vector<float>>();
    if (m.size() != 3 || sd.size() != 3) throw py::value_error("mean and std need 3 values");
  }
  PixelMap map;
  if (!MakePixelMap(pixel_type, m.empty() ? nullptr : m.data(),
                    sd.empty() ? nullptr : sd.data(), &map)) {
    throw py::value_error("std must be finite and non-zero, mean finite");
  }
  return map;
}

// Checks one output's element type against the pixel type: uint8, float32, or any 2-byte
// dtype holding float16 / bfloat16 bits.
void NeedOutType(const py::array& out, int32_t pixel_type) {
  bool ok = false;
  switch (pixel_type) {
    case kPixelUint8: ok = HasDtype<uint8_t>(out); break;
    case kPixelFloat32: ok = HasDtype<float>(out); break;
    default: ok = out.itemsize() == 2; break;
  }
  Need(out, ok, "out (for this pixel_type)");
  if (!out.writeable()) throw py::value_error("out must be writeable");
}

// pixel_lut: the values a byte v of channel c becomes, [3, 256] float32 (or uint16 bits).
py::array PyPixelLut(int32_t pixel_type, const py::object& mean, const py::object& std) {
  const PixelMap map = MakeMap(pixel_type, mean, std);
  if (pixel_type == kPixelFloat16 || pixel_type == kPixelBFloat16) {
    py::array_t<uint16_t> out({py::ssize_t{3}, py::ssize_t{256}});
    std::memcpy(out.mutable_data(), map.lut16, sizeof(map.lut16));
    return out;
  }
  py::array_t<float> out({py::ssize_t{3}, py::ssize_t{256}});
  std::memcpy(out.mutable_data(), map.lut, sizeof(map.lut));
  return out;
}

// decode_views_batch: K views per sample into K outputs [B, H_k, W_k, 3] (DecodeViewsBatch).
py::list PyDecodeViewsBatch(const py::array& data, const py::array& offsets,
                         const py::array& sizes, const py::array& windows,
                         const py::array& flips, std::vector<py::array> outs,
                         int32_t num_threads, int32_t policy, int32_t format,
                         const py::object& heights, const py::object& widths,
                         int32_t pixel_type, const py::object& mean, const py::object& std,
                         const py::object& formats) {
  uint64_t data_size = 0;
  const uint8_t* d = BytesOf(data, &data_size);
  if (outs.empty()) throw py::value_error("need at least one output");
  const PixelMap map = MakeMap(pixel_type, mean, std);
  std::vector<int32_t> out_hw;
  for (py::array& out : outs) {
    Need(offsets, HasDtype<uint64_t>(offsets), "offsets");
    Need(sizes, HasDtype<uint64_t>(sizes), "sizes");
    NeedOutType(out, pixel_type);
    if (out.ndim() != 4 || out.shape(3) != 3 || out.shape(1) < 1 || out.shape(2) < 1) {
      throw py::value_error("out must be [B, H, W, 3] with H, W >= 1");
    }
    if (out.shape(0) != outs[0].shape(0)) {
      throw py::value_error("every view's out must have the same batch size B");
    }
    out_hw.push_back(static_cast<int32_t>(out.shape(1)));
    out_hw.push_back(static_cast<int32_t>(out.shape(2)));
  }
  Need(windows, HasDtype<int32_t>(windows), "windows");
  Need(flips, HasDtype<uint8_t>(flips), "flips");
  const int64_t b = outs[0].shape(0);
  const int64_t k = static_cast<int64_t>(outs.size());
  if (offsets.size() != b || sizes.size() != b || flips.size() != b * k ||
      windows.size() != 4 * b * k) {
    throw py::value_error(
        "offsets and sizes must hold B values, windows B*K*4 and flips B*K (B = out's batch "
        "size, K = number of outs)");
  }
  const int32_t* ph = nullptr;
  const int32_t* pwid = nullptr;
  const uint8_t* pfmt = nullptr;
  py::array h_arr, w_arr, f_arr;
  bool need_sizes = format != kFormatJpeg;
  if (!formats.is_none()) {  // per-sample format codes: a field mixing JPEG and raw RGB
    f_arr = formats.cast<py::array>();
    Need(f_arr, HasDtype<uint8_t>(f_arr), "formats");
    if (f_arr.size() != b) throw py::value_error("formats must hold B values (uint8 codes)");
    pfmt = static_cast<const uint8_t*>(f_arr.data());
    for (int64_t i = 0; i < b; ++i) {
      if (pfmt[i] > kFormatRgb) {
        throw py::value_error("formats holds an unknown code " + std::to_string(pfmt[i]) +
                              " (0 JPEG, 1 YUV420, 2 raw RGB)");
      }
      need_sizes = need_sizes || pfmt[i] != kFormatJpeg;
    }
  } else if (format != kFormatJpeg && format != kFormatYuv420 && format != kFormatRgb) {
    throw py::value_error("format must be 0 (JPEG), 1 (YUV420) or 2 (raw RGB)");
  }
  if (need_sizes) {
    if (heights.is_none() || widths.is_none()) {
      throw py::value_error("YUV420 and raw RGB items need heights and widths");
    }
    h_arr = heights.cast<py::array>();
    w_arr = widths.cast<py::array>();
    Need(h_arr, HasDtype<int32_t>(h_arr), "heights");
    Need(w_arr, HasDtype<int32_t>(w_arr), "widths");
    if (h_arr.size() != b || w_arr.size() != b) {
      throw py::value_error("heights and widths must match out's batch size");
    }
    ph = static_cast<const int32_t*>(h_arr.data());
    pwid = static_cast<const int32_t*>(w_arr.data());
  }
  std::vector<int32_t> codes(static_cast<size_t>(b), 0);
  std::vector<std::string> messages;
  const auto* po = static_cast<const uint64_t*>(offsets.data());
  const auto* ps = static_cast<const uint64_t*>(sizes.data());
  const auto* pw = static_cast<const int32_t*>(windows.data());
  const auto* pf = static_cast<const uint8_t*>(flips.data());
  std::vector<uint8_t*> pouts;
  for (py::array& out : outs) pouts.push_back(static_cast<uint8_t*>(out.mutable_data()));
  {
    py::gil_scoped_release release;
    DecodeViewsBatch(d, data_size, po, ps, b, static_cast<int32_t>(k), pw, pf, out_hw.data(),
                     pouts.data(), num_threads, codes.data(), &messages, policy, format, ph,
                     pwid, &map, pfmt);
  }
  return Failures(codes, messages);
}

U8Array PyRgbToYuv420(const U8Array& img) {
  if (img.ndim() != 3 || img.shape(2) != 3 || img.shape(0) < 1 || img.shape(1) < 1) {
    throw py::value_error("img must be [H, W, 3] with H, W >= 1");
  }
  const int32_t h = static_cast<int32_t>(img.shape(0)), w = static_cast<int32_t>(img.shape(1));
  U8Array out({static_cast<py::ssize_t>(I420Size(h, w))});
  const uint8_t* in = img.data();
  uint8_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    RgbToI420(in, static_cast<int64_t>(w) * 3, h, w, o);
  }
  return out;
}

U8Array PyYuv420ToRgb(const py::array& data, int32_t h, int32_t w) {
  uint64_t size = 0;
  const uint8_t* p = BytesOf(data, &size);
  if (h < 1 || w < 1) throw py::value_error("height and width must be >= 1");
  if (size < I420Size(h, w)) {
    throw CoreError(kInvalidArgument, "YUV420 item is " + std::to_string(size) +
                                          " bytes, a " + std::to_string(h) + "x" +
                                          std::to_string(w) + " image needs " +
                                          std::to_string(I420Size(h, w)));
  }
  U8Array out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w), py::ssize_t{3}});
  uint8_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    I420ToRgbRegion(p, h, w, 0, 0, w, h, o, static_cast<int64_t>(w) * 3);
  }
  return out;
}

py::list PyJpegToYuv420Batch(const py::array& data, const py::array& offsets,
                             const py::array& sizes, const py::array& heights,
                             const py::array& widths, py::array& out,
                             const py::array& out_offsets, int32_t num_threads,
                             const py::object& formats) {
  uint64_t data_size = 0;
  const uint8_t* d = BytesOf(data, &data_size);
  NeedItemsAndOut(offsets, sizes, out);
  Need(heights, HasDtype<int32_t>(heights), "heights");
  Need(widths, HasDtype<int32_t>(widths), "widths");
  Need(out_offsets, HasDtype<uint64_t>(out_offsets), "out_offsets");
  const int64_t b = offsets.size();
  if (sizes.size() != b || heights.size() != b || widths.size() != b ||
      out_offsets.size() != b) {
    throw py::value_error("offsets, sizes, heights, widths and out_offsets must have one length");
  }
  std::vector<int32_t> codes(static_cast<size_t>(b), 0);
  std::vector<std::string> messages;
  const auto* po = static_cast<const uint64_t*>(offsets.data());
  const auto* ps = static_cast<const uint64_t*>(sizes.data());
  const auto* ph = static_cast<const int32_t*>(heights.data());
  const auto* pw = static_cast<const int32_t*>(widths.data());
  const auto* poo = static_cast<const uint64_t*>(out_offsets.data());
  auto* pout = static_cast<uint8_t*>(out.mutable_data());
  const uint64_t out_size = static_cast<uint64_t>(out.nbytes());
  const uint8_t* pfmt = nullptr;
  py::array f_arr;
  if (!formats.is_none()) {
    f_arr = formats.cast<py::array>();
    Need(f_arr, HasDtype<uint8_t>(f_arr), "formats");
    if (f_arr.size() != b) throw py::value_error("formats must hold one code per item");
    pfmt = static_cast<const uint8_t*>(f_arr.data());
  }
  {
    py::gil_scoped_release release;
    JpegToI420Batch(d, data_size, po, ps, b, ph, pw, pout, out_size, poo, num_threads,
                    codes.data(), &messages, pfmt);
  }
  return Failures(codes, messages);
}

U8Array PyResizeBox(const U8Array& img, double x0, double y0, double x1, double y1,
                    int32_t out_h, int32_t out_w, bool flip) {
  if (img.ndim() != 3 || img.shape(2) != 3) throw py::value_error("img must be [H, W, 3]");
  const int32_t h = static_cast<int32_t>(img.shape(0)), w = static_cast<int32_t>(img.shape(1));
  if (!(0 <= x0 && x0 < x1 && x1 <= w && 0 <= y0 && y0 < y1 && y1 <= h)) {
    throw py::value_error("box must satisfy 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H");
  }
  if (out_h < 1 || out_w < 1) throw py::value_error("output size must be >= 1");
  U8Array out({static_cast<py::ssize_t>(out_h), static_cast<py::ssize_t>(out_w), py::ssize_t{3}});
  const uint8_t* in = img.data();
  uint8_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    ResizeBoxRGB(in, h, w, static_cast<int64_t>(w) * 3, x0, y0, x1, y1, out_h, out_w, flip, o);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "slipstream C++ kernels: libjpeg-turbo ROI + DCT-scaled decode, fused crop-resize.";
  py::register_exception<CoreError>(m, "CoreError", PyExc_ValueError);
  m.def("read_jpeg_header", &PyReadHeader, py::arg("data"),
        "(height, width, components, colorspace, progressive) from the JPEG header.");
  m.def("decode_full", &PyDecodeFull, py::arg("data"), py::arg("scale_num") = 8,
        "Decode the whole image (scaled by scale_num/8) to uint8 [H, W, 3] RGB.");
  m.def("decode_views", &PyDecodeViews, py::arg("data"), py::arg("windows"), py::arg("size"),
        py::arg("flips"), py::arg("format") = static_cast<int>(kFormatJpeg),
        py::arg("height") = 0, py::arg("width") = 0, py::arg("scale_policy") = 0,
        "K views (windows int32 [K, 4], flips uint8 [K]) of one stored image of any format "
        "(format 0 JPEG, 1 YUV420 or 2 raw RGB with its true height and width) -> uint8 [K, H, W, 3], "
        "size = (H, W); JPEG views share one entropy decode per distinct DCT scale.");
  m.def("decode_views_batch", &PyDecodeViewsBatch, py::arg("data"), py::arg("offsets"),
        py::arg("sizes"), py::arg("windows"), py::arg("flips"), py::arg("outs"),
        py::arg("num_threads") = 0, py::arg("scale_policy") = 0, py::arg("format") = 0,
        py::arg("heights") = py::none(), py::arg("widths") = py::none(),
        py::arg("pixel_type") = static_cast<int>(kPixelUint8), py::arg("mean") = py::none(),
        py::arg("std") = py::none(), py::arg("formats") = py::none(),
        "K views per sample (windows [B, K, 4], flips [B, K]) into outs (K arrays "
        "[B, H_k, W_k, 3]); one entropy decode per distinct DCT scale. Returns "
        "[(index, code, message)] of the failed samples (their outputs zeroed). format 1 = "
        "YUV420 items, 2 = raw RGB (then heights, widths: int32 [B] true sizes); formats "
        "(uint8 [B]) gives each sample's code instead. pixel_type 1/2/3 writes "
        "float32 / float16 / bfloat16 (2-byte arrays of bits) elements: "
        "float32(v) * (1 / (255 * std)) - mean / std, rounded per operation, then cast.");
  m.def("pixel_lut", &PyPixelLut, py::arg("pixel_type"), py::arg("mean") = py::none(),
        py::arg("std") = py::none(),
        "[3, 256]: the output element each byte value of each channel becomes (float32, or "
        "uint16 bits for float16 / bfloat16).");
  m.def("rgb_to_yuv420", &PyRgbToYuv420, py::arg("img"),
        "RGB [H, W, 3] -> one planar I420 item (BT.601 full range, odd sides padded).");
  m.def("yuv420_to_rgb", &PyYuv420ToRgb, py::arg("data"), py::arg("height"), py::arg("width"),
        "One I420 item -> RGB [H, W, 3] (fancy chroma upsampling, BT.601 full range).");
  m.def("yuv420_size", &I420Size, py::arg("height"), py::arg("width"),
        "Bytes of one I420 item of that true size.");
  m.def("jpeg_to_yuv420_batch", &PyJpegToYuv420Batch, py::arg("data"), py::arg("offsets"),
        py::arg("sizes"), py::arg("heights"), py::arg("widths"), py::arg("out"),
        py::arg("out_offsets"), py::arg("num_threads") = 0, py::arg("formats") = py::none(),
        "Decode JPEG items (or convert raw RGB items: formats uint8 [B], code 2) and write "
        "their I420 items into out; returns failures.");
  m.def("choose_scale", &ChooseScale, py::arg("crop_h"), py::arg("crop_w"), py::arg("out_h"),
        py::arg("out_w"), py::arg("scale_policy") = 0,
        "DCT scale numerator M (decode at M/8) the fused decode uses; policy 1 = M in {1,2,4,8}.");
  m.def("resize_box", &PyResizeBox, py::arg("img"), py::arg("x0"), py::arg("y0"), py::arg("x1"),
        py::arg("y1"), py::arg("out_h"), py::arg("out_w"), py::arg("flip") = false,
        "Pillow-compatible bilinear (antialiased) resize of a box of an RGB image.");
  m.def("default_num_threads", &DefaultNumThreads, "Hardware concurrency (>= 1).");
  m.attr("SCALE_ANY") = static_cast<int>(kScaleAny);
  m.attr("SCALE_POW2") = static_cast<int>(kScalePow2);
  m.attr("PIXEL_UINT8") = static_cast<int>(kPixelUint8);
  m.attr("PIXEL_FLOAT32") = static_cast<int>(kPixelFloat32);
  m.attr("PIXEL_FLOAT16") = static_cast<int>(kPixelFloat16);
  m.attr("PIXEL_BFLOAT16") = static_cast<int>(kPixelBFloat16);
  m.attr("FORMAT_JPEG") = static_cast<int>(kFormatJpeg);
  m.attr("FORMAT_YUV420") = static_cast<int>(kFormatYuv420);
  m.attr("FORMAT_RGB") = static_cast<int>(kFormatRgb);
  m.attr("OK") = static_cast<int>(kOk);
  m.attr("INVALID_ARGUMENT") = static_cast<int>(kInvalidArgument);
  m.attr("DECODE_ERROR") = static_cast<int>(kDecodeError);
  m.attr("JPEG_WARNING") = static_cast<int>(kJpegWarning);
  m.attr("UNSUPPORTED") = static_cast<int>(kUnsupported);
  m.attr("INTERNAL_ERROR") = static_cast<int>(kInternalError);
}
