"""Checksum sidecars of FFCV files read in place (the file itself may be read-only).

``<cache root>/ffcv-checksums/<file stem>-<fingerprint 24>.<field>.xxh64.npy`` holds the
XXH64 of every item of one field (:mod:`slipstream.cache.checksum`), computed from the file
on first use and written atomically (a temporary file, fsync, rename). The fingerprint
covers the file's size, modification time, header and allocation table, so a rewritten
file gets a new sidecar; bytes changed in place later fail their checksum when gathered.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slipstream.cache.checksum import CHECKSUM_DTYPE, checksum_file, xxh64_items
from slipstream.paths import default_cache_root

if TYPE_CHECKING:
    from slipstream.readers.ffcv_file import FfcvFile

__all__ = ["SIDECAR_DIR", "load_or_compute", "sidecar_path"]

SIDECAR_DIR = "ffcv-checksums"
"""Sub-folder of the cache root that holds the sidecars."""


def sidecar_path(beton: FfcvFile, field: str, root: Path | None = None) -> Path:
    """Where the sidecar of one field of ``beton`` lives.

    Args:
        beton: The FFCV file.
        field: Its bytes or image field.
        root: Cache root (default: :func:`~slipstream.paths.default_cache_root`).
    """
    folder = (root or default_cache_root()) / SIDECAR_DIR
    return folder / f"{beton.path.stem}-{beton.fingerprint()[:24]}.{checksum_file(field)}"


def load_or_compute(beton: FfcvFile, field: str, root: Path | None = None) -> np.ndarray:
    """The field's checksums from its sidecar; computed and written there when missing.

    A damaged or mismatched sidecar is recomputed. A cache root that cannot be written
    leaves the checksums in memory only (this run still checks against them).

    Args:
        beton: The FFCV file.
        field: Its bytes or image field.
        root: Cache root (default: :func:`~slipstream.paths.default_cache_root`).
    """
    path = sidecar_path(beton, field, root)
    try:
        stored = np.load(path, allow_pickle=False)
        if stored.dtype == CHECKSUM_DTYPE and stored.shape == (len(beton),):
            return stored
    except Exception:  # noqa: BLE001 - missing or damaged sidecar: compute it again
        pass
    meta = beton.meta(field)
    sums = xxh64_items(beton.data(field), meta["data_ptr"], meta["data_size"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, sums, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        pass
    return sums
