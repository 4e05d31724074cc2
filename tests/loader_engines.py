"""The decode engines the loader tests run on, and helpers to build and compare loaders.

``ENGINES`` maps an engine name to the :class:`SlipstreamLoader` keyword arguments that
choose it. :func:`engine_params` turns names into pytest parameters: DALI engines carry the
``dali`` mark and skip cleanly where ``nvidia.dali`` is not importable.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch

from slipstream import SlipstreamLoader
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline

ENGINES: dict[str, dict[str, str]] = {
    "native-jpeg": {"backend": "native", "image_format": "jpeg"},
    "native-yuv420": {"backend": "native", "image_format": "yuv420"},
    "torch-yuv420": {"backend": "native", "decode_device": "torch", "image_format": "yuv420"},
    "dali-cpu-jpeg": {"backend": "dali", "decode_device": "cpu", "image_format": "jpeg"},
    "dali-cpu-yuv420": {"backend": "dali", "decode_device": "cpu", "image_format": "yuv420"},
}
# Several outputs of one field: two sizes, two views each (DALI: one [K, 4] call per size).
MULTI_VIEW = {
    f"{kind}_{k}": ImagePipeline(
        DecodeRandomResizedCrop(size, scale=scale),
        flip_probability=0.5,
        dtype="uint8",
        field="image",
        view=view,
    )
    for view, (kind, k, size, scale) in enumerate(
        [
            ("global", 0, 64, (0.3, 1.0)),
            ("global", 1, 64, (0.3, 1.0)),
            ("local", 0, 32, (0.05, 0.3)),
            ("local", 1, 32, (0.05, 0.3)),
        ]
    )
}
"""Four outputs of one image field: two sizes, two views each."""

NATIVE_OF_FORMAT = {"jpeg": "native-jpeg", "yuv420": "native-yuv420"}
"""The reference engine of each image format (every CPU engine equals it bit for bit)."""


def has_dali() -> bool:
    """Whether ``nvidia.dali`` is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        return False


def engine_params(names: list[str] | None = None) -> list[Any]:
    """``pytest.param`` per engine name (all by default); DALI ones marked and skippable."""
    params = []
    for name in names if names is not None else list(ENGINES):
        marks = []
        if ENGINES[name]["backend"] == "dali":
            marks = [
                pytest.mark.dali,
                pytest.mark.skipif(not has_dali(), reason="nvidia-dali is not installed"),
            ]
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def make_loader(
    dataset: Any, engine: str, batch_size: int, pipelines: dict, **kwargs: Any
) -> SlipstreamLoader:
    """A loader on ``engine`` (CPU output, 2 decode threads unless ``kwargs`` say otherwise)."""
    options = {"device": "cpu", "num_workers": 2, **ENGINES[engine]}
    options.update(kwargs)
    return SlipstreamLoader(dataset, batch_size, pipelines, **options)


def batches(loader: SlipstreamLoader) -> list[dict[str, Any]]:
    """One epoch of batches, tensors cloned (CPU outputs are views of reused buffers)."""
    return [
        {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for batch in loader
    ]


def assert_same(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> None:
    """The same batches: same keys, dtypes, shapes and values, bit for bit."""
    assert len(expected) == len(got)
    for a, b in zip(expected, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
                assert torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key


def by_sample(epoch: list[dict[str, Any]], output: str = "image") -> dict[int, torch.Tensor]:
    """Sample id -> its ``output`` pixels, over batches; each id at most once."""
    seen: dict[int, torch.Tensor] = {}
    for batch in epoch:
        for image, index in zip(batch[output], batch["index"], strict=True):
            assert int(index) not in seen
            seen[int(index)] = image
    return seen
