"""Per-item checksums of stored bytes: XXH64, compiled with Numba (``nogil``).

A slip cache (format version 2) stores one XXH64 (seed 0) per item of every bytes / image
field in ``<field>.xxh64.npy`` (``<u8 [N]``); an FFCV file read in place gets the same
table from a sidecar in the cache root (:mod:`slipstream.readers.ffcv_checksums`). The
gather (:func:`slipstream.cache.gather.gather_bytes`) hashes each item right after copying
it (while it is still in the CPU cache) and flags every item whose hash differs.

XXH64 rather than CRC32C: no hardware CRC instruction is reachable from Numba portably,
and XXH64 in plain 64-bit arithmetic runs at several GB/s per core (measured in
``benchmarks/bench_integrity.py``), against ~1-2 GB/s for a table-driven CRC.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["CHECKSUM_DTYPE", "CHECKSUM_NAME", "checksum_file", "xxh64", "xxh64_items"]

CHECKSUM_NAME = "xxh64"
"""Value of a field's ``"checksum"`` key in the manifest, and the table file's suffix."""

CHECKSUM_DTYPE = np.dtype("<u8")
"""Element dtype of ``<field>.xxh64.npy``."""

_P1 = np.uint64(11400714785074694791)
_P2 = np.uint64(14029467366897019727)
_P3 = np.uint64(1609587929392839161)
_P4 = np.uint64(9650029242287828579)
_P5 = np.uint64(2870177450012600261)


def checksum_file(field: str) -> str:
    """Name of the checksum table of ``field`` in a cache folder.

    Args:
        field: Field name.
    """
    return f"{field}.{CHECKSUM_NAME}.npy"


@intrinsic
def _load(typingctx, address, width):
    """Unaligned little-endian load of a ``uint64`` (width 8) or ``uint32`` (width 4)."""
    if not isinstance(width, types.IntegerLiteral):
        return None
    bits = width.literal_value * 8
    signature = types.uint64(types.uintp, width)

    def codegen(context, builder, sig, args):
        int_type = cgutils.ir.IntType(bits)
        pointer = builder.inttoptr(args[0], int_type.as_pointer())
        value = builder.load(pointer, align=1)
        return builder.zext(value, cgutils.ir.IntType(64)) if bits < 64 else value

    return signature, codegen


@numba.njit(inline="always")
def _rotl(x, r):  # pragma: no cover (jit)
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _round(acc, lane):  # pragma: no cover (jit)
    acc = acc + lane * _P2
    return _rotl(acc, 31) * _P1


@numba.njit(inline="always")
def _merge(acc, lane):  # pragma: no cover (jit)
    acc = acc ^ _round(np.uint64(0), lane)
    return acc * _P1 + _P4


@numba.njit(nogil=True, cache=True)
def xxh64_address(address, length):  # pragma: no cover (jit)
    """XXH64 (seed 0) of ``length`` bytes at a raw ``address`` (nopython callers)."""
    p = np.uintp(address)
    end = p + np.uintp(length)
    if length >= 32:
        v1 = _P1 + _P2
        v2 = _P2
        v3 = np.uint64(0)
        v4 = np.uint64(0) - _P1
        limit = end - np.uintp(32)
        while p <= limit:
            v1 = _round(v1, _load(p, 8))
            v2 = _round(v2, _load(p + np.uintp(8), 8))
            v3 = _round(v3, _load(p + np.uintp(16), 8))
            v4 = _round(v4, _load(p + np.uintp(24), 8))
            p += np.uintp(32)
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = _P5
    h = h + np.uint64(length)
    while p + np.uintp(8) <= end:
        h = h ^ _round(np.uint64(0), _load(p, 8))
        h = _rotl(h, 27) * _P1 + _P4
        p += np.uintp(8)
    if p + np.uintp(4) <= end:
        h = h ^ (_load(p, 4) * _P1)
        h = _rotl(h, 23) * _P2 + _P3
        p += np.uintp(4)
    while p < end:
        h = h ^ (_load(p, 1) * _P5)
        h = _rotl(h, 11) * _P1
        p += np.uintp(1)
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    return h ^ (h >> np.uint64(32))


@numba.njit(nogil=True, cache=True)
def _hash_items(data, pointers, sizes, out):  # pragma: no cover (jit)
    base = data.ctypes.data
    for i in range(pointers.shape[0]):
        out[i] = xxh64_address(base + np.uintp(pointers[i]), np.int64(sizes[i]))


def xxh64(data: bytes | np.ndarray) -> int:
    """XXH64 (seed 0) of a byte string or a contiguous ``uint8`` array.

    Args:
        data: The bytes.
    """
    array = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data
    array = np.ascontiguousarray(array, dtype=np.uint8).reshape(-1)
    out = np.zeros(1, CHECKSUM_DTYPE)
    if array.size == 0:
        array = np.zeros(1, np.uint8)
        _hash_items(array, np.zeros(1, np.uint64), np.zeros(1, np.uint64), out)
    else:
        _hash_items(array, np.zeros(1, np.uint64), np.array([array.size], np.uint64), out)
    return int(out[0])


def xxh64_items(
    data: np.ndarray, pointers: np.ndarray, sizes: np.ndarray, chunk: int = 1 << 16
) -> np.ndarray:
    """XXH64 of every item ``data[pointers[i] : pointers[i] + sizes[i]]`` (no GIL held).

    Args:
        data: uint8 1-D contiguous array (a memory-mapped ``.bin`` or ``.beton``).
        pointers: Item start offsets.
        sizes: Item sizes.
        chunk: Items hashed per compiled call.

    Returns:
        ``<u8 [N]`` checksums.

    Raises:
        ValueError: An item lies past the end of ``data``.
    """
    pointers = np.ascontiguousarray(pointers, dtype=np.uint64)
    sizes = np.ascontiguousarray(sizes, dtype=np.uint64)
    if len(pointers) and int((pointers + sizes).max()) > data.shape[0]:
        raise ValueError(f"an item ends past the end of the data ({data.shape[0]} bytes)")
    out = np.zeros(len(pointers), dtype=CHECKSUM_DTYPE)
    if data.shape[0] == 0:
        return _empty_hashes(sizes, out)
    for first in range(0, len(pointers), chunk):
        part = slice(first, first + chunk)
        _hash_items(data, pointers[part], sizes[part], out[part])
    return out


def _empty_hashes(sizes: np.ndarray, out: np.ndarray) -> np.ndarray:
    out[:] = xxh64(b"")
    return out
