"""Pick the reader for a source path: what ``slipstream build`` and ``verify`` read.

====================================  ===========================================
source                                reader
====================================  ===========================================
``*.beton`` / ``*.ffcv`` file         :class:`~slipstream.readers.FfcvFile`
folder with ``index.json``, ``s3://``  :class:`~slipstream.readers.LitDataReader`
``*.txt`` / ``*.csv`` / ``*.tsv``     :class:`~slipstream.readers.FileListReader`
any other folder                      :class:`~slipstream.readers.ImageFolderReader`
====================================  ===========================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from slipstream.paths import default_cache_root
from slipstream.readers.ffcv_file import FfcvFile
from slipstream.readers.ffcv_format import FFCV_SUFFIXES
from slipstream.readers.file_list import FILE_LIST_SUFFIXES, FileListReader
from slipstream.readers.image_folder import ImageFolderReader

READER_KINDS = ("FfcvFile", "LitDataReader", "FileListReader", "ImageFolderReader")
"""Reader class names a cache manifest's ``source.kind`` can name for :func:`open_reader`."""


def open_reader(
    source: str | os.PathLike,
    *,
    kind: str | None = None,
    download_root: str | os.PathLike | None = None,
    list_root: str | os.PathLike | None = None,
) -> Any:
    """Open the reader of ``source``.

    Args:
        source: A path (see the module table) or an ``s3://`` URL of a LitData dataset.
        kind: A reader class name (e.g. a manifest's ``source.kind``) instead of guessing
            from the path.
        download_root: Where ``s3://`` datasets are downloaded (default: the cache root).
        list_root: Folder a file list's relative paths are resolved against (default:
            the list's folder).

    Returns:
        The reader.

    Raises:
        ValueError: ``kind`` is not one of :data:`READER_KINDS`.
    """
    path = Path(source).expanduser()
    if kind is None:
        kind = _guess_kind(str(source), path)
    if kind == "FfcvFile":
        return FfcvFile(path)
    if kind == "LitDataReader":
        from slipstream.readers.litdata_source import open_litdata_reader  # LitData / S3

        if download_root is None:
            download_root = default_cache_root()
        return open_litdata_reader(source, download_root)
    if kind == "FileListReader":
        return FileListReader(path, root=list_root)
    if kind == "ImageFolderReader":
        return ImageFolderReader(path)
    raise ValueError(
        f"no reader named {kind!r} (source {source}); known: {', '.join(READER_KINDS)}"
    )


def _guess_kind(text: str, path: Path) -> str:
    if path.suffix.lower() in FFCV_SUFFIXES and path.is_file():
        return "FfcvFile"
    if text.startswith("s3://") or (path / "index.json").is_file():
        return "LitDataReader"
    if path.suffix.lower() in FILE_LIST_SUFFIXES and path.is_file():
        return "FileListReader"
    return "ImageFolderReader"
