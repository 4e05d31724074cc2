// Fused JPEG decode -> crop -> antialiased resize (-> horizontal flip) of one image (one or K
// views), and DecodeImageViews: the one JPEG / YUV420 / raw RGB dispatch. Batches: batch.h.
//
// Crop windows are int32 [y, x, h, w] in source-pixel coordinates. The decode uses libjpeg's
// DCT scaling M/8 with the smallest M that keeps the scaled crop >= the output size in both
// dimensions (M = 8 when upsampling), decodes only the rows and (iMCU-aligned) columns the
// resize needs, then resamples the exact fractional box [x*M/8, (x+w)*M/8) x [y*M/8, ...).
#pragma once

#include <cstdint>

#include "resize.h"  // PixelMap
#include "status.h"

namespace slipstream {

// Which DCT scales M/8 the fused decode may use.
enum ScalePolicy : int32_t {
  kScaleAny = 0,   // any M in 1..8
  kScalePow2 = 1,  // M in {1, 2, 4, 8}: libjpeg-turbo has SIMD IDCTs for these; 5/8..7/8 are
                   // plain C and here decode slower than 8/8 (then resized further)
};

// How an image item is stored: the one value every decode path dispatches on
// (DecodeImageViews). YUV420 and raw RGB items carry no header: their true size travels
// with them. The codes are also the values of a slip cache's <field>.format.npy.
enum ImageFormat : int32_t {
  kFormatJpeg = 0,    // encoded JPEG bytes
  kFormatYuv420 = 1,  // planar I420, odd sides padded to even (csrc/yuv420.h)
  kFormatRgb = 2,     // raw pixels: height x width x 3 uint8, RGB, rows back to back
};

// One stored image: its bytes, format and (YUV420, raw RGB: required) true size.
struct EncodedImage {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  int32_t format = kFormatJpeg;
  int32_t height = 0;  // YUV420 and raw RGB only
  int32_t width = 0;   // YUV420 and raw RGB only
};

// K views of one raw RGB item (h x w x 3 bytes, `size` bytes available): no decode, the same
// antialiased resize of the full-resolution window as the YUV420 path (the Pillow-exact
// resize of the box; a window of the output's own size is copied: the resize is the identity
// there), then the flip. Same contract as DecodeCropResizeViews (view k to outs[k]).
Result RgbCropResizeViews(const uint8_t* data, uint64_t size, int32_t h, int32_t w,
                          const int32_t* windows, int32_t views, const int32_t* out_hw,
                          const uint8_t* flips, uint8_t* const* outs, int32_t* failed_view);

// Smallest allowed M with crop_w*M/8 >= out_w and crop_h*M/8 >= out_h (8 if none).
int32_t ChooseScale(int32_t crop_h, int32_t crop_w, int32_t out_h, int32_t out_w,
                    int32_t policy = kScaleAny);

// Decodes one sample into out (out_h * out_w * 3 bytes, HWC RGB, contiguous). On failure the
// output is left untouched (the batch entry points zero it).
Result DecodeCropResize(const uint8_t* data, uint64_t size, const int32_t window[4],
                        int32_t out_h, int32_t out_w, bool flip, uint8_t* out,
                        int32_t policy = kScaleAny);

// Decodes K views of one JPEG, each view exactly as DecodeCropResize would (bit-identical),
// with one entropy decode per distinct DCT scale among the views instead of one per view:
// the views sharing a scale are resampled from one decode of the region covering their
// windows, whatever their output sizes. View k (window windows[4k : 4k+4], output size
// out_hw[2k], out_hw[2k+1], flip flips[k] != 0) goes to outs[k] (out_h * out_w * 3 bytes). On
// failure, *failed_view gets the view at fault (0 for an error of the image itself).
Result DecodeCropResizeViews(const uint8_t* data, uint64_t size, const int32_t* windows,
                             int32_t views, const int32_t* out_hw, const uint8_t* flips,
                             uint8_t* const* outs, int32_t policy, int32_t* failed_view);

// K views of one stored image of any format (the single JPEG / YUV420 / raw RGB dispatch):
// JPEG goes to DecodeCropResizeViews, YUV420 to I420CropResizeViews (one call per view:
// nothing to share), raw RGB to RgbCropResizeViews.
Result DecodeImageViews(const EncodedImage& image, const int32_t* windows, int32_t views,
                        const int32_t* out_hw, const uint8_t* flips, uint8_t* const* outs,
                        int32_t policy, int32_t* failed_view);

// DecodeImageViews with outputs of map.type (resize.h PixelMap: normalized float32, float16,
// bfloat16 or uint8): view k goes to outs[k] as out_h * out_w * 3 elements of that type, HWC.
// The 8-bit views are decoded into a per-thread buffer, then mapped (flip already applied)
// while they are in cache; uint8 decodes straight into outs.
Result DecodeImageViewsAs(const EncodedImage& image, const int32_t* windows, int32_t views,
                          const int32_t* out_hw, const uint8_t* flips, const PixelMap& map,
                          void* const* outs, int32_t policy, int32_t* failed_view);

}  // namespace slipstream
