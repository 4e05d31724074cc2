#include "yuv420.h"

#include <cstring>
#include <string>
#include <vector>

#include "jpeg_decoder.h"
#include "resize.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SLIPSTREAM_HAVE_AVX2_YUV 1
#endif

namespace slipstream {

namespace {

// BT.601 full range Y'CbCr -> RGB exactly as libjpeg-turbo's ycc_rgb_convert (jdcolor.c):
// with x = C - 128, R = Y + ((91881 xr + 2^15) >> 16), G = Y + ((-22554 xb - 46802 xr + 2^15)
// >> 16), B = Y + ((116130 xb + 2^15) >> 16). The AVX2 path splits each constant into a
// multiple of 2^16 plus a part that fits int16 (same integers, exact).
constexpr int32_t kHalf = 1 << 15;

inline uint8_t Clamp255(int32_t v) {
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

struct YuvScratch {
  std::vector<int16_t> vcb, vcr;  // vertically interpolated chroma rows (4x scale), padded
  std::vector<int16_t> ucb, ucr;  // fully upsampled 8-bit chroma, one per output column
  std::vector<uint8_t> region;    // converted RGB rows of a crop
  std::vector<uint8_t> tmp;       // horizontal pass output
  std::vector<uint8_t> rgb;       // whole decoded image (JpegToI420)
  ResizeCoeffs cx, cy;
};

YuvScratch& ThreadYuvScratch() {
  static thread_local YuvScratch s;
  return s;
}

// ext[i] = 3 * near[j0 - 1 + i] + far[j0 - 1 + i] over chroma columns j0 - 1 .. j0 + n
// (clamped to the plane), i.e. the vertical triangle tap of one chroma row at 4x scale.
void VerticalChroma(const uint8_t* __restrict near, const uint8_t* __restrict far, int32_t j0,
                    int32_t n, int32_t cw, int16_t* __restrict ext) {
  const int32_t left = j0 > 0 ? j0 - 1 : 0;
  const int32_t right = j0 + n < cw ? j0 + n : cw - 1;
  ext[0] = static_cast<int16_t>(3 * near[left] + far[left]);
  for (int32_t i = 0; i < n; ++i) {
    ext[i + 1] = static_cast<int16_t>(3 * near[j0 + i] + far[j0 + i]);
  }
  ext[n + 1] = static_cast<int16_t>(3 * near[right] + far[right]);
}

// Horizontal triangle tap, rounded to 8 bits as libjpeg's h2v2_fancy_upsample (bias 8 on even
// output columns, 7 on odd ones): output columns 2k and 2k + 1 of chroma column j0 + k.
void HorizontalChroma(const int16_t* __restrict ext, int32_t n, int16_t* __restrict up) {
  for (int32_t k = 0; k < n; ++k) {
    up[2 * k] = static_cast<int16_t>((3 * ext[k + 1] + ext[k] + 8) >> 4);
    up[2 * k + 1] = static_cast<int16_t>((3 * ext[k + 1] + ext[k + 2] + 7) >> 4);
  }
}

inline void PixelToRgb(int32_t y, int32_t cb, int32_t cr, uint8_t* o) {
  const int32_t xb = cb - 128, xr = cr - 128;
  o[0] = Clamp255(y + ((91881 * xr + kHalf) >> 16));
  o[1] = Clamp255(y + ((-22554 * xb - 46802 * xr + kHalf) >> 16));
  o[2] = Clamp255(y + ((116130 * xb + kHalf) >> 16));
}

void RowToRgbScalar(const uint8_t* y, const int16_t* cb, const int16_t* cr, int32_t n,
                    uint8_t* out) {
  for (int32_t i = 0; i < n; ++i) PixelToRgb(y[i], cb[i], cr[i], out + 3 * i);
}

#ifdef SLIPSTREAM_HAVE_AVX2_YUV
// pshufb masks interleaving 16 R, G, B bytes into 48 RGB bytes: kInterleave[c][ch] places
// channel ch into output bytes 16c .. 16c + 15.
struct InterleaveMasks {
  alignas(16) uint8_t m[3][3][16];
  InterleaveMasks() {
    for (int c = 0; c < 3; ++c) {
      for (int ch = 0; ch < 3; ++ch) {
        for (int k = 0; k < 16; ++k) {
          const int pos = 16 * c + k;
          m[c][ch][k] = pos % 3 == ch ? static_cast<uint8_t>(pos / 3) : 0x80;
        }
      }
    }
  }
};

const InterleaveMasks& Masks() {
  static const InterleaveMasks masks;
  return masks;
}

inline __attribute__((target("avx2"))) __m256i PairTerm(__m256i lo, __m256i hi, __m256i k) {
  const __m256i half = _mm256_set1_epi32(kHalf);
  const __m256i a = _mm256_srai_epi32(_mm256_add_epi32(_mm256_madd_epi16(lo, k), half), 16);
  const __m256i b = _mm256_srai_epi32(_mm256_add_epi32(_mm256_madd_epi16(hi, k), half), 16);
  return _mm256_packs_epi32(a, b);  // undoes the in-lane order of unpacklo / unpackhi
}

// Two int16 multipliers in one int32 lane, as _mm256_madd_epi16 pairs them: (xb, xr).
inline constexpr int32_t Pair(int32_t kb, int32_t kr) {
  return static_cast<int32_t>((static_cast<uint32_t>(kr) << 16) |
                              (static_cast<uint32_t>(kb) & 0xFFFF));
}

// Same integers as RowToRgbScalar, 16 pixels at a time.
__attribute__((target("avx2"))) void RowToRgbAVX2(const uint8_t* y, const int16_t* cb,
                                                  const int16_t* cr, int32_t n, uint8_t* out) {
  const InterleaveMasks& mk = Masks();
  const __m256i c128 = _mm256_set1_epi16(128);
  const __m256i kr = _mm256_set1_epi32(Pair(0, 26345));        // 91881 = 2^16 + 26345
  const __m256i kg = _mm256_set1_epi32(Pair(-22554, 18734));   // -46802 = -2^16 + 18734
  const __m256i kb = _mm256_set1_epi32(Pair(-14942, 0));       // 116130 = 2^17 - 14942
  __m128i masks[3][3];
  for (int c = 0; c < 3; ++c) {
    for (int ch = 0; ch < 3; ++ch) {
      masks[c][ch] = _mm_load_si128(reinterpret_cast<const __m128i*>(mk.m[c][ch]));
    }
  }
  int32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i yy =
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    const __m256i xb = _mm256_sub_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cb + i)), c128);
    const __m256i xr = _mm256_sub_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cr + i)), c128);
    const __m256i lo = _mm256_unpacklo_epi16(xb, xr), hi = _mm256_unpackhi_epi16(xb, xr);
    const __m256i r = _mm256_add_epi16(_mm256_add_epi16(yy, xr), PairTerm(lo, hi, kr));
    const __m256i g = _mm256_add_epi16(_mm256_sub_epi16(yy, xr), PairTerm(lo, hi, kg));
    const __m256i b =
        _mm256_add_epi16(_mm256_add_epi16(yy, _mm256_add_epi16(xb, xb)), PairTerm(lo, hi, kb));
    const __m128i r8 = _mm_packus_epi16(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    const __m128i g8 = _mm_packus_epi16(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1));
    const __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    for (int c = 0; c < 3; ++c) {
      const __m128i v = _mm_or_si128(
          _mm_or_si128(_mm_shuffle_epi8(r8, masks[c][0]), _mm_shuffle_epi8(g8, masks[c][1])),
          _mm_shuffle_epi8(b8, masks[c][2]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 3 * i + 16 * c), v);
    }
  }
  if (i < n && n >= 16) {  // last block overlaps the previous one: same bytes rewritten
    RowToRgbAVX2(y + n - 16, cb + n - 16, cr + n - 16, 16, out + 3 * (n - 16));
  } else {
    RowToRgbScalar(y + i, cb + i, cr + i, n - i, out + 3 * i);
  }
}

