"""Check encoded images before they go into a cache; turn everything else into JPEG.

The cache stores images as JPEG only, so every decode backend (libjpeg-turbo, the DALI CPU
operator, nvJPEG) can read every item. :func:`prepare_image` decides per image, from its
magic bytes (never its file name):

* A JPEG that all backends decode (baseline, extended or progressive Huffman, 8-bit,
  1 or 3 components) is stored byte for byte. Its header is parsed in pure Python
  (:func:`parse_jpeg_header`) for height and width, and it must end with an EOI marker.
* Any other image Pillow opens (PNG, BMP, GIF, TIFF, WebP, PPM, a PNG named ``.jpg``,
  CMYK/YCCK JPEG, 12-bit or lossless or arithmetic-coded JPEG) is decoded, converted to
  RGB exactly like torchvision's ``pil_loader`` (``Image.convert("RGB")``: alpha dropped,
  first frame only) and re-encoded as JPEG. The caller records it as re-encoded.
* Anything else (empty file, text, truncated JPEG, JPEG without a frame header) raises
  :class:`ImageCheckError`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from slipstream.errors import SlipstreamError

JPEG_EOI_WINDOW = 64
"""An EOI marker (``FF D9``) must start within this many bytes of the end of a JPEG.

Encoders and cameras sometimes pad files after EOI (zeros, a second thumbnail tail); a
small window accepts that padding while a file cut inside its entropy-coded data fails
(``FF D9`` cannot occur there: the encoder stuffs every ``FF`` data byte with ``00``).
"""

# SOFn markers carry the frame header; C4 (DHT), C8 (JPG), CC (DAC) share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Huffman-coded 8-bit processes every backend decodes: baseline, extended, progressive.
_PORTABLE_SOF = frozenset({0xC0, 0xC1, 0xC2})
# Markers without a length field.
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_DHT, _DQT = 0xC4, 0xDB

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


class ImageCheckError(SlipstreamError, ValueError):
    """An item of an image field is not an image the cache can store."""


@dataclass(frozen=True)
class JpegHeader:
    """What the frame header (SOFn) of a JPEG says.

    Attributes:
        height: Image height in pixels.
        width: Image width in pixels.
        components: Number of color components (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK).
        precision: Bits per sample (8 or 12).
        sof_marker: The SOFn marker byte (0xC0 baseline, 0xC2 progressive, ...).
    """

    height: int
    width: int
    components: int
    precision: int
    sof_marker: int

    @property
    def portable(self) -> bool:
        """Whether every decode backend reads this JPEG as is."""
        return (
            self.sof_marker in _PORTABLE_SOF and self.precision == 8 and self.components in (1, 3)
        )


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to be stored.

    Attributes:
        data: JPEG bytes to store (the input itself when it was a portable JPEG).
        height: Height in pixels.
        width: Width in pixels.
        reencoded: Why it was re-encoded (e.g. ``"png"``), or None when stored as is.
    """

    data: bytes
    height: int
    width: int
    reencoded: str | None


