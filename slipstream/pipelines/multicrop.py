"""Multi-crop decode stages: K named crops of one image from one decode.

In the original slipstream these stages return a dict of named crops; here each named
crop is a loader output (``batch[name]``) reading the same image field with its own
``view``, and the decoders already decode each image once for all its views. Use them as
the first stage of a list (``pipelines={"image": [DecodeMultiRandomResizedCrop({...}),
MultiCropPipeline({...})]}``, expanded by :func:`slipstream.pipelines.compose.to_pipelines`)
or call :meth:`DecodeMultiRandomResizedCrop.pipelines` for the ``ImagePipeline`` dict.

Seeds map as far as they can: a crop's ``seed`` is the seed of its draws (default: the
loader's), and crops sharing a ``seed`` are "yoked" as in the original (they share the
first such crop's center; :class:`~slipstream.pipelines.spec.YokedCrop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slipstream.pipelines.spec import (
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    ImagePipeline,
    YokedCrop,
)

__all__ = [
    "DecodeMultiRandomResizeShortCropLong",
    "DecodeMultiRandomResizedCrop",
    "MultiCropPipeline",
    "NamedCopies",
]


def _check_crops(crops: Mapping[str, Mapping[str, Any]], allowed: set[str]) -> None:
    if not crops:
        raise ValueError("crops is empty: give at least one named crop")
    for name, params in crops.items():
        if "size" not in params:
            raise ValueError(f"crop {name!r} must specify 'size'")
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(
                f"crop {name!r}: unknown keys {sorted(unknown)}; known {sorted(allowed)}"
            )


class _MultiCrop:
    """Shared part: expand named crops into one ``ImagePipeline`` per name."""

    crops: Mapping[str, Mapping[str, Any]]

    def crop_specs(self) -> dict[str, Any]:
        """Name -> the crop spec of that output (before yoking)."""
        raise NotImplementedError

    def pipelines(
        self, field: str = "image", first_view: int = 0, **options: Any
    ) -> dict[str, ImagePipeline]:
        """One :class:`ImagePipeline` per named crop, reading ``field``, views in order.

        Args:
            field: The image field every crop reads.
            first_view: View index of the first crop (the others follow).
            **options: Other :class:`ImagePipeline` fields shared by every output
                (``flip_probability``, ``normalize``, ``dtype``, ``device``).

        Returns:
            ``{name: ImagePipeline}`` in the order of ``crops``; crops sharing a ``seed``
            are centred on the first of them.
        """
        out: dict[str, ImagePipeline] = {}
        anchors: dict[int, tuple[Any, int]] = {}
        for k, (name, spec) in enumerate(self.crop_specs().items()):
            view = first_view + k
            seed = self.crops[name].get("seed")
            if seed is not None and seed in anchors and isinstance(spec, DecodeRandomResizedCrop):
                anchor, anchor_view = anchors[seed]
                spec = YokedCrop(
                    spec.size, anchor, anchor_view=anchor_view, scale=spec.scale, ratio=spec.ratio
                )
            elif seed is not None:
                anchors.setdefault(seed, (spec, view))
            out[name] = ImagePipeline(spec, field=field, view=view, **options)
        return out


@dataclass(frozen=True)
class DecodeMultiRandomResizedCrop(_MultiCrop):
    """Named random-resized crops of one image, each with its own size, scale and ratio.

    Args:
        crops: Name -> ``dict(size=..., scale=(lo, hi), ratio=(lo, hi), seed=...)``;
            ``size`` is required, ``scale`` defaults to ``(0.08, 1.0)``, ``ratio`` to the
            ``ratio`` argument, ``seed`` to the loader's seed (crops sharing a seed are
            yoked: centred on the first of them).
        ratio: Default aspect ratio range of the crops.
        crop_mode: ``"standard"`` (torchvision's distribution) or ``"direct"`` (the
            loop-free draw).

    Example:
        >>> multi = DecodeMultiRandomResizedCrop({
        ...     "global_0": dict(size=224, scale=(0.4, 1.0)),
        ...     "local_0": dict(size=96, scale=(0.05, 0.4)),
        ... })
        >>> sorted(multi.pipelines())
        ['global_0', 'local_0']
    """

    crops: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    crop_mode: str = "standard"

    def __post_init__(self) -> None:
        """Check the crops and the mode."""
        if self.crop_mode not in ("standard", "direct"):
            raise ValueError(f"crop_mode must be 'standard' or 'direct', got {self.crop_mode!r}")
        _check_crops(self.crops, {"size", "scale", "ratio", "seed"})

    def crop_specs(self) -> dict[str, DecodeRandomResizedCrop]:
        """Name -> its :class:`DecodeRandomResizedCrop`."""
        method = "direct" if self.crop_mode == "direct" else "torchvision"
        return {
            name: DecodeRandomResizedCrop(
                p["size"],
                scale=tuple(p.get("scale", (0.08, 1.0))),
                ratio=tuple(p.get("ratio", self.ratio)),
                method=method,
                seed=p.get("seed"),
            )
            for name, p in self.crops.items()
        }


@dataclass(frozen=True)
class DecodeMultiRandomResizeShortCropLong(_MultiCrop):
    """Named resize-short-crop-long views of one image (one fixed int size each).

    Args:
        crops: Name -> ``dict(size=..., x_range=..., y_range=..., seed=...)`` (see
            :class:`~slipstream.pipelines.spec.DecodeRandomResizeShortCropLong`).
    """

    crops: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the crops."""
        _check_crops(self.crops, {"size", "x_range", "y_range", "seed"})

    def crop_specs(self) -> dict[str, DecodeRandomResizeShortCropLong]:
        """Name -> its :class:`DecodeRandomResizeShortCropLong`."""
        return {name: DecodeRandomResizeShortCropLong(**dict(p)) for name, p in self.crops.items()}


@dataclass(frozen=True)
class MultiCropPipeline:
    """Per-output batch stages after a multi-crop stage: name -> list of stages.

    The stages are what a list pipeline may hold after its first stage (``Normalize`` or
    :mod:`slipstream.augment` transforms); names without an entry keep the raw crop.

    Args:
        pipelines: Output name -> its stages.
    """

    pipelines: Mapping[str, Sequence[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class NamedCopies:
    """Several outputs of one deterministic crop (``DecodeCenterCrop``, ``DecodeResizeCrop``).

    Each copy is its own output with its own ``view``, so batch augmentations after it
    draw independently while the crop is the same. (After a random crop, copies would get
    different windows: use a multi-crop stage there.)

    Args:
        names: The output names.
    """

    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Check the names."""
        object.__setattr__(self, "names", tuple(self.names))
        if not self.names:
            raise ValueError("names must contain at least one entry")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate names: {list(self.names)}")
