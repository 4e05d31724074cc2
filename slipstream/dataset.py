"""``SlipstreamDataset``: any supported source, opened as a slip cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.arguments import check_bool, check_choice
from slipstream.cache import FORMAT_VERSION, SlipCache, build_cache
from slipstream.cache.field_index import FieldIndex
from slipstream.paths import default_cache_root
from slipstream.readers import FILE_LIST_SUFFIXES, FfcvFile, FileListReader, ImageFolderReader
from slipstream.readers.ffcv_format import FFCV_SUFFIXES


def is_slip_cache(path: Path) -> bool:
    """True where ``path`` holds a slip cache (ours, or the original ``.slipstream/`` layout)."""
    return (path / "manifest.json").is_file() or (path / ".slipstream" / "manifest.json").is_file()


class SlipstreamDataset:
    """A dataset the loader can stream: a slip cache, built once from the source if needed.

    ``source`` may be a slip cache folder, an image folder (class sub-folders,
    as torchvision's ``ImageFolder``) or a file list (``.txt``/``.csv``/``.tsv`` of
    ``path label`` lines, :mod:`slipstream.readers.file_list`). An image folder or a file
    list is converted once into a cache under ``cache_root`` whose name carries the source
    fingerprint and the cache format version, so a changed source never reuses a stale
    cache. A LitData dataset (a folder with ``index.json`` written by ``litdata.optimize``, or an
    ``s3://bucket/prefix`` URL, downloaded first) is converted the same way
    (:mod:`slipstream.readers.litdata_source`). An FFCV ``.beton`` / ``.ffcv`` file is read
    in place (:class:`~slipstream.readers.FfcvFile`) when all its images are JPEGs, and
    converted the same way when an image field holds raw pixels (``raw``, ``smart`` or
    ``proportion`` write modes), since the decoders take JPEG.

    Args:
        source: Path of a slip cache, an image folder, a file list, a LitData folder or
            an FFCV file, or an ``s3://`` URL of a LitData dataset.
        cache_root: Where to build caches (default :func:`slipstream.paths.default_cache_root`).
        on_error: ``"raise"`` (default) or ``"skip"`` unreadable images while building.
        progress: Show a progress bar while building (default: when stderr is a terminal
            and ``$SLIPSTREAM_PROGRESS`` is not ``0``; see :mod:`slipstream.logs`).

    Examples:
        >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
        >>> ds[0]["label"]  # doctest: +SKIP
        0
    """

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        cache_root: str | os.PathLike | None = None,
        on_error: str = "raise",
        progress: bool | None = None,
    ) -> None:
        """Open ``source``, building its cache first where it is not one."""
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"source must be a path or an s3:// URL, got {type(source).__name__}")
        check_choice("on_error", on_error, ("raise", "skip"))
        progress = check_bool("progress", progress) if progress is not None else None
        self.source = str(source)
        path = Path(source).expanduser()
        if str(source).startswith("s3://") or (path / "index.json").is_file():
            from slipstream.readers.litdata_source import litdata_cache  # LitData / S3

            root = Path(cache_root) if cache_root is not None else default_cache_root()
            built = litdata_cache(source, root, on_error=on_error, progress=progress)
            self.cache = SlipCache.open(built)
            return
        if not path.exists():
            raise FileNotFoundError(f"dataset source {str(path)!r} does not exist")
        if is_slip_cache(path):
            cache_path = path
        elif path.is_file() and path.suffix.lower() in FFCV_SUFFIXES:
            beton = FfcvFile(path)
            if not beton.has_raw_images:  # all JPEG: read in place, no conversion
                self.cache = beton
                return
            root = Path(cache_root) if cache_root is not None else default_cache_root()
            name = f"{path.stem}-{beton.fingerprint()[:16]}-v{FORMAT_VERSION}"
            cache_path = build_cache(beton, root / name, on_error=on_error, progress=progress)
        elif path.is_dir() or path.suffix.lower() in FILE_LIST_SUFFIXES:
            if path.is_dir():
                reader, name = ImageFolderReader(path), path.resolve().name
            else:
                reader, name = FileListReader(path), path.stem
            root = Path(cache_root) if cache_root is not None else default_cache_root()
            name = f"{name}-{reader.fingerprint()[:16]}-v{FORMAT_VERSION}"
            cache_path = build_cache(reader, root / name, on_error=on_error, progress=progress)
        else:
            raise ValueError(
                f"cannot read {str(path)!r}: expected a slip cache folder, an image folder, "
                f"a file list ({'/'.join(FILE_LIST_SUFFIXES)}) or a .beton/.ffcv file"
            )
        self.cache = SlipCache.open(cache_path)

    @property
    def cache_path(self) -> Path:
        """Folder of the slip cache being read (or the FFCV file read in place)."""
        return self.cache.path

    @property
    def field_types(self) -> dict[str, str]:
        """Field name -> stored type (``"ImageBytes"``, ``"int"``, ``"str"``, ...)."""
        return self.cache.field_types

    def image_sizes(self, field: str = "image") -> tuple[np.ndarray, np.ndarray]:
        """Stored ``(heights, widths)`` of an image field, one entry per sample."""
        meta = self.cache.meta(field)
        return np.asarray(meta["height"]), np.asarray(meta["width"])

    def field_index(self, field: str) -> FieldIndex:
        """The ``value -> sample indices`` index of a field, built once and kept.

        Args:
            field: A numeric field (one value per sample) or a string field.
        """
        indexes = self.__dict__.setdefault("_field_indexes", {})
        if field not in indexes:
            indexes[field] = FieldIndex.of_field(self.cache, field)
        return indexes[field]

    def indices_where(self, field: str, values: Any) -> np.ndarray:
        """Sorted sample indices whose ``field`` equals one of ``values``.

        Args:
            field: A numeric or string field, e.g. ``"label"``.
            values: One value or a sequence of values (values no sample has are ignored).

        Returns:
            Sorted ``int64`` indices, ready for ``SlipstreamLoader(..., indices=...)``.

        Example:
            >>> ten_classes = ds.indices_where("label", range(10))  # doctest: +SKIP
            >>> loader = SlipstreamLoader(ds, 256, pipelines, indices=ten_classes)  # doctest: +SKIP
        """
        return self.field_index(field).indices_of(values)

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.cache)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """All fields of one sample (images as encoded bytes)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        return self.cache.sample(index % len(self))

    def __repr__(self) -> str:
        """Source, cache (or the FFCV file read in place), samples and fields."""
        kind = "slip cache" if isinstance(self.cache, SlipCache) else "read in place"
        return (
            f"SlipstreamDataset(source={self.source!r}, cache={str(self.cache_path)!r} "
            f"({kind}), samples={len(self)}, fields={self.field_types})"
        )
