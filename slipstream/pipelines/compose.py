"""One image output's pipeline from the forms users write: a spec, a crop, or a list of stages.

The loader accepts, per output, what the original slipstream's users write::

    ImagePipeline(RandomResizedCrop(224), flip_probability=0.5)   # the spec itself
    RandomResizedCrop(224)                                       # a lone crop: uint8 output
    [RandomResizedCrop(224), Normalize()]                        # decode-crop stage first,
    [CenterCrop(224), RandomGrayscale(), Normalize()]            # then batch transforms

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
from slipstream.pipelines.spec import (
    CenterCrop,
    ImagePipeline,
    Normalize,
    RandomResizedCrop,
    ResizeShortCenterCrop,
    YokedCrop,
)

__all__ = ["CROP_SPECS", "to_image_pipeline"]

CROP_SPECS = (RandomResizedCrop, CenterCrop, ResizeShortCenterCrop, YokedCrop)
"""The decode-crop stages a list may start with (besides an :class:`ImagePipeline`)."""


def to_image_pipeline(value: Any, name: str) -> ImagePipeline:
    """The :class:`ImagePipeline` of one output, from any form the loader accepts.

    Args:
        value: An :class:`ImagePipeline`; a crop spec (``RandomResizedCrop(224)``...: uint8
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
            f"pipeline {name!r}: expected an ImagePipeline, a crop such as RandomResizedCrop(224),"
            f" or a list of stages starting with one; got {type(value).__name__}"
        )
    if not value:
        raise ValueError(f"pipeline {name!r} is an empty list: start it with a crop stage")
    first, rest = value[0], list(value[1:])
    if isinstance(first, (list, tuple)):
        raise TypeError(
            f"pipeline {name!r} is a list of pipelines: give each view its own output name "
            "(e.g. {'global_0': ..., 'local_0': ...} with ImagePipeline(..., field='image', "
            "view=k)) or use slipstream.pipelines.multi_crop"
        )
    base = to_image_pipeline(first, name) if isinstance(first, CROP_SPECS) else first
    if not isinstance(base, ImagePipeline):
        raise TypeError(
            f"pipeline {name!r}: the first stage must decode and crop (RandomResizedCrop, "
            f"CenterCrop, ResizeShortCenterCrop, YokedCrop or an ImagePipeline), got "
            f"{type(first).__name__}"
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
