"""The forms of :class:`~slipstream.SlipstreamLoader`'s arguments, turned into what it runs.

* :func:`image_pipelines`: ``pipelines=`` as a dict, a list of stages, one stage or one
  :class:`ImagePipeline`, or the ``crop_size=`` / ``crop_mode=`` shortcut.
* :func:`reject_original_arguments`: the original slipstream's loader arguments that have
  another home here raise a :class:`TypeError` naming it (never silently ignored).
* :func:`returned_fields`: ``fields=`` or ``exclude_fields=``.
* :class:`AfterBatch`: ``after_batch_transforms=``, callables on the whole batch dict.
* :func:`batch_tuple`: the ``as_tuple=True`` form of a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from slipstream.augment import BatchKey, CutMix, Mixup
from slipstream.errors import FieldNotFoundError
from slipstream.pipelines import ImagePipeline, supervised_train, supervised_val
from slipstream.pipelines.compose import to_pipelines

__all__ = [
    "CROP_MODES",
    "AfterBatch",
    "batch_tuple",
    "image_pipelines",
    "reject_original_arguments",
    "returned_fields",
]

CROP_MODES = ("random", "center")
"""``crop_mode`` values: ``"random"`` is ``supervised_train``, ``"center"`` ``supervised_val``."""

_ELSEWHERE = {
    "force_rebuild": "the slip cache is built by SlipstreamDataset: rebuild it there "
    "(delete the cache folder or build into a new cache_dir)",
    "presync_s3": "S3 sources are read by SlipstreamDataset (LitData s3:// datasets); "
    "sync with your own tool (s5cmd, aws s3 sync) and pass the local folder",
    "presync_s3_workers": "see presync_s3",
    "presync_s3_endpoint_url": "see presync_s3",
    "use_threading": "the loader always gathers in one background thread; for debugging "
    "pass num_workers=1",
}


def image_pipelines(
    pipelines: Any,
    crop_size: int | tuple[int, int] | None,
    crop_mode: str | None,
    image_field: str | None,
) -> dict[str, ImagePipeline]:
    """Output name -> :class:`ImagePipeline`, from ``pipelines`` or the crop shortcut.

    Args:
        pipelines: A dict of output name -> pipeline form (see
            :func:`~slipstream.pipelines.compose.to_pipelines`), or one pipeline form (the
            pipeline of ``image_field``), or None to use the crop shortcut.
        crop_size: Output side of the shortcut: ``crop_mode="random"`` is
            ``supervised_train(crop_size)`` (random resized crop, flip, ImageNet-normalized
            float32), ``"center"`` is ``supervised_val(crop_size)``.
        crop_mode: ``"random"`` (the default with ``crop_size``) or ``"center"``.
        image_field: The image field of the shortcut or of a lone pipeline (default
            ``"image"``).

    Raises:
        ValueError: Both or neither of ``pipelines`` and ``crop_size``; an empty dict;
            ``crop_mode`` without ``crop_size``; ``image_field`` with a dict.
        TypeError: A pipeline form that is none of those accepted.
    """
    if crop_mode is not None and crop_mode not in CROP_MODES:
        raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {crop_mode!r}")
    field = "image" if image_field is None else image_field
    if pipelines is None:
        if crop_size is None:
            raise ValueError(
                "SlipstreamLoader needs pipelines= (e.g. supervised_train(224), or "
                "{'image': [DecodeRandomResizedCrop(224), Normalize()]}) or crop_size= (with "
                "crop_mode='random' for training or 'center' for validation)"
            )
        preset = supervised_val if crop_mode == "center" else supervised_train
        return preset(crop_size, field=field)
    if crop_size is not None or crop_mode is not None:
        raise ValueError(
            "pass pipelines= or crop_size=/crop_mode=, not both (crop_size is the shortcut "
            "for supervised_train / supervised_val)"
        )
    if not isinstance(pipelines, Mapping):
        return to_pipelines({field: pipelines})
    if image_field is not None:
        raise ValueError(
            "image_field= names the field of crop_size= or of one pipeline given without a "
            "dict; a pipelines dict names its fields itself (ImagePipeline(field=...))"
        )
    if not pipelines:
        raise ValueError("pipelines is empty: pass e.g. supervised_train(224)")
    return to_pipelines({str(name): value for name, value in pipelines.items()})


def reject_original_arguments(extra: Mapping[str, Any]) -> None:
    """Raise a :class:`TypeError` for keyword arguments the loader does not take.

    Args:
        extra: Keyword arguments left over after the loader's own (and renamed) ones.

    Raises:
        TypeError: Names the first argument, and where the original slipstream's argument
            of that name lives here.
    """
    for name in extra:
        if name in _ELSEWHERE:
            raise TypeError(f"SlipstreamLoader does not take {name}=: {_ELSEWHERE[name]}")
        raise TypeError(f"SlipstreamLoader got an unexpected keyword argument {name!r}")


def returned_fields(
    field_types: Mapping[str, str],
    numeric_types: Sequence[str] | Mapping[str, Any],
    fields: Sequence[str] | None,
    exclude_fields: Sequence[str] | None,
) -> list[str] | None:
    """The non-image fields a batch holds: ``fields``, or every numeric one but ``exclude_fields``.

    Args:
        field_types: The store's field name -> type.
        numeric_types: The types that are numbers.
        fields: Fields to return (None: the default, every numeric field).
        exclude_fields: Fields not to return (the original slipstream's form).

    Returns:
        The field names, or None for the default.

    Raises:
        ValueError: Both ``fields`` and ``exclude_fields``.
        FieldNotFoundError: An excluded field the store does not have.
    """
    if exclude_fields is None:
        return None if fields is None else list(fields)
    if fields is not None:
        raise ValueError("pass fields= or exclude_fields=, not both")
    unknown = [name for name in exclude_fields if name not in field_types]
    if unknown:
        raise FieldNotFoundError(f"exclude_fields {unknown} are not fields: {list(field_types)}")
    return [
        name
        for name, kind in field_types.items()
        if kind in numeric_types and name not in exclude_fields
    ]


class AfterBatch:
    """``after_batch_transforms``: callables applied in order to each assembled batch dict.

    Each callable receives the batch dict and returns the batch dict (possibly modified),
    as in the original slipstream. :class:`~slipstream.augment.Mixup` and
    :class:`~slipstream.augment.CutMix` may be given as they are: they mix the first image
    output and the ``label`` field (which becomes the soft targets ``[B, num_classes]``)
    with per-sample parameters keyed by ``(seed, epoch, batch["index"])``.

    Args:
        transforms: The callables.
        image_output: The output Mixup / CutMix mix.
    """

    def __init__(self, transforms: Sequence[Callable[[dict], dict]] | None, image_output: str):
        """Check that every transform is callable."""
        self.transforms = list(transforms or [])
        for k, transform in enumerate(self.transforms):
            if not callable(transform):
                raise TypeError(
                    f"after_batch_transforms[{k}] is a {type(transform).__name__}, not a "
                    "callable batch dict -> batch dict"
                )
        self.image_output = image_output

    def __call__(self, batch: dict[str, Any], seed: int, epoch: int) -> dict[str, Any]:
        """Apply every transform to ``batch``; Mixup / CutMix keyed by seed, epoch and ids."""
        for k, transform in enumerate(self.transforms):
            if isinstance(transform, (Mixup, CutMix)):
                ids = batch["index"].cpu().numpy().astype(np.int64)
                image_key = getattr(transform, "image_key", self.image_output)
                image_key = image_key if image_key in batch else self.image_output
                label_key = getattr(transform, "label_key", "label")
                key = BatchKey(seed, epoch, ids)
                batch[image_key], batch[label_key] = transform(
                    batch[image_key], batch[label_key], key
                )
                continue
            result = transform(batch)
            if not isinstance(result, dict):
                raise TypeError(
                    f"after_batch_transforms[{k}] ({type(transform).__name__}) returned a "
                    f"{type(result).__name__}; it must return the batch dict"
                )
            batch = result
        return batch


def batch_tuple(
    batch: dict[str, Any], outputs: Sequence[str], label: str = "label"
) -> tuple[torch.Tensor, ...]:
    """``as_tuple=True``: every image output in pipeline order, then the label.

    Args:
        batch: The batch dict.
        outputs: The image outputs' names, in pipeline order.
        label: The label field.
    """
    return (*(batch[name] for name in outputs), batch[label])
