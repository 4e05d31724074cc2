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

// ---- Output element types: the 8-bit result mapped per channel (normalize + cast) ----------
//
// The resize rounds to 8 bits (Pillow-exact); a float output maps each byte v of channel c to
//   y = float32(v) * scale[c] - shift[c],  scale = 1 / (255 * std),  shift = mean / std
// in float32, multiply and subtract each rounded (never fused): the same values torch computes
// as x.float().mul_(scale).sub_(shift) (slipstream.transforms.ImageOutput), i.e. (x / 255 -
// mean) / std. float16 and bfloat16 outputs are that float32 value rounded to nearest even
// (torch's cast). Without normalization scale = 1 and shift = 0 (a plain cast).

enum PixelType : int32_t {
  kPixelUint8 = 0,
  kPixelFloat32 = 1,
  kPixelFloat16 = 2,   // IEEE binary16 bits
  kPixelBFloat16 = 3,  // bfloat16 bits
};

// Bytes per element of a PixelType; 0 for an unknown type.
int32_t PixelTypeBytes(int32_t type);

// IEEE binary16 / bfloat16 bits of a float32, rounded to nearest even (as torch's casts).
uint16_t FloatToHalfBits(float f);
uint16_t FloatToBFloat16Bits(float f);

// How 8-bit output values become output elements (see above). Built once per batch.
struct PixelMap {
  int32_t type = kPixelUint8;
  float scale[3] = {1.0f, 1.0f, 1.0f};
  float shift[3] = {0.0f, 0.0f, 0.0f};
  float lut[3][256] = {};       // float32 value of byte v in channel c
  uint16_t lut16[3][256] = {};  // its float16 / bfloat16 bits (16-bit types)
};

// Fills *map for `type`; mean and std (3 values each, in units of x / 255) may both be null
// for a plain cast. False (map untouched) for an unknown type or a zero / non-finite std.
bool MakePixelMap(int32_t type, const float* mean, const float* std, PixelMap* map);

// Maps `count` interleaved RGB bytes (count % 3 == 0, channel = index % 3) to elements of
// map.type at out (uint8: a copy).
void MapPixels(const uint8_t* in, int64_t count, const PixelMap& map, void* out);

// Writes `count` elements (count % 3 == 0) of the value byte v maps to, per channel: the fill
// of a sample that failed to decode (v = 0: pixel value 0 before normalization).
void FillPixels(uint8_t v, int64_t count, const PixelMap& map, void* out);

// Full resize of box (x0, y0, x1, y1) of an RGB image into out (out_h x out_w x 3, contiguous).
// The caller guarantees 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height.
void ResizeBoxRGB(const uint8_t* in, int32_t height, int32_t width, int64_t stride, double x0,
                  double y0, double x1, double y1, int32_t out_h, int32_t out_w, bool flip,
                  uint8_t* out);

}  // namespace slipstream
