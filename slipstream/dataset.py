"""``SlipstreamDataset``: any supported source, opened as a slip cache.

Sources and how they are opened (one small function each below, :func:`open_store`
dispatches):

==================================================  ==========================================
source                                              opened as
==================================================  ==========================================
slip cache folder (``manifest.json``)               itself
image folder (class sub-folders)                    a cache built once (:func:`open_file_samples`)
file list (``.txt``/``.csv``/``.tsv``)              a cache built once (:func:`open_file_samples`)
LitData folder (``index.json``) or ``s3://`` URL    a cache built once (:func:`open_litdata`)
FFCV ``.beton`` / ``.ffcv`` file                    read in place (:func:`open_ffcv`)
Hugging Face ``datasets`` dataset, folder or name   a cache built once (:func:`open_huggingface`)
==================================================  ==========================================

Reopening an image folder or a file list whose cache exists does not look at every file:
a *source pointer* written at build time (:mod:`slipstream.readers.source_pointer`) is
checked in one ``os.stat`` per folder (``verify_source="fast"``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.arguments import check_bool, check_choice, check_int
from slipstream.cache import SlipCache
from slipstream.cache.field_index import FieldIndex
from slipstream.cache.format import IMAGE_STORAGE, IMAGE_TYPE, NAME_VERSION, storage_suffix
from slipstream.cache.raw_items import raw_pixels
from slipstream.paths import default_cache_root
from slipstream.readers import FILE_LIST_SUFFIXES, FfcvFile, FileListReader, ImageFolderReader
from slipstream.readers.ffcv_format import FFCV_SUFFIXES
from slipstream.readers.huggingface import hf_folder_files, is_hf_dataset
from slipstream.readers.s3_download import fetch_s3_source, s3_source_kind
from slipstream.readers.source_pointer import (
    VERIFY_CHOICES,
    now,
    pointer_is_current,
    pointer_path,
    read_pointer,
    watch_paths,
    watch_tree,
    write_pointer,
)
from slipstream.remote_cache import RemoteCache, build_or_fetch, sync_remote
from slipstream.renamed import renamed_argument

SOURCE_KINDS = ("cache", "imagefolder", "file_list", "litdata", "ffcv", "huggingface")
"""Values of ``source_kind``: force how a source is read instead of guessing from the path."""

FieldNames = Sequence[str] | Mapping[str, str]


def is_slip_cache(path: Path) -> bool:
    """True where ``path`` holds a slip cache (ours, or the original ``.slipstream/`` layout)."""
    return (path / "manifest.json").is_file() or (path / ".slipstream" / "manifest.json").is_file()


def resolve_source(source: Any, input_dir: Any, remote_dir: Any, local_dir: Any) -> Any:
    """The one source given, under any of the accepted names.

    ``source`` (positional) and the original slipstream's ``input_dir`` / ``remote_dir``
    / ``local_dir`` all name the dataset; exactly one may be given, except that the
    original's ``input_dir`` overrides the others (as there). ``local_dir`` with
    ``remote_dir`` is an error, as in the original.

    Raises:
        ValueError: No source, or ``local_dir`` and ``remote_dir`` together, or ``source``
            with another name.
    """
    if local_dir is not None and remote_dir is not None:
        raise ValueError(
            "cannot specify both 'local_dir' and 'remote_dir': use 'local_dir' for a local "
            "dataset, or 'remote_dir' (with optional 'cache_dir') for a remote one"
        )
    named = (
        input_dir if input_dir is not None else remote_dir if remote_dir is not None else local_dir
    )
    if source is not None and named is not None:
        raise ValueError("pass the dataset once: positionally or as input_dir/remote_dir/local_dir")
    found = source if source is not None else named
    if found is None:
        raise ValueError(
            "no dataset given: SlipstreamDataset('path/or/s3://url'), or "
            "SlipstreamDataset(input_dir=...), remote_dir=... or local_dir=..."
        )
    if not (isinstance(found, (str, os.PathLike)) or is_hf_dataset(found)):
        raise TypeError(
            f"source must be a path or an s3:// URL, got {type(found).__name__} (Hugging Face "
            "datasets: a datasets.Dataset)"
        )
    return found


def guess_source_kind(source: Any) -> str:
    """The :data:`SOURCE_KINDS` entry a source is read as, from its type and path.

    Raises:
        FileNotFoundError: A local path that does not exist.
        ValueError: A path of no known kind.
    """
    if is_hf_dataset(source) or str(source).startswith("hf://"):
        return "huggingface"
    if str(source).startswith("s3://"):
        return s3_source_kind(str(source))  # a request: what is stored there
    path = Path(source).expanduser()
    if (path / "index.json").is_file():
        return "litdata"
    if not path.exists():
        raise FileNotFoundError(f"dataset source {str(path)!r} does not exist")
    if is_slip_cache(path):
        return "cache"
    if path.is_file() and path.suffix.lower() in FFCV_SUFFIXES:
        return "ffcv"
    if path.is_dir() and hf_folder_files(path):
        return "huggingface"
    if path.is_dir():
        return "imagefolder"
    if path.suffix.lower() in FILE_LIST_SUFFIXES:
        return "file_list"
    raise ValueError(
        f"cannot read {str(path)!r}: expected a slip cache folder, an image folder, "
        f"a file list ({'/'.join(FILE_LIST_SUFFIXES)}), a LitData folder, a Hugging Face "
        f"dataset folder or a .beton/.ffcv file"
    )


def open_store(
    source: Any,
    kind: str,
    cache_root: Path,
    *,
    on_error: str,
    progress: bool | None,
    verify_source: str,
    field_names: FieldNames | None,
    split: str | None,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    exif_transpose: bool = False,
    storage: dict[str, Any] | None = None,
) -> SlipCache | FfcvFile:
    """Open ``source`` as ``kind`` (see the module table), building its cache if needed.

    ``remote``: share built caches on S3 (:func:`slipstream.remote_cache.obtain_cache`);
    ``build_threads``: reader threads of a build; ``exif_transpose``: image folders and
    file lists only (a cache of its own); ``storage``: ``image_storage="jpeg"`` and its
    ``jpeg_quality`` for a build that re-encodes non-JPEG images (part of the cache name).
    """
    if exif_transpose and kind not in ("imagefolder", "file_list"):
        raise ValueError(
            f"exif_transpose=True applies to image folders and file lists (built here from "
            f"their files), not to a {kind} source"
        )
    build = {
        "on_error": on_error,
        "progress": progress,
        "remote": remote,
        "build_threads": build_threads,
        **(storage or {}),
    }
    if storage and kind in ("cache", "ffcv"):
        raise ValueError(
            f"image_storage={storage['image_storage']!r} applies to a cache being built; a "
            f"{kind} source is read as it is stored"
        )
    if kind == "huggingface":
        return open_huggingface(source, cache_root, split=split, field_names=field_names, **build)
    if kind == "litdata":
        return open_litdata(source, cache_root, field_names=field_names, **build)
    if str(source).startswith("s3://"):  # a .beton or a folder: downloaded once per node
        source = fetch_s3_source(str(source), kind, cache_root, progress=progress)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset source {str(path)!r} does not exist")
    if kind == "cache":
        return SlipCache.open(path)
    if kind == "ffcv":
        return open_ffcv(path, cache_root, **build)
    if exif_transpose:
        build["exif_transpose"] = True
    return open_file_samples(path, kind, cache_root, verify_source=verify_source, **build)


def open_litdata(
    source: Any,
    cache_root: Path,
    *,
    field_names: FieldNames | None,
    on_error: str,
    progress: bool | None,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    **storage: Any,
) -> SlipCache:
    """A LitData folder or ``s3://`` dataset: its cache, built once (downloaded first)."""
    from slipstream.readers.litdata_source import litdata_cache  # LitData / S3

    extra = {}
    if field_names is not None:
        extra["rename"] = litdata_renames(field_names)
    built = litdata_cache(
        source, cache_root, on_error=on_error, progress=progress, remote=remote,
        build_threads=build_threads, **extra, **storage,
    )  # fmt: skip
    return SlipCache.open(built)


