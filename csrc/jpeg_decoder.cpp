#include "jpeg_decoder.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

extern "C" {
#include <jerror.h>
#include <jpeglib.h>
}

namespace slipstream {

namespace {

// libjpeg error manager whose error_exit longjmps back into the active JpegDecoder method.
struct ErrorMgr {
  jpeg_error_mgr pub;  // must stay first: libjpeg hands back a jpeg_error_mgr*
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void ErrorExit(j_common_ptr cinfo) {
  ErrorMgr* err = reinterpret_cast<ErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

// This thread's warnings since TakeJpegWarnings() (plain storage: nothing allocates or throws
// inside a libjpeg callback).
struct ThreadWarnings {
  int32_t count;
  char first[JMSG_LENGTH_MAX];
};
thread_local ThreadWarnings t_warnings = {0, {0}};

// Warnings (msg_level == -1): a premature end of data is promoted to an error (libjpeg would
// silently pad the image with gray); other corrupt-data warnings are tolerated and recorded
// in t_warnings. Trace messages (msg_level >= 0)
// are dropped.
void EmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0) {
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) ErrorExit(cinfo);
    cinfo->err->num_warnings++;
    if (t_warnings.count++ == 0) (*cinfo->err->format_message)(cinfo, t_warnings.first);
  }
}

void OutputMessage(j_common_ptr) {}

inline uint8_t MulDiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// CMYK -> RGB exactly as Pillow's Image.convert("RGB") ("CMYK;I" raw mode + cmyk2rgb).
// Adobe files store inverted CMYK, which libjpeg hands back as stored.
void CmykRowToRgb(const uint8_t* in, uint8_t* out, int32_t width, bool inverted) {
  for (int32_t i = 0; i < width; ++i) {
    int c = in[4 * i + 0], m = in[4 * i + 1], y = in[4 * i + 2], k = in[4 * i + 3];
    if (inverted) {
      c = 255 - c;
      m = 255 - m;
      y = 255 - y;
      k = 255 - k;
    }
    const int nk = 255 - k;
    out[3 * i + 0] = static_cast<uint8_t>(nk - MulDiv255(c, nk));
    out[3 * i + 1] = static_cast<uint8_t>(nk - MulDiv255(m, nk));
    out[3 * i + 2] = static_cast<uint8_t>(nk - MulDiv255(y, nk));
  }
}

int32_t MapColorSpace(J_COLOR_SPACE cs) {
  switch (cs) {
    case JCS_GRAYSCALE: return kCsGray;
    case JCS_RGB: return kCsRGB;
    case JCS_YCbCr: return kCsYCbCr;
    case JCS_CMYK: return kCsCMYK;
    case JCS_YCCK: return kCsYCCK;
    default: return kCsUnknown;
  }
}

}  // namespace

const char* ColorSpaceName(int32_t cs) {
  switch (cs) {
    case kCsGray: return "GRAY";
    case kCsRGB: return "RGB";
    case kCsYCbCr: return "YCbCr";
    case kCsCMYK: return "CMYK";
    case kCsYCCK: return "YCCK";
    default: return "UNKNOWN";
  }
}

// Every libjpeg call below follows a fresh setjmp in the same active function (the rule in
// jpeg_decoder.h): an error longjmps back to it. Check this when adding a libjpeg call.
struct JpegDecoder::Impl {
  jpeg_decompress_struct cinfo;
  ErrorMgr err;
  bool created = false;  // jpeg_create_decompress succeeded
  bool open = false;     // header read, decompression not finished
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  JpegHeader header;
  std::vector<uint8_t> buffer;   // region pixels (RGB)
  std::vector<uint8_t> cmyk;     // CMYK rows before conversion
  std::vector<JSAMPROW> rows;    // row pointers handed to jpeg_read_scanlines

