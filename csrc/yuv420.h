// Planar YUV420 (I420) images: building them from JPEG, and the fused crop-window conversion
// YUV420 -> RGB -> antialiased resize (-> horizontal flip).
//
// Item layout (one image of true size h x w; H = h + (h & 1), W = w + (w & 1), odd sides
// padded to even by repeating the last row / column):
//
//   +-------------------------+  offset 0
//   | Y  H x W      uint8     |
//   +------------+------------+  offset H * W
//   | U  H/2 x W/2            |  (Cb)
//   +------------+            +  offset H * W + (H/2) * (W/2)
//   | V  H/2 x W/2            |  (Cr)
//   +------------+               size I420Size(h, w) = H * W + 2 * (H/2) * (W/2)
//
// Colors are BT.601 full range (JFIF, as JPEG uses); chroma is sited at the center of its 2x2
// block (JFIF). Building from a 4:2:0 YCbCr JPEG (the common case) stores libjpeg-turbo's own
// decoded planes (jpeg_read_raw_data: no upsampling, no color conversion), so the conversion
// below reproduces libjpeg's RGB decode bit for bit (for chroma planes wider than 2 samples:
// libjpeg replicates narrower ones). Other JPEGs (4:4:4, 4:2:2, gray, CMYK) are decoded to RGB,
// converted per pixel to Y'CbCr and their chroma averaged over 2x2 blocks.
// Decoding converts only the rows and columns the resize reads (the coefficient ranges of the
// crop box), upsampling chroma as libjpeg's h2v2_fancy_upsample (triangle filter, weights 9/16,
// 3/16, 3/16, 1/16, same rounding) and converting as its ycc_rgb_convert (same integers), then
// runs the same resample passes as the JPEG path: the result is the Pillow-exact resize of the
// whole converted image, cropped (the JPEG path at DCT scale 8/8 gives the same pixels).
#pragma once

#include <cstdint>

#include "status.h"

namespace slipstream {

// Bytes of one I420 item of true size h x w (sides padded to even).
inline uint64_t I420Size(int32_t h, int32_t w) {
  const uint64_t hh = static_cast<uint64_t>(h + (h & 1)), ww = static_cast<uint64_t>(w + (w & 1));
  return hh * ww + 2 * (hh / 2) * (ww / 2);
}

// RGB (h x w x 3, rows `stride` bytes apart) -> one I420 item at out (I420Size(h, w) bytes).
void RgbToI420(const uint8_t* rgb, int64_t stride, int32_t h, int32_t w, uint8_t* out);

// Rows [y0, y1) and columns [x0, x1) of the I420 item `yuv` (true size h x w) as RGB into out
// (rows out_stride bytes apart). The caller guarantees 0 <= x0 < x1 <= w, 0 <= y0 < y1 <= h.
void I420ToRgbRegion(const uint8_t* yuv, int32_t h, int32_t w, int32_t x0, int32_t y0,
                     int32_t x1, int32_t y1, uint8_t* out, int64_t out_stride);

// Decodes a whole JPEG and writes its I420 item into out (capacity bytes). The JPEG's size
// must be expected_h x expected_w (the recorded size; a mismatch is kInvalidArgument).
Result JpegToI420(const uint8_t* data, uint64_t size, int32_t expected_h, int32_t expected_w,
                  uint8_t* out, uint64_t capacity);

// K views of one I420 item (true size h x w, `size` bytes available): same contract as
// DecodeCropResizeViews (windows [K, 4], flips[k], out + k * out_h * out_w * 3). Every view
// is resampled from full resolution. An item shorter than I420Size(h, w) or a window outside
// the image is kInvalidArgument (*failed_view names the view).
Result I420CropResizeViews(const uint8_t* data, uint64_t size, int32_t h, int32_t w,
                           const int32_t* windows, int32_t views, int32_t out_h, int32_t out_w,
                           const uint8_t* flips, uint8_t* out, int32_t* failed_view);

}  // namespace slipstream