def build_storage(image_storage: str, jpeg_quality: int) -> dict[str, Any]:
    """The build options of a storage mode: none for raw pixels, else JPEG and its quality."""
    check_choice("image_storage", image_storage, IMAGE_STORAGE)
    jpeg_quality = check_int("jpeg_quality", jpeg_quality, minimum=1)
    if jpeg_quality > 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    if image_storage == "raw":
        return {}
    return {"image_storage": "jpeg", "jpeg_quality": jpeg_quality}


def litdata_renames(field_names: FieldNames) -> dict[str, str]:
    """``field_names`` as LitData renames: a sequence names tuple leaves ``"0"``, ``"1"``..."""
    if isinstance(field_names, Mapping):
        return {str(k): str(v) for k, v in field_names.items()}
    return {str(i): str(name) for i, name in enumerate(field_names)}


def open_ffcv(
    path: Path,
    cache_root: Path,
    *,
    on_error: str,
    progress: bool | None,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    **storage: Any,
) -> SlipCache | FfcvFile:
    """An FFCV file, read in place: JPEG and raw RGB items alike (no conversion).

    The build options are accepted for a uniform call and not used: nothing is built.
    """
    return FfcvFile(path)


def open_file_samples(
    path: Path,
    kind: str,
    cache_root: Path,
    *,
    verify_source: str,
    on_error: str,
    progress: bool | None,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    exif_transpose: bool = False,
    **storage: Any,
) -> SlipCache:
    """An image folder or a file list: its cache, found through the source pointer.

    ``exif_transpose=True`` builds (and points to) a cache of its own, named ``...-exif``.

    ``verify_source``: ``"fast"`` trusts the pointer when every watched folder kept its
    modification time (O(folders)); ``"full"`` recomputes the fingerprint (one stat per
    file); ``"none"`` trusts any pointer. Without a usable pointer the full fingerprint
    names the cache, which is built if missing, and the pointer is (re)written.
    """
    reader_kind = "ImageFolderReader" if kind == "imagefolder" else "FileListReader"
    resolved = str(path.resolve())
    options: dict[str, Any] = {"format_version": NAME_VERSION, **storage}
    if exif_transpose:
        options["exif_transpose"] = True
    pointer = pointer_path(cache_root, reader_kind, resolved, options)
    if verify_source != "full":
        record = read_pointer(pointer, kind=reader_kind, source=resolved, options=options)
        if record is not None and (verify_source == "none" or pointer_is_current(record)):
            cache = open_pointed_cache(cache_root / record["cache"], record["fingerprint"])
            if cache is not None:
                return cache
    taken = now()
    if kind == "imagefolder":
        watched = watch_tree(path)  # before the scan: a change during the build is seen
        reader: ImageFolderReader | FileListReader = ImageFolderReader(path)
        stem = path.resolve().name
    else:
        watched = watch_paths([str(path)])
        reader = FileListReader(path)
        watched.update(watch_paths(sorted({os.path.dirname(p) for p, _ in reader.samples})))
        stem = path.stem
    fingerprint = reader.fingerprint()
    name = f"{stem}-{fingerprint[:16]}-v{NAME_VERSION}{storage_suffix(**storage)}"
    name += "-exif" if exif_transpose else ""
    upright = {"exif_transpose": True} if exif_transpose else {}
    built = build_or_fetch(
        reader, cache_root / name, on_error=on_error, progress=progress, remote=remote,
        build_threads=build_threads, **upright, **storage,
    )  # fmt: skip
    write_pointer(
        pointer,
        kind=reader_kind,
        source=resolved,
        options=options,
        cache=name,
        fingerprint=fingerprint,
        file_count=len(reader),
        watched=watched,
        taken_unix=taken,
    )
    return SlipCache.open(built)