  Impl() {
    std::memset(&cinfo, 0, sizeof(cinfo));
    std::memset(&err, 0, sizeof(err));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = ErrorExit;
    err.pub.emit_message = EmitMessage;
    err.pub.output_message = OutputMessage;
    if (setjmp(err.jump)) return;  // created stays false; ReadHeader reports err.message
    jpeg_create_decompress(&cinfo);
    created = true;
  }
  ~Impl() {
    if (!created) return;
    if (setjmp(err.jump)) return;
    jpeg_destroy_decompress(&cinfo);
  }

  // Returns the handle to idle (frees the image's memory pool). Safe at any time.
  void Close() {
    open = false;
    if (!created) return;
    if (setjmp(err.jump)) return;
    jpeg_abort_decompress(&cinfo);
  }

  Result FailFromLibjpeg() {
    Close();
    return Result::Fail(kDecodeError, std::string(err.message));
  }

  // Sets output parameters for an RGB decode at scale_num/8. Returns false if unsupported.
  bool SetupOutput(int32_t scale_num) {
    cinfo.scale_num = static_cast<unsigned int>(scale_num);
    cinfo.scale_denom = 8;
    cinfo.raw_data_out = FALSE;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    cinfo.do_block_smoothing = TRUE;
    cinfo.quantize_colors = FALSE;
    switch (cinfo.jpeg_color_space) {
      case JCS_GRAYSCALE:
      case JCS_RGB:
      case JCS_YCbCr:
        cinfo.out_color_space = JCS_RGB;  // libjpeg-turbo converts gray -> RGB itself
        return true;
      case JCS_CMYK:
      case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;  // converted to RGB by CmykRowToRgb
        return true;
      default:
        return false;
    }
  }

  // Checks that a header was read and the scale is valid, then sets the output parameters;
  // closes the decoder on failure. `caller` names the entry point in the error message.
  Result PrepareOutput(int32_t scale_num, const char* caller) {
    if (!open) return Result::Fail(kInternalError, std::string(caller) + " called without ReadHeader");
    if (scale_num < 1 || scale_num > 8) {
      Close();
      return Result::Fail(kInvalidArgument, "scale_num must be in 1..8");
    }
    if (!SetupOutput(scale_num)) {
      Close();
      return Result::Fail(kUnsupported, "unsupported JPEG colorspace (not gray/RGB/YCbCr/CMYK/YCCK)");
    }
    return Result::Ok();
  }

  // True when an EOI marker sits in the last bytes of the data: the common case of a complete
  // file (possibly with a little padding after EOI).
  bool EndsWithEoi() const {
    const uint64_t tail = size < 64 ? size : 64;
    for (uint64_t i = size - tail; i + 1 < size; ++i) {
      if (data[i] == 0xFF && data[i + 1] == 0xD9) return true;
    }
    return false;
  }

  // A region decode stops early, so a file cut short after the region would go unnoticed.
  // When the data does not end with EOI (truncated, or trailing junk after EOI), entropy-decode
  // the remaining rows (jpeg_skip_scanlines skips IDCT/color work, not entropy decoding) and
  // read the last one: running out of data raises JWRN_JPEG_EOF -> error. Armed setjmp needed.
  bool VerifyTail() {
    if (EndsWithEoi()) return true;
    const JDIMENSION total = cinfo.output_height;
    if (cinfo.output_scanline >= total) return true;
    const JDIMENSION remaining = total - cinfo.output_scanline;
    if (remaining > 1) jpeg_skip_scanlines(&cinfo, remaining - 1);
    const size_t row_bytes =
        static_cast<size_t>(cinfo.output_width) * static_cast<size_t>(cinfo.output_components);
    if (cmyk.size() < row_bytes) cmyk.resize(row_bytes);
    JSAMPROW row = cmyk.data();
    return jpeg_read_scanlines(&cinfo, &row, 1) == 1;
  }

  bool Inverted() const { return cinfo.saw_Adobe_marker != 0; }