// VerticalChroma + HorizontalChroma, 16 chroma columns at a time (same integers).
__attribute__((target("avx2"))) void UpsampleChromaAVX2(const uint8_t* near, const uint8_t* far,
                                                        int32_t j0, int32_t n, int32_t cw,
                                                        int16_t* ext, int16_t* up) {
  const int32_t left = j0 > 0 ? j0 - 1 : 0;
  const int32_t right = j0 + n < cw ? j0 + n : cw - 1;
  ext[0] = static_cast<int16_t>(3 * near[left] + far[left]);
  int32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a =
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(near + j0 + i)));
    const __m256i b =
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(far + j0 + i)));
    const __m256i v = _mm256_add_epi16(_mm256_add_epi16(a, _mm256_add_epi16(a, a)), b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ext + 1 + i), v);
  }
  for (; i < n; ++i) ext[i + 1] = static_cast<int16_t>(3 * near[j0 + i] + far[j0 + i]);
  ext[n + 1] = static_cast<int16_t>(3 * near[right] + far[right]);
  const __m256i b8 = _mm256_set1_epi16(8), b7 = _mm256_set1_epi16(7);
  int32_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ext + k));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ext + k + 1));
    const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ext + k + 2));
    const __m256i c3 = _mm256_add_epi16(c, _mm256_add_epi16(c, c));
    const __m256i even = _mm256_srli_epi16(_mm256_add_epi16(_mm256_add_epi16(c3, l), b8), 4);
    const __m256i odd = _mm256_srli_epi16(_mm256_add_epi16(_mm256_add_epi16(c3, r), b7), 4);
    const __m256i lo = _mm256_unpacklo_epi16(even, odd), hi = _mm256_unpackhi_epi16(even, odd);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(up + 2 * k),
                        _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(up + 2 * k + 16),
                        _mm256_permute2x128_si256(lo, hi, 0x31));
  }
  for (; k < n; ++k) {
    up[2 * k] = static_cast<int16_t>((3 * ext[k + 1] + ext[k] + 8) >> 4);
    up[2 * k + 1] = static_cast<int16_t>((3 * ext[k + 1] + ext[k + 2] + 7) >> 4);
  }
}
#endif