def open_pointed_cache(folder: Path, fingerprint: str) -> SlipCache | None:
    """The cache a pointer names, if it opens and was built from that fingerprint."""
    if not is_slip_cache(folder):
        return None
    try:
        cache = SlipCache.open(folder)
    except ValueError:
        return None
    if cache.manifest.get("source", {}).get("fingerprint") != fingerprint:
        return None
    return cache


def open_huggingface(
    source: Any,
    cache_root: Path,
    *,
    split: str | None,
    field_names: FieldNames | None,
    on_error: str,
    progress: bool | None,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    **storage: Any,
) -> SlipCache:
    """A Hugging Face dataset (object, local folder or hub name): its cache, built once.

    A local folder's cache is named from its files' names, sizes and times (no dataset
    loaded when the cache exists); an in-memory or hub dataset's from its ``_fingerprint``.
    """
    from slipstream.readers.huggingface import (
        HuggingFaceReader,
        folder_fingerprint,
        load_hf_dataset,
    )

    names = None if field_names is None else json.loads(json.dumps(field_names))
    dataset = None
    local = not is_hf_dataset(source) and Path(source).expanduser().is_dir()
    if local:
        stem, base = Path(source).expanduser().resolve().name, folder_fingerprint(source, split)
    else:
        dataset = load_hf_dataset(source, split, cache_dir=cache_root / "hf")
        stem, base = dataset.info.dataset_name or "dataset", dataset._fingerprint
        if not is_hf_dataset(source):
            stem = str(source).rstrip("/").rsplit("/", 1)[-1]
    key = hashlib.sha256(json.dumps([base, split, names]).encode()).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip(".") or "dataset"
    dest = cache_root / f"hf-{stem}-{key[:16]}-v{NAME_VERSION}{storage_suffix(**storage)}"
    if not is_slip_cache(dest):
        if dataset is None:
            dataset = load_hf_dataset(source, split, cache_dir=cache_root / "hf")
        reader = HuggingFaceReader(dataset, field_names=field_names, fingerprint=base, name=stem)
        build_or_fetch(
            reader, dest, on_error=on_error, progress=progress, remote=remote,
            build_threads=build_threads, **storage,
        )  # fmt: skip
    return SlipCache.open(dest)