  // Reads `count` rows (starting at the current output scanline) into dst (RGB, stride).
  // Must be called under an armed setjmp.
  bool ReadRows(uint8_t* dst, int64_t stride, int32_t count) {
    const int32_t width = static_cast<int32_t>(cinfo.output_width);
    if (cinfo.output_components == 3) {
      rows.resize(static_cast<size_t>(count));
      for (int32_t r = 0; r < count; ++r) rows[r] = dst + r * stride;
      int32_t done = 0;
      while (done < count) {
        const JDIMENSION n = jpeg_read_scanlines(&cinfo, rows.data() + done,
                                                 static_cast<JDIMENSION>(count - done));
        if (n == 0) return false;
        done += static_cast<int32_t>(n);
      }
      return true;
    }
    // 4-component (CMYK) output: read a few rows at a time, then convert.
    const int32_t chunk = 16;
    cmyk.resize(static_cast<size_t>(chunk) * width * 4);
    rows.resize(chunk);
    for (int32_t r = 0; r < chunk; ++r) rows[r] = cmyk.data() + static_cast<int64_t>(r) * width * 4;
    int32_t done = 0;
    const bool inv = Inverted();
    while (done < count) {
      const int32_t want = count - done < chunk ? count - done : chunk;
      const JDIMENSION n =
          jpeg_read_scanlines(&cinfo, rows.data(), static_cast<JDIMENSION>(want));
      if (n == 0) return false;
      for (JDIMENSION r = 0; r < n; ++r) {
        CmykRowToRgb(rows[r], dst + (done + static_cast<int32_t>(r)) * stride, width, inv);
      }
      done += static_cast<int32_t>(n);
    }
    return true;
  }
};

JpegDecoder::JpegDecoder() : impl_(new Impl()) {}
JpegDecoder::~JpegDecoder() = default;

JpegDecoder& JpegDecoder::ThreadLocal() {
  static thread_local JpegDecoder decoder;
  return decoder;
}

void JpegDecoder::Abort() { impl_->Close(); }

Result JpegDecoder::ReadHeader(const uint8_t* data, uint64_t size, JpegHeader* header) {
  Impl* d = impl_.get();
  if (d->open) d->Close();
  if (!d->created) {
    return Result::Fail(kInternalError,
                        std::string("libjpeg could not create a decoder: ") + d->err.message);
  }
  if (data == nullptr || size == 0) {
    return Result::Fail(kDecodeError, "empty input: 0 bytes of JPEG data");
  }
  if (setjmp(d->err.jump)) return d->FailFromLibjpeg();
  d->data = data;
  d->size = size;
  jpeg_mem_src(&d->cinfo, data, static_cast<unsigned long>(size));
  if (jpeg_read_header(&d->cinfo, TRUE) != JPEG_HEADER_OK) {
    d->Close();
    return Result::Fail(kDecodeError, "JPEG data holds tables only, no image");
  }
  d->open = true;
  JpegHeader& h = d->header;
  h.height = static_cast<int32_t>(d->cinfo.image_height);
  h.width = static_cast<int32_t>(d->cinfo.image_width);
  h.components = d->cinfo.num_components;
  h.colorspace = MapColorSpace(d->cinfo.jpeg_color_space);
  h.progressive = d->cinfo.progressive_mode != 0;
  if (header != nullptr) *header = h;
  return Result::Ok();
}

