// Status codes shared by every slipstream kernel (native module and DALI operator).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace slipstream {

// Stable integer codes: they cross the C++/Python boundary as plain int32.
enum StatusCode : int32_t {
  kOk = 0,
  kInvalidArgument = 1,  // bad window / size / buffer bounds
  kDecodeError = 2,      // corrupt, truncated or non-JPEG data
  kUnsupported = 3,      // valid JPEG we cannot turn into RGB (e.g. unknown colorspace)
  kInternalError = 4,    // allocation failure or other unexpected condition
  kJpegWarning = 5,      // decoded, but libjpeg warned about corrupt data (pixels may be
                         // garbage); a failure only in strict mode (jpeg_decoder.h)
};

// Result of a kernel call: a code plus a human-readable message (empty when ok).
struct Result {
  int32_t code = kOk;
  std::string message;

  bool ok() const { return code == kOk; }
  static Result Ok() { return Result{}; }
  static Result Fail(int32_t c, std::string msg) { return Result{c, std::move(msg)}; }
};

// "[y=.., x=.., h=.., w=..]" of a crop window, for error messages.
inline std::string WindowString(const int32_t* w) {
  return "[y=" + std::to_string(w[0]) + ", x=" + std::to_string(w[1]) +
         ", h=" + std::to_string(w[2]) + ", w=" + std::to_string(w[3]) + "]";
}

}  // namespace slipstream