def decode_image(data: bytes, *, to_pil: bool = False, pixels: np.ndarray | None = None) -> Any:
    """Decode one stored image to RGB: a ``uint8 [3, H, W]`` tensor, or a PIL image.

    JPEGs are decoded with the native kernel (libjpeg-turbo, full image); other formats
    with Pillow; a raw RGB item (``pixels``) is used as it is.

    Args:
        data: Encoded image bytes.
        to_pil: Return a ``PIL.Image.Image`` (mode RGB) instead of a tensor.
        pixels: The item's ``[H, W, 3]`` pixels when it is a raw RGB item (``data`` is
            then ignored).
    """
    import torch
    from PIL import Image

    from slipstream.native.decode import decode_full

    if pixels is not None:
        hwc = pixels
    elif data[:2] == b"\xff\xd8":
        hwc = decode_full(data)
    else:
        with Image.open(io.BytesIO(data)) as image:
            hwc = np.asarray(image.convert("RGB"))
    if to_pil:
        return Image.fromarray(np.ascontiguousarray(hwc), mode="RGB")
    hwc = np.require(hwc, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])  # a mapped raw item: copied
    return torch.from_numpy(hwc).permute(2, 0, 1).contiguous()


def hf_description(dataset: Any) -> str:
    """A one-line name of an in-memory Hugging Face dataset (for ``source`` and reprs)."""
    fingerprint = getattr(dataset, "_fingerprint", None)
    detail = f"fingerprint={fingerprint}" if fingerprint else f"splits={list(dataset)}"
    return f"datasets.{type(dataset).__name__}({detail})"


def stored_class_names(store: Any, field: str | None) -> list[str] | None:
    """Class names a store's manifest holds for ``field`` (None for FFCV files, old caches)."""
    if field is None or not hasattr(store, "class_names"):
        return None
    return store.class_names(field)


def check_field_names(store: Any, field_names: FieldNames | None) -> None:
    """Every name of ``field_names`` is a field of the opened store.

    Raises:
        KeyError: A name is not a field (e.g. more names than tuple positions).
    """
    if field_names is None:
        return
    wanted = field_names.values() if isinstance(field_names, Mapping) else field_names
    missing = [name for name in wanted if name not in store.field_types]
    if missing:
        raise KeyError(
            f"field_names {missing} are not fields of {store.path}; fields: "
            f"{list(store.field_types)}"
        )


