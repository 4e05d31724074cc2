"""Disk space for a build: the estimate checked before writing, and the error of a full disk.

:func:`check_free_space` reads a few samples spread over the source, extrapolates the bytes
the cache will take (a JPEG is stored as is; another image, with ``image_storage="raw"``,
as ``height x width x 3`` pixels) and refuses a build the destination's free space cannot
hold, naming both figures, before anything is written. A disk that fills anyway (other
writers, a poor estimate) stops the build with :class:`NotEnoughSpaceError` too
(:func:`out_of_space`); the builder then removes its temporary folder.
"""

from __future__ import annotations

import errno
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.cache.build_batches import CacheBuildError

__all__ = [
    "NotEnoughSpaceError",
    "check_free_space",
    "estimate_build_bytes",
    "is_out_of_space",
    "out_of_space",
]

ESTIMATE_SAMPLES = 32
"""Samples read (evenly spread) to estimate a build's size."""

_MARGIN = 1.05  # the estimate's headroom (tables, manifest, the spread of item sizes)
_FIXED = 1 << 20  # bytes of metadata files whatever the source


class NotEnoughSpaceError(CacheBuildError):
    """A build needs more disk space than its destination has (checked, or the disk filled)."""


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _value_bytes(value: Any, image_storage: str) -> int:
    """Bytes one field value takes in a cache."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (int, float, np.number, bool)):
        return 8
    try:
        view = memoryview(value)
    except TypeError:
        return 8
    if view.nbytes >= 2 and view[:2].tobytes() != b"\xff\xd8" and image_storage == "raw":
        try:  # a non-JPEG image is stored as its raw RGB pixels
            from PIL import Image

            with Image.open(io.BytesIO(view.tobytes())) as image:
                return max(view.nbytes, image.width * image.height * 3)
        except Exception:  # noqa: BLE001 - not an image: stored as bytes
            return view.nbytes
    return view.nbytes


def estimate_build_bytes(reader: Any, image_storage: str = "raw") -> int:
    """Bytes a slip cache of ``reader`` will take, from :data:`ESTIMATE_SAMPLES` samples.

    Args:
        reader: A build reader (``__len__``, ``read_sample``).
        image_storage: The build's ``image_storage`` (non-JPEG images stored raw or not).
    """
    total = len(reader)
    if total == 0:
        return _FIXED
    picks = np.unique(np.linspace(0, total - 1, min(total, ESTIMATE_SAMPLES)).astype(np.int64))
    sizes = []
    for index in picks.tolist():
        try:
            sample = reader.read_sample(index)
        except Exception:  # noqa: BLE001 - a bad sample is the build's to report
            continue
        sizes.append(sum(_value_bytes(v, image_storage) for v in sample.values()))
    if not sizes:
        return _FIXED
    return int(float(np.mean(sizes)) * total * _MARGIN) + _FIXED


def check_free_space(reader: Any, dest: Path, image_storage: str = "raw") -> None:
    """Refuse a build of ``reader`` into ``dest`` its file system cannot hold.

    Raises:
        NotEnoughSpaceError: The estimate exceeds the free space of ``dest``'s parent.
    """
    need = estimate_build_bytes(reader, image_storage)
    free = shutil.disk_usage(dest.parent).free
    if need > free:
        raise NotEnoughSpaceError(
            f"not enough disk space to build {dest}: it needs about {_gib(need)} (estimated "
            f"from {min(len(reader), ESTIMATE_SAMPLES)} of {len(reader)} samples), "
            f"{dest.parent} has {_gib(free)} free; free some space or build elsewhere "
            "(cache_dir=)"
        )


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error`` is a full disk or an exceeded quota."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def out_of_space(dest: Path, tmp: Path, error: OSError) -> NotEnoughSpaceError:
    """The error of a build whose disk filled while writing ``tmp`` (already removed)."""
    free = shutil.disk_usage(dest.parent).free
    return NotEnoughSpaceError(
        f"the disk filled while building {dest} ({error.strerror or error}); the partial "
        f"build {tmp.name} was removed, {dest.parent} has {_gib(free)} free now; free some "
        "space or build elsewhere (cache_dir=)"
    )