Result JpegDecoder::DecodeRegion(int32_t scale_num, int32_t x0, int32_t y0, int32_t x1,
                                 int32_t y1, Region* region) {
  Impl* d = impl_.get();
  Result prepared = d->PrepareOutput(scale_num, "DecodeRegion");
  if (!prepared.ok()) return prepared;
  if (setjmp(d->err.jump)) return d->FailFromLibjpeg();
  jpeg_start_decompress(&d->cinfo);
  const int32_t full_w = static_cast<int32_t>(d->cinfo.output_width);
  const int32_t full_h = static_cast<int32_t>(d->cinfo.output_height);
  // Clamped copies (the arguments themselves are never modified after setjmp).
  const int32_t rx0 = x0 < 0 ? 0 : x0, ry0 = y0 < 0 ? 0 : y0;
  const int32_t rx1 = x1 > full_w ? full_w : x1, ry1 = y1 > full_h ? full_h : y1;
  if (rx0 >= rx1 || ry0 >= ry1) {
    d->Close();
    return Result::Fail(kInvalidArgument, "empty decode region");
  }
  JDIMENSION xoff = static_cast<JDIMENSION>(rx0);
  JDIMENSION cw = static_cast<JDIMENSION>(rx1 - rx0);
  if (rx0 > 0 || rx1 < full_w) {
    // Widens to iMCU boundaries; output_width becomes cw.
    jpeg_crop_scanline(&d->cinfo, &xoff, &cw);
  }
  const int32_t width = static_cast<int32_t>(d->cinfo.output_width);
  const int32_t rows = ry1 - ry0;
  const int64_t stride = static_cast<int64_t>(width) * 3;
  d->buffer.resize(static_cast<size_t>(stride) * rows);
  if (ry0 > 0) {
    const JDIMENSION skipped = jpeg_skip_scanlines(&d->cinfo, static_cast<JDIMENSION>(ry0));
    if (skipped != static_cast<JDIMENSION>(ry0)) {
      d->Close();
      return Result::Fail(kDecodeError, "could not skip to the first row of the crop");
    }
  }
  if (!d->ReadRows(d->buffer.data(), stride, rows) || !d->VerifyTail()) {
    d->Close();
    return Result::Fail(kDecodeError, "libjpeg returned no scanlines");
  }
  d->Close();  // no need to decode the rest of the image
  region->pixels = d->buffer.data();
  region->stride = stride;
  region->x0 = static_cast<int32_t>(xoff);
  region->y0 = ry0;
  region->width = width;
  region->height = rows;
  return Result::Ok();
}

Result JpegDecoder::DecodeFull(int32_t scale_num, uint8_t* out, uint64_t capacity) {
  Impl* d = impl_.get();
  Result prepared = d->PrepareOutput(scale_num, "DecodeFull");
  if (!prepared.ok()) return prepared;
  if (setjmp(d->err.jump)) return d->FailFromLibjpeg();
  jpeg_start_decompress(&d->cinfo);
  const int64_t w = d->cinfo.output_width, h = d->cinfo.output_height;
  if (static_cast<uint64_t>(w * h * 3) > capacity) {
    d->Close();
    return Result::Fail(kInvalidArgument, "output buffer too small for the decoded image");
  }
  if (!d->ReadRows(out, w * 3, static_cast<int32_t>(h))) {
    d->Close();
    return Result::Fail(kDecodeError, "libjpeg returned no scanlines");
  }
  jpeg_finish_decompress(&d->cinfo);
  d->open = false;
  return Result::Ok();
}

bool JpegDecoder::IsYuv420() const {
  const jpeg_decompress_struct& c = impl_->cinfo;
  if (!impl_->open || c.jpeg_color_space != JCS_YCbCr || c.num_components != 3) return false;
  const jpeg_component_info* comp = c.comp_info;
  return comp[0].h_samp_factor == 2 && comp[0].v_samp_factor == 2 &&
         comp[1].h_samp_factor == 1 && comp[1].v_samp_factor == 1 &&
         comp[2].h_samp_factor == 1 && comp[2].v_samp_factor == 1;
}

