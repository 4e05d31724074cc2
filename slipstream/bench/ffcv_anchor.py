"""FFCV 1.0.2 anchor of :mod:`slipstream.bench` (only used when ``import ffcv`` works).

FFCV is not a dependency of slipstream: install it separately (it needs
libturbojpeg and OpenCV found by pkg-config at build time), e.g.
``apt-get install libturbojpeg0-dev libopencv-dev pkg-config`` then
``pip install --no-deps ffcv==1.0.2`` plus its pure-Python imports
(terminaltables, pytorch_pfn_extras, fastargs, assertpy, opencv-python-headless).

Two ``.beton`` files are written once from the image folder and cached under
``<work>/ffcv/``, keyed by the folder path and sample count:

- ``jpg95``: ``RGBImageField(write_mode="jpg", max_resolution=None, jpeg_quality=95)``.
  FFCV has no "keep the original JPEG bytes" mode: it decodes each image (PIL) and
  re-encodes it with OpenCV at quality 95, sizes unchanged.
- ``bytes``: ``BytesField`` holding each file's bytes unchanged (the raw-bytes run).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("RRC224+flip", "center224", "raw bytes")


def _rgb(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _file_bytes(path: str) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint8)


def write_beton(folder: Path, work: Path, kind: str, workers: int = 2) -> Path:
    """Write (once) and return the cached ``.beton`` for ``kind`` "jpg95" or "bytes"."""
    import torchvision
    from ffcv.fields import BytesField, IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    dataset = torchvision.datasets.ImageFolder(
        str(folder), loader=_rgb if kind == "jpg95" else _file_bytes
    )
    key = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:12]
    path = work / "ffcv" / f"{key}-{len(dataset)}-{kind}.beton"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jpg95":
        field = RGBImageField(write_mode="jpg", max_resolution=None, jpeg_quality=95)
    else:
        field = BytesField()
    partial = path.with_suffix(f".partial-{os.getpid()}")
    writer = DatasetWriter(str(partial), {"image": field, "label": IntField()}, num_workers=workers)
    logging.getLogger(__name__).info(
        f"writing FFCV {kind} .beton for {len(dataset)} samples -> {path}"
    )
    writer.from_indexed_dataset(dataset)
    os.replace(partial, path)
    return path


def make_loader(folder: Path, work: Path, kind: str, batch: int, workers: int) -> Any:
    """An FFCV CPU loader for one of ``KINDS``: uint8 NCHW images (or bytes) + labels."""
    from ffcv.fields.decoders import (
        BytesDecoder,
        CenterCropRGBImageDecoder,
        IntDecoder,
        RandomResizedCropRGBImageDecoder,
    )
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import RandomHorizontalFlip, ToTensor, ToTorchImage

    if kind == "raw bytes":
        image = [BytesDecoder()]
        beton = write_beton(folder, work, "bytes", workers)
    else:
        if kind == "RRC224+flip":
            image = [RandomResizedCropRGBImageDecoder((224, 224)), RandomHorizontalFlip()]
        else:
            image = [CenterCropRGBImageDecoder((224, 224), ratio=224 / 256)]
        image += [ToTensor(), ToTorchImage()]
        beton = write_beton(folder, work, "jpg95", workers)
    return Loader(
        str(beton),
        batch_size=batch,
        num_workers=workers,
        os_cache=True,
        order=OrderOption.RANDOM,
        seed=0,
        drop_last=False,
        pipelines={"image": image, "label": [IntDecoder(), ToTensor()]},
    )