def sniff_format(data: bytes | memoryview) -> str | None:
    """Name an image format from its magic bytes.

    Args:
        data: The start of the file (at least 12 bytes for WebP).

    Returns:
        ``"jpeg"``, ``"png"``, ``"gif"``, ``"bmp"``, ``"tiff"``, ``"webp"``, or None.
    """
    head = bytes(data[:12])
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def parse_jpeg_header(data: bytes | memoryview) -> JpegHeader:
    """Read a JPEG's frame header by walking its markers, without decoding.

    Handles fill bytes (runs of ``FF`` before a marker), APPn/EXIF/COM segments, DQT/DHT,
    DRI and every SOFn (progressive SOF2 included).

    Args:
        data: The whole JPEG file.

    Returns:
        The parsed header.

    Raises:
        ImageCheckError: No SOI, a malformed or cut segment, no SOFn before the first
            scan, a zero-sized frame, or no EOI near the end.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != _SOI:
        raise ImageCheckError("not a JPEG (no SOI marker)")
    pos = 2
    header = None
    while True:
        if pos >= n:
            raise ImageCheckError("JPEG ends before its frame header (truncated)")
        if buf[pos] != 0xFF:
            raise ImageCheckError(f"JPEG marker expected at byte {pos}, found 0x{buf[pos]:02X}")
        while pos < n and buf[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise ImageCheckError("JPEG ends inside fill bytes (truncated)")
        marker = buf[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == _SOS and header is not None:
            break
        if marker in (_SOI, _EOI, _SOS):
            if header is not None:
                raise ImageCheckError(f"JPEG has no scan (SOS) before marker 0x{marker:02X}")
            raise ImageCheckError(f"JPEG has no frame header (SOFn) before marker 0x{marker:02X}")
        if pos + 2 > n:
            raise ImageCheckError("JPEG ends inside a segment length (truncated)")
        length = (buf[pos] << 8) | buf[pos + 1]
        if length < 2 or pos + length > n:
            raise ImageCheckError(
                f"JPEG segment 0x{marker:02X} at byte {pos - 2} has length {length}, "
                f"{n - pos} bytes left (truncated or corrupt)"
            )
        if marker in _SOF_MARKERS:
            if length < 8:
                raise ImageCheckError(f"JPEG frame header too short ({length} bytes)")
            precision = buf[pos + 2]
            height = (buf[pos + 3] << 8) | buf[pos + 4]
            width = (buf[pos + 5] << 8) | buf[pos + 6]
            components = buf[pos + 7]
            if height == 0 or width == 0:
                raise ImageCheckError(f"JPEG frame is {width}x{height} (DNL is not supported)")
            if header is None:
                header = JpegHeader(height, width, components, precision, marker)
        elif marker in (_DHT, _DQT):
            problem = table_problem(buf, marker, pos + 2, pos + length)
            if problem:
                name = "Huffman" if marker == _DHT else "quantization"
                raise ImageCheckError(
                    f"JPEG has a bad {name} table (segment at byte {pos - 2}): {problem}"
                )
        pos += length
    if buf.rfind(b"\xff\xd9", max(0, n - JPEG_EOI_WINDOW)) < 0:
        raise ImageCheckError(
            f"JPEG has no EOI marker in its last {JPEG_EOI_WINDOW} bytes (truncated)"
        )
    return header


def table_problem(buf: bytes, marker: int, start: int, end: int) -> str | None:
    """What is wrong with the tables of a DHT or DQT segment's payload, or None.

    DHT: each table's class is 0 (DC) or 1 (AC) and its id 0-3; its 16 code-length counts
    sum to at most 256 symbols, all present; the lengths form a prefix code in which no
    code is all ones (libjpeg's rule); DC symbols are at most 15. DQT: each table's
    precision is 0 (8-bit) or 1 (16-bit) and its id 0-3; 64 entries present, none zero.
    (:func:`slipstream.cache.jpeg_scan` compiles the same rules.)

    Args:
        buf: The JPEG.
        marker: ``0xC4`` (DHT) or ``0xDB`` (DQT).
        start: First payload byte (after the length field).
        end: One past the last payload byte.
    """
    pos = start
    while pos < end:
        kind, ident = buf[pos] >> 4, buf[pos] & 15
        pos += 1
        if marker == _DQT:
            if kind > 1 or ident > 3:
                return f"table precision {kind}, id {ident}"
            size = 64 * (kind + 1)
            if pos + size > end:
                return "entries cut short by the segment length"
            entries = buf[pos : pos + size]
            values = (
                entries
                if kind == 0
                else [a | b for a, b in zip(entries[::2], entries[1::2], strict=True)]
            )
            if 0 in values:
                return "a zero quantization value"
            pos += size
            continue
        if kind > 1 or ident > 3:
            return f"table class {kind}, id {ident}"
        if pos + 16 > end:
            return "code-length counts cut short by the segment length"
        counts = buf[pos : pos + 16]
        total = sum(counts)
        pos += 16
        if total > 256 or pos + total > end:
            return f"{total} symbols (at most 256, and all within the segment)"
        code = 0
        for length, count in enumerate(counts, start=1):
            code += count
            if count and code >= 1 << length:
                return f"code lengths do not form a prefix code (length {length})"
            code <<= 1
        if kind == 0 and any(v > 15 for v in buf[pos : pos + total]):
            return "a DC symbol above 15"
        pos += total
    return None


def reencode_jpeg(data: bytes | memoryview, quality: int) -> tuple[bytes, int, int, str]:
    """Decode any image Pillow reads, convert it to RGB and encode it as JPEG.

    Args:
        data: The encoded image.
        quality: JPEG quality (1-100).

    Returns:
        ``(jpeg_bytes, height, width, source_format)``, the last as Pillow names it.

    Raises:
        ImageCheckError: Pillow cannot decode it completely.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            source_format = str(img.format)
            rgb = img.convert("RGB")
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageCheckError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue(), rgb.height, rgb.width, source_format


def prepare_image(data: bytes | memoryview | np.ndarray, quality: int = 95) -> PreparedImage:
    """Check one encoded image and return what the cache stores for it.

    Args:
        data: The file's bytes.
        quality: JPEG quality used when the image must be re-encoded.

    Returns:
        The bytes to store, with height and width and the re-encoding reason, if any.

    Raises:
        ImageCheckError: Empty, unreadable, truncated or not an image.
    """
    if not isinstance(data, bytes):
        data = bytes(data)  # memoryview / uint8 array from another reader
    if len(data) == 0:
        raise ImageCheckError("empty file (0 bytes)")
    reason = None
    if sniff_format(data) == "jpeg":
        header = parse_jpeg_header(data)
        if header.portable:
            return PreparedImage(data, header.height, header.width, None)
        reason = (
            f"JPEG SOF 0x{header.sof_marker:02X}, {header.precision}-bit, "
            f"{header.components} components"
        )
    jpeg, height, width, source_format = reencode_jpeg(data, quality)
    return PreparedImage(jpeg, height, width, reason or source_format)