// One chroma row's vertical then horizontal triangle taps (see the two functions above).
void UpsampleChroma(const uint8_t* near, const uint8_t* far, int32_t j0, int32_t n, int32_t cw,
                    int16_t* ext, int16_t* up) {
#ifdef SLIPSTREAM_HAVE_AVX2_YUV
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) {
    UpsampleChromaAVX2(near, far, j0, n, cw, ext, up);
    return;
  }
#endif
  VerticalChroma(near, far, j0, n, cw, ext);
  HorizontalChroma(ext, n, up);
}

void RowToRgb(const uint8_t* y, const int16_t* cb, const int16_t* cr, int32_t n, uint8_t* out) {
#ifdef SLIPSTREAM_HAVE_AVX2_YUV
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) {
    RowToRgbAVX2(y, cb, cr, n, out);
    return;
  }
#endif
  RowToRgbScalar(y, cb, cr, n, out);
}

}  // namespace

void RgbToI420(const uint8_t* rgb, int64_t stride, int32_t h, int32_t w, uint8_t* out) {
  const int32_t hh = h + (h & 1), ww = w + (w & 1), cw = ww / 2, ch = hh / 2;
  uint8_t* py = out;
  uint8_t* pu = out + static_cast<int64_t>(hh) * ww;
  uint8_t* pv = pu + static_cast<int64_t>(ch) * cw;
  for (int32_t r = 0; r < hh; ++r) {
    const uint8_t* src = rgb + static_cast<int64_t>(r < h ? r : h - 1) * stride;
    uint8_t* dst = py + static_cast<int64_t>(r) * ww;
    for (int32_t c = 0; c < ww; ++c) {
      const uint8_t* p = src + 3 * static_cast<int64_t>(c < w ? c : w - 1);
      dst[c] = static_cast<uint8_t>((19595 * p[0] + 38470 * p[1] + 7471 * p[2] + 32768) >> 16);
    }
  }
  for (int32_t i = 0; i < ch; ++i) {
    const uint8_t* r0 = rgb + static_cast<int64_t>(2 * i) * stride;
    const uint8_t* r1 = rgb + static_cast<int64_t>(2 * i + 1 < h ? 2 * i + 1 : h - 1) * stride;
    for (int32_t j = 0; j < cw; ++j) {
      const int64_t c0 = 3 * static_cast<int64_t>(2 * j);
      const int64_t c1 = 3 * static_cast<int64_t>(2 * j + 1 < w ? 2 * j + 1 : w - 1);
      const int32_t sr = r0[c0] + r0[c1] + r1[c0] + r1[c1];
      const int32_t sg = r0[c0 + 1] + r0[c1 + 1] + r1[c0 + 1] + r1[c1 + 1];
      const int32_t sb = r0[c0 + 2] + r0[c1 + 2] + r1[c0 + 2] + r1[c1 + 2];
      // Mean of the block's four Cb / Cr values (the transform is linear), rounded.
      const int32_t cb = ((128 << 18) - 11059 * sr - 21709 * sg + 32768 * sb + (1 << 17)) >> 18;
      const int32_t cr = ((128 << 18) + 32768 * sr - 27439 * sg - 5329 * sb + (1 << 17)) >> 18;
      pu[static_cast<int64_t>(i) * cw + j] = Clamp255(cb);
      pv[static_cast<int64_t>(i) * cw + j] = Clamp255(cr);
    }
  }
}

