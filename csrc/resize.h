// Antialiased, Pillow-compatible separable resize of a fractional source box.
//
// Semantics follow Pillow's Image.resize(size, BILINEAR, box=...): a triangle filter whose
// support is scaled by the downscale factor (support = max(scale, 1)); output pixel i of a
// box [b0, b1) is centered at b0 + (i + 0.5) * scale and takes source pixels j with
// |j + 0.5 - center| < support, clamped to the image; weights are normalized per output pixel
// and quantized to 22-bit fixed point (rounding and clamping as Pillow does).
//
// Order: horizontal pass first (only over the rows the vertical pass needs) into a uint8
// intermediate, then the vertical pass, exactly as Pillow does; the horizontal flip is folded
// into the horizontal pass (mirrored writes, no extra pass).
#pragma once

#include <cstdint>
#include <vector>

namespace slipstream {

constexpr int kResizePrecisionBits = 22;

struct ResizeCoeffs {
  int32_t out_size = 0;
  int32_t ksize = 0;             // taps stored per output pixel
  std::vector<int32_t> bounds;   // per output pixel: first source index, tap count
  std::vector<int32_t> weights;  // out_size * ksize fixed-point weights
  int32_t first = 0;             // first source index used by any output pixel
  int32_t last = 0;              // one past the last source index used
};

// Pre-computes coefficients for resampling source box [box0, box1) of a side of length
// in_size to out_size pixels.
void ComputeResizeCoeffs(int32_t in_size, double box0, double box1, int32_t out_size,
                         ResizeCoeffs* c);

// Horizontal pass over `rows` rows of RGB pixels, `in_width` pixels each. Source index j of the
// coefficients maps to column j - x_offset of `in`. Writes out_size RGB pixels per row (mirrored when flip).
void ResampleHorizontal(const uint8_t* in, int64_t in_stride, int32_t in_width, int32_t rows,
                        const ResizeCoeffs& cx, int32_t x_offset, bool flip, uint8_t* out,
                        int64_t out_stride);

// Vertical pass: source index j of the coefficients maps to row j - y_offset of `in`. Each
// row holds `row_bytes` bytes.
void ResampleVertical(const uint8_t* in, int64_t in_stride, const ResizeCoeffs& cy,
                      int32_t y_offset, int32_t row_bytes, uint8_t* out, int64_t out_stride);

// Full resize of box (x0, y0, x1, y1) of an RGB image into out (out_h x out_w x 3, contiguous).
// The caller guarantees 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height.
void ResizeBoxRGB(const uint8_t* in, int32_t height, int32_t width, int64_t stride, double x0,
                  double y0, double x1, double y1, int32_t out_h, int32_t out_w, bool flip,
                  uint8_t* out);

}  // namespace slipstream