class SlipstreamDataset:
    """A dataset the loader can stream: a slip cache, built once from the source if needed.

    The source may be a slip cache folder, an image folder (class sub-folders, as
    torchvision's ``ImageFolder``), a file list (``.txt``/``.csv``/``.tsv`` of ``path label``
    lines, :mod:`slipstream.readers.file_list`), a LitData dataset (a folder with
    ``index.json`` written by ``litdata.optimize``, or an ``s3://bucket/prefix`` URL,
    downloaded first, :mod:`slipstream.readers.litdata_source`), an FFCV ``.beton`` /
    ``.ffcv`` file (read in place, JPEG and raw-pixel images alike; on
    ``s3://`` too, like image folders and slip caches there, downloaded once per node by
    :func:`~slipstream.readers.s3_download.fetch_s3_source`), or a
    Hugging Face ``datasets`` dataset (an in-memory ``datasets.Dataset``, a
    ``save_to_disk`` folder, a folder of Parquet/Arrow files, or a hub name through
    :meth:`from_huggingface`; extra ``slipstream[hf]``). Anything but a cache or a
    ``.beton`` is converted once into a cache under ``cache_dir`` whose name carries the
    source fingerprint and the cache format version, so a changed source never reuses a
    stale cache.

    The original slipstream's call forms work: ``SlipstreamDataset(input_dir=...)``,
    ``remote_dir=`` (with ``cache_dir=``), ``local_dir=``, ``decode_images=``, ``to_pil=``.

    Class names (``classes``, ``class_to_idx``, ``num_classes``) come from the cache manifest
    where the source had them: image folder names, file lists with class-name labels,
    Hugging Face ``ClassLabel`` names. Where it had none (FFCV, LitData, integer file lists),
    ``classes`` is the sorted distinct values of the ``"label"`` field, ``class_to_idx``
    maps each to itself and ``num_classes`` is the largest label + 1 (a head size that
    fits every label). Without a label field, all three are None.

    Args:
        source: The dataset (see above). Alternatively pass it as ``input_dir``,
            ``remote_dir`` or ``local_dir``.
        input_dir: The original slipstream's name for the source (any kind); overrides
            ``remote_dir`` / ``local_dir``.
        remote_dir: The original's name for a remote source (``s3://bucket/prefix``).
        local_dir: The original's name for a local source; not with ``remote_dir``.
        cache_dir: Where caches are built and remote data downloaded (default
            :func:`slipstream.paths.default_cache_root`, ``$SLIPSTREAM_CACHE_DIR``).
        decode_images: ``ds[i]`` returns image fields decoded (RGB) instead of encoded bytes.
        to_pil: With ``decode_images``, return ``PIL.Image`` images (the original's default);
            ``False`` gives ``uint8 [3, H, W]`` tensors.
        field_names: Names for the fields of sources whose samples are tuples or columns:
            a sequence (LitData tuple positions ``0, 1, ...``; Hugging Face columns in
            order) or a mapping ``{source name: field name}``.
        split: The split of a Hugging Face ``DatasetDict`` (needed where it has several).
        source_kind: Read the source as one of :data:`SOURCE_KINDS` instead of guessing.
        on_error: ``"raise"`` (default) or ``"skip"`` unreadable images while building.
        progress: Show a progress bar while building (default: when stderr is a terminal
            and ``$SLIPSTREAM_PROGRESS`` is not ``0``; see :mod:`slipstream.logs`).
        verify_source: How an image folder or file list is checked against its existing
            cache: ``"fast"`` (default; one stat per folder: files added, removed or
            renamed are seen, an in-place edit of a file's content is not), ``"full"``
            (the fingerprint: one stat per file, sees content edits through size and
            modification time), ``"none"`` (trust the cache found for this path).
        cache_root: Renamed to ``cache_dir`` (still accepted, with a FutureWarning).
        remote_cache: ``s3://bucket/prefix`` where caches are shared by content name
            (:mod:`slipstream.remote_cache`): a cache found there is downloaded instead of
            built; otherwise global rank 0 builds and uploads it while the other ranks
            wait for it and download it (one download per node). A cache given by path
            and a JPEG ``.beton`` read in place are not shared.
        remote_cache_endpoint_url: S3-compatible endpoint for ``remote_cache`` (MinIO,
            Wasabi, ...); default ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``.
        build_threads: Reader threads of a cache build (default: a quarter of the
            usable cores, at most 4; 0 reads in the calling thread).
        exif_transpose: Image folders and file lists: store images whose EXIF Orientation
            tag is not 1 upright (Pillow's ``ImageOps.exif_transpose``; such JPEGs become
            raw RGB items), in a cache of its own (name ending ``-exif``). Default False:
            EXIF orientation is ignored, as torchvision's ``ImageFolder`` ignores it.
        image_storage: How a build stores images that are not JPEGs (PNG, WebP, FFCV raw
            items, PIL images): ``"raw"`` (default: their exact RGB pixels, decoded with
            no entropy decode) or ``"jpeg"`` (re-encoded at ``jpeg_quality``: a smaller,
            lossy cache, named ``...-jpeg<quality>``). JPEGs are always kept as they are.
        jpeg_quality: JPEG quality of ``image_storage="jpeg"``, in ``[1, 100]``.

    Examples:
        >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
        >>> ds[0]["label"], ds.classes[:2]  # doctest: +SKIP
        (0, ['n01440764', 'n01443537'])
        >>> ds = SlipstreamDataset(
        ...     input_dir="s3://bucket/dataset/", cache_dir="/local/cache"
        ... )  # doctest: +SKIP
    """

    def __init__(
        self,
        source: str | os.PathLike | Any | None = None,
        *,
        input_dir: str | os.PathLike | None = None,
        remote_dir: str | None = None,
        local_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        decode_images: bool = False,
        to_pil: bool = True,
        field_names: FieldNames | None = None,
        split: str | None = None,
        source_kind: str | None = None,
        on_error: str = "raise",
        progress: bool | None = None,
        verify_source: str = "fast",
        cache_root: str | os.PathLike | None = None,
        remote_cache: str | None = None,
        remote_cache_endpoint_url: str | None = None,
        build_threads: int | None = None,
        exif_transpose: bool = False,
        image_storage: str = "raw",
        jpeg_quality: int = 95,
    ) -> None:
        """Open the source, building its cache first where it is not one."""
        self.remote_cache = None if remote_cache is None else RemoteCache(
            remote_cache, endpoint_url=remote_cache_endpoint_url, progress=progress
        )  # fmt: skip
        cache_dir = renamed_argument("cache_root", "cache_dir", cache_root, cache_dir)
        source = resolve_source(source, input_dir, remote_dir, local_dir)
        check_choice("on_error", on_error, ("raise", "skip"))
        check_choice("verify_source", verify_source, VERIFY_CHOICES)
        progress = check_bool("progress", progress) if progress is not None else None
        self.decode_images = check_bool("decode_images", decode_images)
        self.to_pil = check_bool("to_pil", to_pil)
        if isinstance(field_names, str):
            raise TypeError("field_names must be a sequence of names or a mapping, not a str")
        if source_kind is None:
            source_kind = guess_source_kind(source)
        check_choice("source_kind", source_kind, SOURCE_KINDS)
        self.source = hf_description(source) if is_hf_dataset(source) else str(source)
        self.source_kind = source_kind
        self.field_names = field_names
        cache_root_path = Path(cache_dir) if cache_dir is not None else default_cache_root()
        self.cache = open_store(
            source,
            source_kind,
            cache_root_path,
            on_error=on_error,
            progress=progress,
            verify_source=verify_source,
            field_names=field_names,
            split=split,
            remote=self.remote_cache,
            build_threads=check_int("build_threads", build_threads, minimum=0, optional=True),
            exif_transpose=check_bool("exif_transpose", exif_transpose),
            storage=build_storage(image_storage, jpeg_quality),
        )
        check_field_names(self.cache, field_names)

    def sync_remote_cache(self) -> tuple[int, int]:
        """Exchange files added to the cache since it was shared (indexes, YUV420 data).

        Files other nodes uploaded are downloaded; local files the remote cache lacks are
        uploaded, then its marker is rewritten (:func:`slipstream.remote_cache.sync_remote`:
        one process per node at a time; a cache never shared is uploaded by rank 0).

        Returns:
            ``(downloaded, uploaded)`` file counts; ``(0, 0)`` without ``remote_cache``
            or for a source read in place (a JPEG ``.beton``, a cache given by path).
        """
        if self.remote_cache is None or not isinstance(self.cache, SlipCache):
            return (0, 0)
        return sync_remote(self.remote_cache, self.cache.path)

    @classmethod
    def from_imagefolder(cls, path: str | os.PathLike, **kwargs: Any) -> SlipstreamDataset:
        """An image folder (class sub-folders), as torchvision's ``ImageFolder`` reads it.

        Args:
            path: The root folder.
            **kwargs: Other :class:`SlipstreamDataset` arguments (``cache_dir``, ...).
        """
        return cls(path, source_kind="imagefolder", **kwargs)

    @classmethod
    def from_litdata(cls, path_or_url: str | os.PathLike, **kwargs: Any) -> SlipstreamDataset:
        """A LitData dataset: a folder with ``index.json`` or an ``s3://`` URL.

        Args:
            path_or_url: The folder or URL.
            **kwargs: Other :class:`SlipstreamDataset` arguments (``field_names``, ...).
        """
        return cls(path_or_url, source_kind="litdata", **kwargs)

    @classmethod
    def from_ffcv(cls, path: str | os.PathLike, **kwargs: Any) -> SlipstreamDataset:
        """An FFCV ``.beton`` / ``.ffcv`` file.

        Args:
            path: The file.
            **kwargs: Other :class:`SlipstreamDataset` arguments.
        """
        return cls(path, source_kind="ffcv", **kwargs)

    @classmethod
    def from_huggingface(
        cls, dataset_or_path_or_name: Any, split: str | None = None, **kwargs: Any
    ) -> SlipstreamDataset:
        """A Hugging Face dataset: a ``datasets.Dataset``, a local folder or a hub name.

        Args:
            dataset_or_path_or_name: A ``datasets.Dataset`` / ``DatasetDict``, a
                ``save_to_disk`` or Parquet/Arrow folder, or a hub name (downloaded by
                ``datasets``; only here, never guessed from a plain string).
            split: The split to read.
            **kwargs: Other :class:`SlipstreamDataset` arguments (``field_names``, ...).
        """
        return cls(dataset_or_path_or_name, source_kind="huggingface", split=split, **kwargs)

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

        Read from the cache's stored ``<field>_index.npy`` where
        :func:`~slipstream.write_index` wrote one (checked against the field), else built
        by sorting the field.

        Args:
            field: A numeric field (one value per sample) or a string field.

        Raises:
            FieldIndexError: The stored index file is garbled or stale (names the file).
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
        """All fields of one sample: images as encoded bytes, or decoded (``decode_images``)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        sample = self.cache.sample(index % len(self))
        if self.decode_images:
            for name in self.image_fields:
                pixels = raw_pixels(self.cache, name, index % len(self))  # raw RGB item
                sample[name] = decode_image(sample[name], to_pil=self.to_pil, pixels=pixels)
        return sample

    @property
    def image_fields(self) -> list[str]:
        """Names of the image fields (type ``"ImageBytes"``)."""
        return [name for name, kind in self.field_types.items() if kind == IMAGE_TYPE]

    @property
    def label_field(self) -> str | None:
        """The field ``classes`` describes.

        ``"label"``, else the one field with stored class names, else None.
        """
        if "label" in self.field_types:
            return "label"
        named = [f for f in self.field_types if stored_class_names(self.cache, f) is not None]
        return named[0] if len(named) == 1 else None

    @functools.cached_property
    def classes(self) -> list[Any] | None:
        """Class names (label ``i`` is ``classes[i]``), from the cache manifest.

        Where the source stored no names: the sorted distinct label values (ints). None
        without a label field.
        """
        field = self.label_field
        if field is None:
            return None
        names = stored_class_names(self.cache, field)
        if names is not None:
            return names
        return [v.item() for v in np.unique(np.asarray(self.cache.numbers(field)))]

    @property
    def class_to_idx(self) -> dict[Any, int] | None:
        """Class name -> label (each label value -> itself where no names are stored)."""
        classes = self.classes
        if classes is None:
            return None
        if stored_class_names(self.cache, self.label_field) is None:
            return {value: int(value) for value in classes}
        return {name: i for i, name in enumerate(classes)}

    @property
    def num_classes(self) -> int | None:
        """Number of classes: ``len(classes)`` with stored names, else the largest label + 1."""
        classes = self.classes
        if classes is None:
            return None
        if stored_class_names(self.cache, self.label_field) is not None:
            return len(classes)
        return int(max(classes)) + 1 if classes else 0

    def __repr__(self) -> str:
        """Source, cache (or the FFCV file read in place), samples and fields."""
        kind = "slip cache" if isinstance(self.cache, SlipCache) else "read in place"
        decode = f", decode_images=True, to_pil={self.to_pil}" if self.decode_images else ""
        return (
            f"SlipstreamDataset(source={self.source!r}, cache={str(self.cache_path)!r} "
            f"({kind}), samples={len(self)}, fields={self.field_types}{decode})"
        )
