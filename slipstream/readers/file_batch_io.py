"""Read a batch of whole files into one buffer without the GIL (Numba calling libc).

:func:`read_files_packed` opens every file of a batch and asks its size (``lseek``), then
reads each into its slot of one ``uint8`` buffer and closes it, all inside ``nogil``
Numba functions that call the C library's ``open``/``lseek``/``read``/``close`` by name.
So reader threads read files truly in parallel, with no Python object per file.

Anything unusual (a file that cannot be opened, is not seekable, or changes size while
read) makes it raise :class:`OSError`; callers then read the batch file by file in Python,
which names the file and the reason.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from slipstream.cache.packed_items import PackedItems

MAX_FILE_SIZE = 1 << 40
"""Larger "files" are not read packed (a folder's ``lseek`` end is such a value)."""

_CHAR_P = ir.IntType(8).as_pointer()
_SEEK_SET, _SEEK_END = 0, 2


@intrinsic
def _c_open(typingctx, path_address, flags):  # pragma: no cover (compiled)
    """``int open(const char *path, int flags)`` of the C library."""
    signature = types.int32(types.uintp, types.int32)

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [_CHAR_P, ir.IntType(32)], var_arg=True)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "open")
        return builder.call(fn, [builder.inttoptr(args[0], _CHAR_P), args[1]])

    return signature, codegen


@intrinsic
def _c_lseek(typingctx, fd, offset, whence):  # pragma: no cover (compiled)
    """``off_t lseek(int fd, off_t offset, int whence)`` (64-bit ``off_t``)."""
    signature = types.int64(types.int32, types.int64, types.int32)

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(32), ir.IntType(64), ir.IntType(32)])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, "lseek"), args)

    return signature, codegen


@intrinsic
def _c_read(typingctx, fd, address, count):  # pragma: no cover (compiled)
    """``ssize_t read(int fd, void *buf, size_t count)``."""
    signature = types.int64(types.int32, types.uintp, types.int64)

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(32), _CHAR_P, ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "read")
        return builder.call(fn, [args[0], builder.inttoptr(args[1], _CHAR_P), args[2]])

    return signature, codegen


@intrinsic
def _c_close(typingctx, fd):  # pragma: no cover (compiled)
    """``int close(int fd)``."""
    signature = types.int32(types.int32)

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, "close"), args)

    return signature, codegen


@numba.njit(nogil=True, cache=True)
def _open_all(paths, starts, flags, fds, sizes):  # pragma: no cover (compiled)
    """Open every path and store its size; False (all closed again) on any failure."""
    base = paths.ctypes.data
    for i in range(starts.shape[0]):
        fd = _c_open(base + np.uintp(starts[i]), np.int32(flags))
        fds[i] = fd
        size = _c_lseek(fd, 0, _SEEK_END) if fd >= 0 else -1
        if size < 0 or _c_lseek(fd, 0, _SEEK_SET) != 0:
            fds[i] = -1
            if fd >= 0:
                _c_close(fd)
            _close_all(fds[:i])
            return False
        sizes[i] = size
    return True


@numba.njit(nogil=True, cache=True)
def _close_all(fds):  # pragma: no cover (compiled)
    for i in range(fds.shape[0]):
        if fds[i] >= 0:
            _c_close(fds[i])
            fds[i] = -1


@numba.njit(nogil=True, cache=True)
def _read_all(fds, sizes, buffer):  # pragma: no cover (compiled)
    """Read each open file into its slot and close it; False if one was short."""
    base = buffer.ctypes.data
    position = np.int64(0)
    ok = True
    for i in range(fds.shape[0]):
        done = np.int64(0)
        while ok and done < sizes[i]:
            got = _c_read(fds[i], base + np.uintp(position + done), sizes[i] - done)
            if got <= 0:  # EOF before the size lseek reported, or an error
                ok = False
            done += got
        _c_close(fds[i])
        fds[i] = -1
        position += sizes[i]
    return ok


def read_files_packed(paths: list[str]) -> PackedItems:
    """Read whole files into one buffer, in order.

    Args:
        paths: The files.

    Returns:
        Their bytes, back to back.

    Raises:
        OSError: A file could not be opened, sized or read completely (read the files one
            by one to find which and why).
    """
    encoded = [os.fsencode(p) + b"\0" for p in paths]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    starts = np.zeros(len(encoded), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    names = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    fds = np.full(len(paths), -1, dtype=np.int32)
    sizes = np.zeros(len(paths), dtype=np.int64)
    if not _open_all(names, starts, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0), fds, sizes):
        raise OSError("a file of the batch could not be opened or sized")
    try:
        if (sizes > MAX_FILE_SIZE).any():  # e.g. a folder: lseek gives a huge offset
            raise OSError("a file of the batch is not a regular file")
        buffer = np.empty(int(sizes.sum()), dtype=np.uint8)
    except BaseException:
        _close_all(fds)
        raise
    if not _read_all(fds, sizes, buffer):
        raise OSError("a file of the batch changed size or failed while being read")
    return PackedItems(buffer, sizes)