void I420ToRgbRegion(const uint8_t* yuv, int32_t h, int32_t w, int32_t x0, int32_t y0,
                     int32_t x1, int32_t y1, uint8_t* out, int64_t out_stride) {
  const int32_t hh = h + (h & 1), ww = w + (w & 1), cw = ww / 2, ch = hh / 2;
  const uint8_t* py = yuv;
  const uint8_t* pu = yuv + static_cast<int64_t>(hh) * ww;
  const uint8_t* pv = pu + static_cast<int64_t>(ch) * cw;
  // Chroma columns j0 .. j0 + n - 1 cover output columns 2 * j0 .. 2 * (j0 + n) - 1.
  const int32_t j0 = x0 >> 1;
  const int32_t n = ((x1 - 1) >> 1) - j0 + 1;
  YuvScratch& s = ThreadYuvScratch();
  s.vcb.resize(static_cast<size_t>(n) + 2);
  s.vcr.resize(static_cast<size_t>(n) + 2);
  s.ucb.resize(2 * static_cast<size_t>(n));
  s.ucr.resize(2 * static_cast<size_t>(n));
  const int32_t skip = x0 - 2 * j0;  // 1 when x0 is odd
  int32_t last_ci = -1, last_cn = -1;
  for (int32_t y = y0; y < y1; ++y) {
    const int32_t ci = y >> 1;
    int32_t cn = (y & 1) ? ci + 1 : ci - 1;
    cn = cn < 0 ? 0 : cn >= ch ? ch - 1 : cn;
    if (ci != last_ci || cn != last_cn) {  // rows 2i and 2i+1 have different neighbors
      const int64_t oi = static_cast<int64_t>(ci) * cw, on = static_cast<int64_t>(cn) * cw;
      UpsampleChroma(pu + oi, pu + on, j0, n, cw, s.vcb.data(), s.ucb.data());
      UpsampleChroma(pv + oi, pv + on, j0, n, cw, s.vcr.data(), s.ucr.data());
      last_ci = ci;
      last_cn = cn;
    }
    RowToRgb(py + static_cast<int64_t>(y) * ww + x0, s.ucb.data() + skip, s.ucr.data() + skip,
             x1 - x0, out + static_cast<int64_t>(y - y0) * out_stride);
  }
}

