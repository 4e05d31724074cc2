// libjpeg-turbo decoder: header parsing, full (optionally DCT-scaled) decode to RGB and
// region-of-interest decode (jpeg_crop_scanline + jpeg_skip_scanlines).
//
// One JpegDecoder per thread (JpegDecoder::ThreadLocal()); the libjpeg decompress handle is
// created once per thread and reused. Errors never abort: libjpeg's error_exit longjmps back
// into the calling method, which returns a Result carrying libjpeg's message. A premature end
// of data (JWRN_JPEG_EOF, which libjpeg only warns about and fills with gray) is an error too;
// other corrupt-data warnings (JWRN_*: bad Huffman code, corrupt data, ...) are tolerated by
// the decoder and recorded per thread: TakeJpegWarnings() returns and clears the count and the
// first message, so a batch loop can tell "decoded, with warnings" (kJpegWarning) apart.
//
// THE RULE (jpeg_decoder.cpp): every libjpeg call that takes the handle runs after a setjmp
// armed in the same, still active, function: `if (setjmp(err.jump)) <fail>;` then the calls.
// Any of them may call error_exit, which longjmps to the last armed jmp_buf; a jmp_buf armed
// in a function that has returned points into a dead stack frame (undefined behaviour, in
// practice a crash). This holds for jpeg_create_decompress (bad library version, out of
// memory) and for the cleanup calls (jpeg_abort_decompress, jpeg_destroy_decompress) too.
// Locals changed between setjmp and a longjmp must not be read on the error path (or be
// volatile). The one exception is jpeg_std_error, which takes no handle and cannot fail.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "status.h"

namespace slipstream {

enum ColorSpace : int32_t {
  kCsUnknown = 0,
  kCsGray = 1,
  kCsRGB = 2,
  kCsYCbCr = 3,
  kCsCMYK = 4,
  kCsYCCK = 5,
};

const char* ColorSpaceName(int32_t cs);

struct JpegHeader {
  int32_t height = 0;
  int32_t width = 0;
  int32_t components = 0;
  int32_t colorspace = kCsUnknown;
  bool progressive = false;
};

// A decoded block of RGB rows of the image scaled by scale_num/8. Pixels belong to the
// decoder's internal buffer and stay valid until the next call on the same decoder.
struct Region {
  const uint8_t* pixels = nullptr;
  int64_t stride = 0;  // bytes between rows
  int32_t x0 = 0;      // region origin in scaled-image coordinates
  int32_t y0 = 0;
  int32_t width = 0;
  int32_t height = 0;
};

// Size of one image side after libjpeg's scale_num/8 DCT scaling.
inline int32_t ScaledDim(int32_t dim, int32_t scale_num) {
  return static_cast<int32_t>((static_cast<int64_t>(dim) * scale_num + 7) / 8);
}

class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // The calling thread's decoder (created on first use).
  static JpegDecoder& ThreadLocal();

  // Parses the header of `data`. On success the decoder holds the image open so that
  // DecodeRegion / DecodeFull can follow; any failure leaves it idle.
  Result ReadHeader(const uint8_t* data, uint64_t size, JpegHeader* header);

  // After ReadHeader: decodes at least columns [x0, x1) and exactly rows [y0, y1) of the image
  // scaled by scale_num/8 (1..8). The region may be wider than asked (iMCU alignment).
  // Always leaves the decoder idle.
  Result DecodeRegion(int32_t scale_num, int32_t x0, int32_t y0, int32_t x1, int32_t y1,
                      Region* region);

  // After ReadHeader: decodes the whole image scaled by scale_num/8 into `out`
  // (ScaledDim(h) x ScaledDim(w) x 3, contiguous, `capacity` bytes). Leaves the decoder idle.
  Result DecodeFull(int32_t scale_num, uint8_t* out, uint64_t capacity);

  // After ReadHeader: whether the image is YCbCr with 4:2:0 sampling (Y 2x2, Cb and Cr 1x1),
  // i.e. DecodeRawI420 applies.
  bool IsYuv420() const;

  // After ReadHeader, for an IsYuv420() image: decodes the raw Y, Cb and Cr planes (no
  // upsampling, no color conversion) into one planar I420 item at `out` (layout in yuv420.h:
  // Y padded to even sides by repeating its last row / column, chroma as stored). Leaves the
  // decoder idle.
  Result DecodeRawI420(uint8_t* out, uint64_t capacity);

  // Returns the decoder to idle (safe to call at any time).
  void Abort();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// libjpeg corrupt-data warnings raised on the calling thread since the last call.
struct JpegWarnings {
  int32_t count = 0;      // warnings (libjpeg may warn several times for one image)
  std::string first;      // libjpeg's message for the first one
};

// Returns and clears the calling thread's warnings. Batch loops call it before and after each
// sample (RunSamples, the DALI operator): a sample that decoded with warnings gets status
// kJpegWarning (status.h) and keeps its pixels; strict callers treat it as a failure.
JpegWarnings TakeJpegWarnings();

// Convenience one-shot helpers on the thread-local decoder.
Result ReadJpegHeader(const uint8_t* data, uint64_t size, JpegHeader* header);
Result DecodeJpegFull(const uint8_t* data, uint64_t size, int32_t scale_num, uint8_t* out,
                      uint64_t capacity);

}  // namespace slipstream