Result JpegDecoder::DecodeRawI420(uint8_t* out, uint64_t capacity) {
  Impl* d = impl_.get();
  if (!d->open) return Result::Fail(kInternalError, "DecodeRawI420 called without ReadHeader");
  if (!IsYuv420()) {
    d->Close();
    return Result::Fail(kUnsupported, "not a 4:2:0 YCbCr JPEG");
  }
  jpeg_decompress_struct& c = d->cinfo;
  const int32_t h = static_cast<int32_t>(c.image_height), w = static_cast<int32_t>(c.image_width);
  const int32_t hh = h + (h & 1), ww = w + (w & 1), ch = hh / 2, cw = ww / 2;
  const uint64_t need = static_cast<uint64_t>(hh) * ww + 2 * static_cast<uint64_t>(ch) * cw;
  if (need > capacity) {
    d->Close();
    return Result::Fail(kInvalidArgument, "output buffer too small for the YUV420 item");
  }
  if (setjmp(d->err.jump)) return d->FailFromLibjpeg();
  c.raw_data_out = TRUE;
  c.out_color_space = JCS_YCbCr;
  c.scale_num = 8;
  c.scale_denom = 8;
  c.dct_method = JDCT_ISLOW;
  c.do_block_smoothing = TRUE;
  jpeg_start_decompress(&c);
  // One iMCU row = 16 Y rows + 8 rows of each chroma plane, buffered in full padded planes.
  const int32_t imcu_rows = static_cast<int32_t>((c.output_height + 15) / 16);
  const int64_t ys = static_cast<int64_t>(c.comp_info[0].width_in_blocks) * DCTSIZE;
  const int64_t cs = static_cast<int64_t>(c.comp_info[1].width_in_blocks) * DCTSIZE;
  const int64_t y_bytes = ys * imcu_rows * 16, c_bytes = cs * imcu_rows * 8;
  d->buffer.resize(static_cast<size_t>(y_bytes + 2 * c_bytes));
  uint8_t* planes[3] = {d->buffer.data(), d->buffer.data() + y_bytes,
                        d->buffer.data() + y_bytes + c_bytes};
  d->rows.resize(32);
  JSAMPARRAY bufs[3] = {d->rows.data(), d->rows.data() + 16, d->rows.data() + 24};
  for (int32_t r = 0; r < imcu_rows; ++r) {
    for (int32_t k = 0; k < 16; ++k) bufs[0][k] = planes[0] + (16 * r + k) * ys;
    for (int32_t k = 0; k < 8; ++k) {
      bufs[1][k] = planes[1] + (8 * r + k) * cs;
      bufs[2][k] = planes[2] + (8 * r + k) * cs;
    }
    if (jpeg_read_raw_data(&c, bufs, 16) != 16) {
      d->Close();
      return Result::Fail(kDecodeError, "libjpeg returned no raw data");
    }
  }
  jpeg_finish_decompress(&c);
  d->open = false;
  for (int32_t r = 0; r < hh; ++r) {  // Y, last row / column repeated to even sides
    const uint8_t* src = planes[0] + (r < h ? r : h - 1) * ys;
    uint8_t* dst = out + static_cast<int64_t>(r) * ww;
    std::memcpy(dst, src, static_cast<size_t>(w));
    if (ww > w) dst[w] = src[w - 1];
  }
  uint8_t* dst = out + static_cast<int64_t>(hh) * ww;
  for (int32_t p = 1; p < 3; ++p) {
    for (int32_t r = 0; r < ch; ++r, dst += cw) {
      std::memcpy(dst, planes[p] + r * cs, static_cast<size_t>(cw));
    }
  }
  return Result::Ok();
}

JpegWarnings TakeJpegWarnings() {
  JpegWarnings taken;
  taken.count = t_warnings.count;
  if (taken.count > 0) taken.first = t_warnings.first;
  t_warnings.count = 0;
  return taken;
}

Result ReadJpegHeader(const uint8_t* data, uint64_t size, JpegHeader* header) {
  JpegDecoder& dec = JpegDecoder::ThreadLocal();
  Result r = dec.ReadHeader(data, size, header);
  dec.Abort();
  return r;
}

Result DecodeJpegFull(const uint8_t* data, uint64_t size, int32_t scale_num, uint8_t* out,
                      uint64_t capacity) {
  JpegDecoder& dec = JpegDecoder::ThreadLocal();
  Result r = dec.ReadHeader(data, size, nullptr);
  if (!r.ok()) return r;
  return dec.DecodeFull(scale_num, out, capacity);
}

}  // namespace slipstream
