"""One image output's pipeline from the forms users write: a spec, a crop, or a list of stages.

The loader accepts, per output, what the original slipstream's users write::

    ImagePipeline(DecodeRandomResizedCrop(224), flip_probability=0.5)  # the spec itself
    DecodeRandomResizedCrop(224)                                 # a lone crop: uint8 output
    [DecodeRandomResizedCrop(224), Normalize()]                  # decode-crop stage first,
    [DecodeCenterCrop(224), RandomGrayscale(), Normalize()]      # then batch transforms

:func:`to_image_pipeline` turns each into an :class:`ImagePipeline`. The first stage of a
list decodes and crops (a crop spec or an :class:`ImagePipeline`); the rest run on the
decoded batch. A list whose later stages are only normalizations (``Normalize`` of
:mod:`slipstream.pipelines` or of :mod:`slipstream.augment`) keeps the fused float output;
any other batch transform (:class:`slipstream.augment.BatchTransform`) makes the rest of the
list the pipeline's ``augment`` chain, after a :class:`~slipstream.augment.ToFloatImage`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slipstream.augment import BatchTransform, Compose, ToFloatImage
from slipstream.augment import Normalize as AugmentNormalize
from slipstream.pipelines.full_resolution import DecodeOnly, DecodeYUVFullRes, DecodeYUVPlanes
from slipstream.pipelines.multicrop import MultiCropPipeline, NamedCopies, _MultiCrop
from slipstream.pipelines.spec import (
    DecodeCenterCrop,
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    DecodeResizeCrop,
    ImagePipeline,
    Normalize,
    YokedCrop,
)

__all__ = ["CROP_SPECS", "to_image_pipeline", "to_pipelines"]

CROP_SPECS = (
    DecodeRandomResizedCrop,
    DecodeCenterCrop,
    DecodeResizeCrop,
    DecodeRandomResizeShortCropLong,
    YokedCrop,
    DecodeOnly,
    DecodeYUVFullRes,
    DecodeYUVPlanes,
)
"""The decode-crop stages a list may start with (besides an :class:`ImagePipeline`)."""


def to_image_pipeline(value: Any, name: str) -> ImagePipeline:
    """The :class:`ImagePipeline` of one output, from any form the loader accepts.

    Args:
        value: An :class:`ImagePipeline`; a crop spec (``DecodeRandomResizedCrop(224)``...: uint8
            output, no flip); or a list / tuple whose first item is one of those and whose
            other items are ``Normalize`` stages or :mod:`slipstream.augment` batch
            transforms, applied in order to the decoded batch.
        name: The output's name, for error messages.

    Returns:
        The pipeline.

    Raises:
        TypeError: ``value`` is none of these forms; the message names the output and
            the item.
        ValueError: an empty list, or stages after an :class:`ImagePipeline` that already
            normalizes or augments.
    """
    if isinstance(value, ImagePipeline):
        return value
    if isinstance(value, CROP_SPECS):
        return ImagePipeline(value, dtype="uint8")
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"pipeline {name!r}: expected an ImagePipeline, a decode stage such as "
            "DecodeRandomResizedCrop(224), or a list of stages starting with one; got "
            f"{type(value).__name__}"
        )
    if not value:
        raise ValueError(f"pipeline {name!r} is an empty list: start it with a crop stage")
    first, rest = value[0], list(value[1:])
    if isinstance(first, (list, tuple)):
        raise TypeError(
            f"pipeline {name!r} is a list of pipelines: give each view its own output name "
            "(e.g. {'global_0': ..., 'local_0': ...} with ImagePipeline(..., field='image', "
            "view=k)) or use slipstream.pipelines.multicrop"
        )
    base = to_image_pipeline(first, name) if isinstance(first, CROP_SPECS) else first
    if not isinstance(base, ImagePipeline):
        raise TypeError(
            f"pipeline {name!r}: the first stage must decode (DecodeRandomResizedCrop, "
            f"DecodeCenterCrop, DecodeResizeCrop, DecodeOnly, ... or an ImagePipeline; "
            f"a multi-crop stage goes through to_pipelines), got {type(first).__name__}"
        )
    if not rest:
        return base
    for stage in rest:
        if not isinstance(stage, (Normalize, BatchTransform)):
            raise TypeError(
                f"pipeline {name!r}: {type(stage).__name__} is not a batch stage (Normalize or a "
                "slipstream.augment transform); a callable on the whole batch dict goes in "
                "SlipstreamLoader(after_batch_transforms=[...])"
            )
    if base.normalize is not None or base.augment is not None:
        raise ValueError(
            f"pipeline {name!r}: its first stage already normalizes or augments; "
            "put the later stages into that ImagePipeline instead"
        )
    if len(rest) == 1 and isinstance(rest[0], (Normalize, AugmentNormalize)):
        only = rest[0]
        return replace(base, normalize=Normalize(only.mean, only.std), dtype="float32")
    chain = [_as_batch_transform(stage) for stage in rest]
    return replace(base, dtype="uint8", augment=Compose([ToFloatImage(), *chain]))


def _as_batch_transform(stage: Normalize | BatchTransform) -> BatchTransform:
    if isinstance(stage, Normalize):
        return AugmentNormalize(stage.mean, stage.std)
    return stage


def to_pipelines(pipelines: dict[str, Any]) -> dict[str, ImagePipeline]:
    """Every output's :class:`ImagePipeline`, expanding the stages that make several outputs.

    A value whose first stage is a multi-crop stage (``DecodeMultiRandomResizedCrop``,
    ``DecodeMultiRandomResizeShortCropLong``), or a decode stage followed by
    ``NamedCopies``, becomes one output per crop name, each reading the key's image field
    with its own view; an optional ``MultiCropPipeline`` after it gives each name its
    stages. Other values go through :func:`to_image_pipeline`.

    Args:
        pipelines: Output name (or image field, for the expanding forms) -> value.

    Returns:
        Output name -> pipeline.

    Raises:
        TypeError, ValueError: As :func:`to_image_pipeline`, or an output name made twice.

    Example:
        >>> from slipstream.pipelines import DecodeMultiRandomResizedCrop
        >>> multi = DecodeMultiRandomResizedCrop({"g": dict(size=64), "l": dict(size=32)})
        >>> sorted(to_pipelines({"image": [multi, Normalize()]}))  # doctest: +SKIP
        ['g', 'l']
    """
    out: dict[str, ImagePipeline] = {}
    for key, value in pipelines.items():
        expanded = _expand(value, key)
        for name, pipeline in (expanded or {key: to_image_pipeline(value, key)}).items():
            if name in out:
                raise ValueError(f"output {name!r} is made twice (by {key!r})")
            out[name] = pipeline
    return out


def _expand(value: Any, field: str) -> dict[str, ImagePipeline] | None:
    """The outputs of a multi-output value, or None for a one-output value."""
    stages = list(value) if isinstance(value, (list, tuple)) else [value]
    if not stages:
        return None
    if isinstance(stages[0], _MultiCrop):
        bases, rest = stages[0].pipelines(field=field, dtype="uint8"), stages[1:]
    elif len(stages) > 1 and isinstance(stages[1], NamedCopies):
        if not isinstance(stages[0], (DecodeCenterCrop, DecodeResizeCrop)):
            raise ValueError(
                f"pipeline {field!r}: NamedCopies after {type(stages[0]).__name__} would give "
                "each copy its own random window; use DecodeMultiRandomResizedCrop"
            )
        bases = {
            name: ImagePipeline(stages[0], dtype="uint8", field=field, view=k)
            for k, name in enumerate(stages[1].names)
        }
        rest = stages[2:]
    else:
        return None
    per_name: dict[str, list] = {name: [] for name in bases}
    if rest and isinstance(rest[0], MultiCropPipeline):
        unknown = set(rest[0].pipelines) - set(bases)
        if unknown:
            raise ValueError(
                f"MultiCropPipeline names {sorted(unknown)} are not crops of {field!r}"
            )
        per_name.update({name: list(s) for name, s in rest[0].pipelines.items()})
        rest = rest[1:]
    if rest:  # stages after the crops apply to every crop
        per_name = {name: [*s, *rest] for name, s in per_name.items()}
    return {
        name: to_image_pipeline([base, *per_name[name]], name) if per_name[name] else base
        for name, base in bases.items()
    }