Result JpegToI420(const uint8_t* data, uint64_t size, int32_t expected_h, int32_t expected_w,
                  uint8_t* out, uint64_t capacity) {
  JpegDecoder& dec = JpegDecoder::ThreadLocal();
  JpegHeader header;
  Result r = dec.ReadHeader(data, size, &header);
  if (!r.ok()) return r;
  if (header.height != expected_h || header.width != expected_w) {
    dec.Abort();
    return Result::Fail(kInvalidArgument,
                        "JPEG is " + std::to_string(header.height) + "x" +
                            std::to_string(header.width) + " (HxW), its metadata records " +
                            std::to_string(expected_h) + "x" + std::to_string(expected_w));
  }
  if (I420Size(header.height, header.width) > capacity) {
    dec.Abort();
    return Result::Fail(kInvalidArgument, "output too small for the YUV420 item");
  }
  if (dec.IsYuv420()) return dec.DecodeRawI420(out, capacity);  // the JPEG's own planes
  YuvScratch& s = ThreadYuvScratch();
  const uint64_t rgb_bytes = static_cast<uint64_t>(header.height) * header.width * 3;
  s.rgb.resize(rgb_bytes);
  r = dec.DecodeFull(8, s.rgb.data(), rgb_bytes);
  if (!r.ok()) return r;
  RgbToI420(s.rgb.data(), static_cast<int64_t>(header.width) * 3, header.height, header.width,
            out);
  return Result::Ok();
}

Result I420CropResizeViews(const uint8_t* data, uint64_t size, int32_t h, int32_t w,
                           const int32_t* windows, int32_t views, int32_t out_h, int32_t out_w,
                           const uint8_t* flips, uint8_t* out, int32_t* failed_view) {
  *failed_view = 0;
  if (views < 1) return Result::Fail(kInvalidArgument, "need at least one view");
  if (out_h < 1 || out_w < 1) {
    return Result::Fail(kInvalidArgument, "output size must be >= 1 in both dimensions");
  }
  if (h < 1 || w < 1) {
    return Result::Fail(kInvalidArgument, "YUV420 item has recorded size " + std::to_string(h) +
                                              "x" + std::to_string(w) + " (HxW)");
  }
  if (data == nullptr || size < I420Size(h, w)) {
    return Result::Fail(kInvalidArgument,
                        "YUV420 item is " + std::to_string(size) + " bytes, a " +
                            std::to_string(h) + "x" + std::to_string(w) + " image needs " +
                            std::to_string(I420Size(h, w)));
  }
  for (int32_t k = 0; k < views; ++k) {
    const int32_t* win = windows + 4 * k;
    if (win[2] < 1 || win[3] < 1 || win[0] < 0 || win[1] < 0 ||
        static_cast<int64_t>(win[0]) + win[2] > h || static_cast<int64_t>(win[1]) + win[3] > w) {
      *failed_view = k;
      return Result::Fail(kInvalidArgument, "crop window " + WindowString(win) +
                                                " is outside the " + std::to_string(h) + "x" +
                                                std::to_string(w) + " (HxW) image");
    }
  }
  YuvScratch& s = ThreadYuvScratch();
  const int64_t view_bytes = static_cast<int64_t>(out_h) * out_w * 3;
  const int64_t tmp_stride = static_cast<int64_t>(out_w) * 3;
  for (int32_t k = 0; k < views; ++k) {
    const int32_t* win = windows + 4 * k;
    ComputeResizeCoeffs(w, win[1], static_cast<double>(win[1]) + win[3], out_w, &s.cx);
    ComputeResizeCoeffs(h, win[0], static_cast<double>(win[0]) + win[2], out_h, &s.cy);
    const int32_t rows = s.cy.last - s.cy.first, cols = s.cx.last - s.cx.first;
    const int64_t region_stride = static_cast<int64_t>(cols) * 3;
    s.region.resize(static_cast<size_t>(region_stride) * rows);
    I420ToRgbRegion(data, h, w, s.cx.first, s.cy.first, s.cx.last, s.cy.last, s.region.data(),
                    region_stride);
    s.tmp.resize(static_cast<size_t>(tmp_stride) * rows);
    ResampleHorizontal(s.region.data(), region_stride, cols, rows, s.cx, s.cx.first,
                       flips[k] != 0, s.tmp.data(), tmp_stride);
    ResampleVertical(s.tmp.data(), tmp_stride, s.cy, s.cy.first, out_w * 3,
                     out + k * view_bytes, tmp_stride);
  }
  return Result::Ok();
}

}  // namespace slipstream
