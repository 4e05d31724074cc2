#include "decode_crop.h"

#include <cstring>
#include <string>
#include <vector>

#include "jpeg_decoder.h"
#include "resize.h"
#include "yuv420.h"

namespace slipstream {

namespace {

struct CropScratch {
  ResizeCoeffs cx, cy;
  std::vector<uint8_t> tmp;
  std::vector<ResizeCoeffs> view_cx, view_cy;  // DecodeCropResizeViews
};

CropScratch& ThreadCropScratch() {
  static thread_local CropScratch s;
  return s;
}

// Rows [y, y + h) and columns [x, x + w) of a decoded region into out (h x w x 3),
// mirrored horizontally when flip is set.
void CopyRegion(const Region& region, int32_t x, int32_t y, int32_t h, int32_t w, bool flip,
                uint8_t* out) {
  const int64_t row_bytes = static_cast<int64_t>(w) * 3;
  for (int32_t r = 0; r < h; ++r) {
    const uint8_t* src = region.pixels + static_cast<int64_t>(y + r - region.y0) * region.stride +
                         static_cast<int64_t>(x - region.x0) * 3;
    uint8_t* dst = out + r * row_bytes;
    if (!flip) {
      std::memcpy(dst, src, static_cast<size_t>(row_bytes));
      continue;
    }
    for (int32_t c = 0; c < w; ++c) {
      const uint8_t* p = src + static_cast<int64_t>(w - 1 - c) * 3;
      dst[3 * c] = p[0];
      dst[3 * c + 1] = p[1];
      dst[3 * c + 2] = p[2];
    }
  }
}

}  // namespace

int32_t ChooseScale(int32_t crop_h, int32_t crop_w, int32_t out_h, int32_t out_w,
                    int32_t policy) {
  for (int32_t m = 1; m < 8; m = policy == kScalePow2 ? 2 * m : m + 1) {
    if (static_cast<int64_t>(crop_w) * m >= static_cast<int64_t>(out_w) * 8 &&
        static_cast<int64_t>(crop_h) * m >= static_cast<int64_t>(out_h) * 8) {
      return m;
    }
  }
  return 8;
}

Result DecodeCropResize(const uint8_t* data, uint64_t size, const int32_t window[4],
                        int32_t out_h, int32_t out_w, bool flip, uint8_t* out,
                        int32_t policy) {
  if (out_h < 1 || out_w < 1) {
    return Result::Fail(kInvalidArgument, "output size must be >= 1 in both dimensions");
  }
  const int32_t y = window[0], x = window[1], h = window[2], w = window[3];
  if (h < 1 || w < 1) {
    return Result::Fail(kInvalidArgument, "crop window " + WindowString(window) +
                                              " must have h >= 1 and w >= 1");
  }
  JpegDecoder& dec = JpegDecoder::ThreadLocal();
  JpegHeader header;
  Result r = dec.ReadHeader(data, size, &header);
  if (!r.ok()) return r;
  if (y < 0 || x < 0 || static_cast<int64_t>(y) + h > header.height ||
      static_cast<int64_t>(x) + w > header.width) {
    dec.Abort();
    return Result::Fail(kInvalidArgument,
                        "crop window " + WindowString(window) + " is outside the " +
                            std::to_string(header.height) + "x" + std::to_string(header.width) +
                            " (HxW) image");
  }
  const int32_t m = ChooseScale(h, w, out_h, out_w, policy);
  if (m == 8 && h == out_h && w == out_w) {
    // The window already has the output size: Pillow's resample is the identity here (one
    // tap of weight 1), so copy the decoded rows. Same margin as below for fancy upsampling.
    Region region;
    r = dec.DecodeRegion(8, x - 1, y, x + w + 1, y + h, &region);
    if (!r.ok()) return r;
    CopyRegion(region, x, y, h, w, flip, out);
    return Result::Ok();
  }
  const int32_t sw = ScaledDim(header.width, m);
  const int32_t sh = ScaledDim(header.height, m);
  const double f = m / 8.0;
  CropScratch& s = ThreadCropScratch();
  ComputeResizeCoeffs(sw, x * f, (static_cast<int64_t>(x) + w) * f, out_w, &s.cx);
  ComputeResizeCoeffs(sh, y * f, (static_cast<int64_t>(y) + h) * f, out_h, &s.cy);
  // One pixel of margin left and right keeps the columns we use away from the edges of the
  // cropped decode, where fancy upsampling lacks its neighbor and differs from a full decode.
  Region region;
  r = dec.DecodeRegion(m, s.cx.first - 1, s.cy.first, s.cx.last + 1, s.cy.last, &region);
  if (!r.ok()) return r;
  const int32_t rows = s.cy.last - s.cy.first;
  const int64_t tmp_stride = static_cast<int64_t>(out_w) * 3;
  s.tmp.resize(static_cast<size_t>(tmp_stride) * rows);
  ResampleHorizontal(region.pixels, region.stride, region.width, rows, s.cx, region.x0, flip,
                     s.tmp.data(), tmp_stride);
  ResampleVertical(s.tmp.data(), tmp_stride, s.cy, s.cy.first, out_w * 3, out, tmp_stride);
  return Result::Ok();
}

namespace {

// Decodes, at DCT scale m, the union region of the views whose own scale is m (scales[k]),
// and resamples each of them: bit-identical to DecodeCropResize of that view alone.
Result DecodeScaleGroup(JpegDecoder& dec, const JpegHeader& header, int32_t m,
                        const int32_t* windows, const int32_t* scales, int32_t views,
                        const int32_t* out_hw, const uint8_t* flips, uint8_t* const* outs) {
  const int32_t sw = ScaledDim(header.width, m);
  const int32_t sh = ScaledDim(header.height, m);
  const double f = m / 8.0;
  CropScratch& s = ThreadCropScratch();
  s.view_cx.resize(static_cast<size_t>(views));
  s.view_cy.resize(static_cast<size_t>(views));
  int32_t x0 = sw, x1 = 0, y0 = sh, y1 = 0;
  for (int32_t k = 0; k < views; ++k) {
    if (scales[k] != m) continue;
    const int32_t* w = windows + 4 * k;
    const int32_t out_h = out_hw[2 * k], out_w = out_hw[2 * k + 1];
    int32_t vx0, vx1, vy0, vy1;
    if (m == 8 && w[2] == out_h && w[3] == out_w) {  // copied, see DecodeCropResize
      vx0 = w[1] - 1, vx1 = w[1] + w[3] + 1, vy0 = w[0], vy1 = w[0] + w[2];
    } else {
      ResizeCoeffs& cx = s.view_cx[k];
      ResizeCoeffs& cy = s.view_cy[k];
      ComputeResizeCoeffs(sw, w[1] * f, (static_cast<int64_t>(w[1]) + w[3]) * f, out_w, &cx);
      ComputeResizeCoeffs(sh, w[0] * f, (static_cast<int64_t>(w[0]) + w[2]) * f, out_h, &cy);
      vx0 = cx.first - 1, vx1 = cx.last + 1, vy0 = cy.first, vy1 = cy.last;
    }
    if (vx0 < x0) x0 = vx0;
    if (vx1 > x1) x1 = vx1;
    if (vy0 < y0) y0 = vy0;
    if (vy1 > y1) y1 = vy1;
  }
  Region region;
  Result r = dec.DecodeRegion(m, x0, y0, x1, y1, &region);
  if (!r.ok()) return r;
  for (int32_t k = 0; k < views; ++k) {
    if (scales[k] != m) continue;
    const int32_t* w = windows + 4 * k;
    const int32_t out_h = out_hw[2 * k], out_w = out_hw[2 * k + 1];
    const int64_t tmp_stride = static_cast<int64_t>(out_w) * 3;
    const bool flip = flips[k] != 0;
    if (m == 8 && w[2] == out_h && w[3] == out_w) {
      CopyRegion(region, w[1], w[0], w[2], w[3], flip, outs[k]);
      continue;
    }
    const ResizeCoeffs& cx = s.view_cx[k];
    const ResizeCoeffs& cy = s.view_cy[k];
    const int32_t rows = cy.last - cy.first;
    s.tmp.resize(static_cast<size_t>(tmp_stride) * rows);
    const uint8_t* first_row =
        region.pixels + static_cast<int64_t>(cy.first - region.y0) * region.stride;
    ResampleHorizontal(first_row, region.stride, region.width, rows, cx, region.x0, flip,
                       s.tmp.data(), tmp_stride);
    ResampleVertical(s.tmp.data(), tmp_stride, cy, cy.first, out_w * 3, outs[k], tmp_stride);
  }
  return Result::Ok();
}

}  // namespace

Result DecodeCropResizeViews(const uint8_t* data, uint64_t size, const int32_t* windows,
                             int32_t views, const int32_t* out_hw, const uint8_t* flips,
                             uint8_t* const* outs, int32_t policy, int32_t* failed_view) {
  *failed_view = 0;
  if (views < 1) return Result::Fail(kInvalidArgument, "need at least one view");
  if (views == 1) {
    return DecodeCropResize(data, size, windows, out_hw[0], out_hw[1], flips[0] != 0, outs[0],
                            policy);
  }
  for (int32_t k = 0; k < views; ++k) {
    if (out_hw[2 * k] < 1 || out_hw[2 * k + 1] < 1) {
      *failed_view = k;
      return Result::Fail(kInvalidArgument, "output size must be >= 1 in both dimensions");
    }
  }
  JpegDecoder& dec = JpegDecoder::ThreadLocal();
  JpegHeader header;
  Result r = dec.ReadHeader(data, size, &header);
  if (!r.ok()) return r;
  thread_local std::vector<int32_t> scales;
  scales.assign(static_cast<size_t>(views), 0);
  bool used[9] = {false};
  for (int32_t k = 0; k < views; ++k) {
    const int32_t* w = windows + 4 * k;
    if (w[2] < 1 || w[3] < 1 || w[0] < 0 || w[1] < 0 ||
        static_cast<int64_t>(w[0]) + w[2] > header.height ||
        static_cast<int64_t>(w[1]) + w[3] > header.width) {
      dec.Abort();
      *failed_view = k;
      return Result::Fail(kInvalidArgument,
                          "crop window " + WindowString(w) + " is outside the " +
                              std::to_string(header.height) + "x" +
                              std::to_string(header.width) + " (HxW) image");
    }
    scales[k] = ChooseScale(w[2], w[3], out_hw[2 * k], out_hw[2 * k + 1], policy);
    used[scales[k]] = true;
  }
  bool first = true;
  for (int32_t m = 1; m <= 8; ++m) {
    if (!used[m]) continue;
    if (!first) {  // DecodeRegion finished the previous pass: read the header again
      r = dec.ReadHeader(data, size, &header);
      if (!r.ok()) return r;
    }
    first = false;
    r = DecodeScaleGroup(dec, header, m, windows, scales.data(), views, out_hw, flips, outs);
    if (!r.ok()) return r;
  }
  return Result::Ok();
}

Result RgbCropResizeViews(const uint8_t* data, uint64_t size, int32_t h, int32_t w,
                          const int32_t* windows, int32_t views, const int32_t* out_hw,
                          const uint8_t* flips, uint8_t* const* outs, int32_t* failed_view) {
  *failed_view = 0;
  if (views < 1) return Result::Fail(kInvalidArgument, "need at least one view");
  if (h < 1 || w < 1) {
    return Result::Fail(kInvalidArgument, "raw RGB item has recorded size " + std::to_string(h) +
                                              "x" + std::to_string(w) + " (HxW)");
  }
  const uint64_t need = static_cast<uint64_t>(h) * static_cast<uint64_t>(w) * 3;
  if (data == nullptr || size != need) {
    return Result::Fail(kInvalidArgument,
                        "raw RGB item is " + std::to_string(size) + " bytes, a " +
                            std::to_string(h) + "x" + std::to_string(w) + " image has " +
                            std::to_string(need));
  }
  const int64_t stride = static_cast<int64_t>(w) * 3;
  Region whole;  // the item itself, as a decoded region for CopyRegion
  whole.pixels = data;
  whole.stride = stride;
  whole.x0 = 0, whole.y0 = 0, whole.width = w;
  for (int32_t k = 0; k < views; ++k) {
    const int32_t* win = windows + 4 * k;
    const int32_t out_h = out_hw[2 * k], out_w = out_hw[2 * k + 1];
    *failed_view = k;
    if (out_h < 1 || out_w < 1) {
      return Result::Fail(kInvalidArgument, "output size must be >= 1 in both dimensions");
    }
    if (win[2] < 1 || win[3] < 1 || win[0] < 0 || win[1] < 0 ||
        static_cast<int64_t>(win[0]) + win[2] > h || static_cast<int64_t>(win[1]) + win[3] > w) {
      return Result::Fail(kInvalidArgument, "crop window " + WindowString(win) +
                                                " is outside the " + std::to_string(h) + "x" +
                                                std::to_string(w) + " (HxW) image");
    }
    const bool flip = flips[k] != 0;
    if (win[2] == out_h && win[3] == out_w) {  // one tap of weight 1: the resize is a copy
      CopyRegion(whole, win[1], win[0], win[2], win[3], flip, outs[k]);
      continue;
    }
    ResizeBoxRGB(data, h, w, stride, win[1], win[0], static_cast<double>(win[1]) + win[3],
                 static_cast<double>(win[0]) + win[2], out_h, out_w, flip, outs[k]);
  }
  *failed_view = 0;
  return Result::Ok();
}

Result DecodeImageViews(const EncodedImage& image, const int32_t* windows, int32_t views,
                        const int32_t* out_hw, const uint8_t* flips, uint8_t* const* outs,
                        int32_t policy, int32_t* failed_view) {
  switch (image.format) {
    case kFormatJpeg:
      return DecodeCropResizeViews(image.data, image.size, windows, views, out_hw, flips, outs,
                                   policy, failed_view);
    case kFormatYuv420:
      // No entropy decode to share: one call per view, each into its own buffer.
      for (int32_t k = 0; k < views; ++k) {
        int32_t failed = 0;
        Result r = I420CropResizeViews(image.data, image.size, image.height, image.width,
                                       windows + 4 * k, 1, out_hw[2 * k], out_hw[2 * k + 1],
                                       flips + k, outs[k], &failed);
        if (!r.ok()) {
          *failed_view = k;
          return r;
        }
      }
      return Result::Ok();
    case kFormatRgb:
      return RgbCropResizeViews(image.data, image.size, image.height, image.width, windows,
                                views, out_hw, flips, outs, failed_view);
    default:
      *failed_view = 0;
      return Result::Fail(kInvalidArgument,
                          "unknown image format code " + std::to_string(image.format));
  }
}

Result DecodeImageViewsAs(const EncodedImage& image, const int32_t* windows, int32_t views,
                          const int32_t* out_hw, const uint8_t* flips, const PixelMap& map,
                          void* const* outs, int32_t policy, int32_t* failed_view) {
  thread_local std::vector<uint8_t*> bytes;
  bytes.resize(static_cast<size_t>(views > 0 ? views : 0));
  if (map.type == kPixelUint8) {
    for (int32_t k = 0; k < views; ++k) bytes[k] = static_cast<uint8_t*>(outs[k]);
    return DecodeImageViews(image, windows, views, out_hw, flips, bytes.data(), policy,
                            failed_view);
  }
  thread_local std::vector<uint8_t> scratch;
  thread_local std::vector<int64_t> counts;
  counts.resize(bytes.size());
  int64_t total = 0;
  for (int32_t k = 0; k < views; ++k) {
    counts[k] = static_cast<int64_t>(out_hw[2 * k]) * out_hw[2 * k + 1] * 3;
    total += counts[k] > 0 ? counts[k] : 0;
  }
  scratch.resize(static_cast<size_t>(total));
  int64_t at = 0;
  for (int32_t k = 0; k < views; ++k) {
    bytes[k] = scratch.data() + at;
    at += counts[k] > 0 ? counts[k] : 0;
  }
  Result r = DecodeImageViews(image, windows, views, out_hw, flips, bytes.data(), policy,
                              failed_view);
  if (!r.ok()) return r;
  for (int32_t k = 0; k < views; ++k) MapPixels(bytes[k], counts[k], map, outs[k]);
  return Result::Ok();
}

}  // namespace slipstream
