"""Self-supervised multi-view presets: SimCLR, BYOL, multi-crop, DINO, IPCL, LeJEPA.

Each preset returns plain data, ``{output name: ImagePipeline}``, where every output reads
the same image field with its own ``view`` index, so each view's crop window, flip and
augmentation parameters are independent keyed draws of ``(seed, epoch, sample id, view)``:
reproducible across batch sizes, world sizes and resumes. A batch then holds one tensor per
view, e.g. ``batch["view_0"]``, ``batch["view_1"]``.

Crops and flips happen in the decoder; the color augmentations run as a
:mod:`slipstream.augment` chain on the output device (the GPU when there is one):
``ToFloatImage -> RandomColorJitter -> RandomGrayscale -> RandomGaussianBlur ->
RandomSolarization -> Normalize`` with each method's probabilities (stated per preset).
``augment=False`` returns the crop-only pipelines (uint8, or normalized with
``normalize=True``).

"Yoked" views share a center: :func:`yoke` (or ``yoked=True`` of :func:`multicrop`,
:func:`dino`, :func:`lejepa`) turns views into :class:`~slipstream.pipelines.spec.YokedCrop`
crops centred on one anchor view's crop, each keeping its own size, scale range, flip and
augmentation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from slipstream.pipelines.spec import DecodeRandomResizedCrop, ImagePipeline, Normalize, YokedCrop


def color_augment(
    *,
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1),
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    blur_p: float = 0.0,
    solarize_p: float = 0.0,
    normalize: bool = True,
    blur_kernel: int = 23,
):
    """The SimCLR/BYOL/DINO color chain as a :class:`slipstream.augment.Compose`.

    Args:
        jitter: Brightness, contrast, saturation, hue strengths.
        jitter_p: Probability of the color jitter.
        grayscale_p: Probability of grayscale.
        blur_p: Probability of a Gaussian blur (sigma 0.1-2).
        solarize_p: Probability of solarization.
        normalize: End with ImageNet normalization.
        blur_kernel: Side of the blur kernel (23 as DINO; odd).

    Returns:
        The transform (uint8 ``[B, 3, H, W]`` in, float32 out).
    """
    from slipstream.augment import (
        Compose,
        RandomColorJitter,
        RandomGaussianBlur,
        RandomGrayscale,
        RandomSolarization,
        ToFloatImage,
    )
    from slipstream.augment import Normalize as NormalizeBatch

    brightness, contrast, saturation, hue = jitter
    steps = [
        ToFloatImage(),
        RandomColorJitter(
            jitter_p, hue=hue, saturation=saturation, value=brightness, contrast=contrast
        ),
        RandomGrayscale(grayscale_p),
    ]
    if blur_p > 0:
        steps.append(RandomGaussianBlur(blur_p, kernel_size=blur_kernel, num_sigmas=None))
    if solarize_p > 0:
        steps.append(RandomSolarization(solarize_p))
    if normalize:
        steps.append(NormalizeBatch())
    return Compose(steps)


def _views(
    names: list[str],
    size: int,
    scale: tuple[float, float],
    *,
    first_view: int,
    field: str,
    normalize: bool,
    dtype: str,
    augments: list | None = None,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    seed: int | None = None,
    device: str | None = None,
) -> dict[str, ImagePipeline]:
    views = {}
    for k, name in enumerate(names):
        augment = augments[k] if augments is not None else None
        views[name] = ImagePipeline(
            crop=DecodeRandomResizedCrop(size, scale=scale, ratio=ratio, seed=seed),
            flip_probability=0.5,
            normalize=Normalize() if normalize and augment is None else None,
            dtype="uint8" if augment is not None else dtype,
            field=field,
            view=first_view + k,
            augment=augment,
            device=device,
        )
    return views


def simclr(
    size: int = 224,
    *,
    num_views: int = 2,
    scale: tuple[float, float] = (0.08, 1.0),
    augment: bool = True,
    field: str = "image",
    normalize: bool = True,
    dtype: str = "float32",
    seed: int | None = None,
    device: str | None = None,
) -> dict[str, ImagePipeline]:
    """SimCLR views (Chen et al. 2020): ``num_views`` RandomResizedCrop(0.08-1) + flip each.

    Augmentation per view: color jitter (0.8, 0.8, 0.8, 0.2) with p=0.8, grayscale p=0.2,
    Gaussian blur p=0.5 (the paper's ImageNet setting, color strength 1.0).

    Args:
        size: Output side of every view.
        num_views: Number of views (2 in SimCLR).
        scale: RandomResizedCrop area range.
        augment: Attach the color augmentation chain (float32 output).
        field: Image field to read.
        normalize: ImageNet normalization on the output device.
        dtype: Output dtype name without ``augment``.
        seed: Seed of the crop draws (default: the loader's ``seed``).
        device: Where the views go (default: the loader's device).

    Returns:
        ``{"view_0": ..., "view_1": ...}``.

    Example:
        >>> sorted(simclr(96))
        ['view_0', 'view_1']
    """
    names = [f"view_{k}" for k in range(num_views)]
    chain = color_augment(jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5, normalize=normalize)
    return _views(
        names,
        size,
        scale,
        first_view=0,
        field=field,
        normalize=normalize,
        dtype=dtype,
        augments=[chain] * num_views if augment else None,
        seed=seed,
        device=device,
    )


def byol(
    size: int = 224,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    augment: bool = True,
    field: str = "image",
    normalize: bool = True,
    dtype: str = "float32",
) -> dict[str, ImagePipeline]:
    """BYOL views (Grill et al. 2020): two RandomResizedCrop(0.08-1) + flip views.

    Asymmetric augmentation: color jitter (0.4, 0.4, 0.2, 0.1) p=0.8 and grayscale p=0.2 on
    both; Gaussian blur p=1.0 on view 0 and p=0.1 on view 1; solarization p=0.2 on view 1.

    Args:
        size: Output side of both views.
        scale: RandomResizedCrop area range.
        augment: Attach the color augmentation chains (float32 output).
        field: Image field to read.
        normalize: ImageNet normalization on the output device.
        dtype: Output dtype name without ``augment``.

    Returns:
        ``{"view_0": ..., "view_1": ...}``.
    """
    chains = [
        color_augment(blur_p=1.0, normalize=normalize),
        color_augment(blur_p=0.1, solarize_p=0.2, normalize=normalize),
    ]
    return _views(
        ["view_0", "view_1"],
        size,
        scale,
        first_view=0,
        field=field,
        normalize=normalize,
        dtype=dtype,
        augments=chains if augment else None,
    )


def yoke(
    pipelines: dict[str, ImagePipeline],
    anchor: str | None = None,
    members: Iterable[str] | None = None,
) -> dict[str, ImagePipeline]:
    """Center views on one anchor view's crop ("yoked" views), e.g. locals on a global view.

    Each member's ``DecodeRandomResizedCrop`` becomes a :class:`YokedCrop` with the same size,
    scale and ratio, centred on the anchor's window of the same sample; the anchor keeps its
    own crop, so its windows are unchanged. Members keep their ``view`` (their own keyed
    scale, aspect, flip and augmentation draws), so windows stay a pure function of
    ``(seed, epoch, sample id, view)`` and the anchor's view.

    Args:
        pipelines: Output name -> pipeline (e.g. a preset).
        anchor: The output whose crop center the members share (default: the first).
        members: Outputs to center on the anchor (default: every other output reading the
            anchor's field).

    Returns:
        A new dict, same order and names.

    Raises:
        KeyError: An unknown anchor or member name.
        ValueError: A member reading another field, sharing the anchor's ``view``, or
            whose crop is not a ``DecodeRandomResizedCrop``.

    Example:
        >>> views = yoke(dino(augment=False), anchor="global_0")
        >>> type(views["local_0"].crop).__name__, views["local_0"].crop.anchor_view
        ('YokedCrop', 0)
    """
    names = list(pipelines)
    if not names:
        raise ValueError("pipelines is empty")
    anchor = names[0] if anchor is None else anchor
    if anchor not in pipelines:
        raise KeyError(f"unknown anchor {anchor!r}; outputs: {names}")
    lead = pipelines[anchor]
    if isinstance(lead.crop, YokedCrop):
        raise ValueError(f"anchor {anchor!r} is itself yoked; pick a view with a plain crop")
    field = lead.field or anchor
    if members is None:
        members = [n for n in names if n != anchor and (pipelines[n].field or n) == field]
    out = dict(pipelines)
    for name in members:
        if name not in pipelines:
            raise KeyError(f"unknown member {name!r}; outputs: {names}")
        pipeline = pipelines[name]
        crop = pipeline.crop
        if name == anchor:
            continue
        if (pipeline.field or name) != field:
            raise ValueError(f"{name!r} reads {pipeline.field or name!r}, the anchor {field!r}")
        if pipeline.view == lead.view:
            raise ValueError(f"{name!r} has the anchor's view {lead.view}: give it its own view")
        if not isinstance(crop, DecodeRandomResizedCrop):
            raise ValueError(
                f"{name!r} has a {type(crop).__name__}; yoke needs DecodeRandomResizedCrop"
            )
        yoked = YokedCrop(
            crop.size, lead.crop, anchor_view=lead.view, scale=crop.scale, ratio=crop.ratio
        )
        out[name] = dataclasses.replace(pipeline, crop=yoked)
    return out


def multicrop(
    global_crops: int = 2,
    local_crops: int = 4,
    global_size: int = 224,
    local_size: int | None = None,
    global_scale: tuple[float, float] = (0.30, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.30),
    ratio: tuple[float, float] = (1.0, 1.0),
    seed: int | None = None,
    device: str | None = None,
    dtype: str = "float32",
    normalize: bool = True,
    *,
    augment: bool = True,
    global_augments: list | None = None,
    local_augment=None,
    field: str = "image",
    yoked: bool = False,
) -> dict[str, ImagePipeline]:
    """Global and local views of one image (multi-crop: DINO, iBOT, L-JEPA style).

    The original slipstream's ``multicrop`` (its defaults are the lrm-ssl
    ``ssl_global2_local4_ratio1`` config): every view gets a flip (p=0.5) in the decoder
    and, with ``augment``, the same color chain: jitter (0.4, 0.4, 0.4, 0.1) p=0.8,
    grayscale p=0.2, solarization p=0.2, Gaussian blur p=0.2 (kernel 7, sigma 0.1-2),
    ImageNet normalization (the original's HSV jitter and its order, blur after
    normalization, are this package's RGB jitter with blur before normalization).

    Args:
        global_crops: Number of global views (``global_0``, ...).
        local_crops: Number of local views (``local_0``, ...).
        global_size: Output side of the global views.
        local_size: Output side of the local views (default ``int(0.4375 * global_size)``,
            98 for 224).
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
        ratio: Aspect ratio range of every crop (square by default).
        seed: Seed of the crop draws (default: the loader's ``seed``); views stay
            independent draws through their ``view`` index.
        device: Where the views go (default: the loader's device).
        dtype: Output dtype name of views without augmentation.
        normalize: ImageNet normalization.
        augment: Attach the color chain above to views that get no explicit augment.
        global_augments: One batch transform per global view (overrides ``augment``).
        local_augment: The batch transform of every local view (overrides ``augment``).
        field: Image field to read.
        yoked: Center every other view on ``global_0``'s crop (:func:`yoke`): the views
            share a center and differ in scale, aspect, flip and augmentation.

    Returns:
        ``{"global_0": ..., "local_0": ...}``, global views first.

    Example:
        >>> sorted(multicrop(global_crops=2, local_crops=1, augment=False))
        ['global_0', 'global_1', 'local_0']
    """
    local_size = int(0.4375 * global_size) if local_size is None else local_size
    chain = color_augment(
        jitter=(0.4, 0.4, 0.4, 0.1), solarize_p=0.2, blur_p=0.2, blur_kernel=7, normalize=normalize
    )
    if global_augments is None and augment:
        global_augments = [chain] * global_crops
    if local_augment is None and augment:
        local_augment = chain
    options = {
        "field": field,
        "normalize": normalize,
        "dtype": dtype,
        "ratio": ratio,
        "seed": seed,
        "device": device,
    }
    views = _views(
        [f"global_{k}" for k in range(global_crops)],
        global_size,
        global_scale,
        first_view=0,
        augments=global_augments,
        **options,
    )
    views.update(
        _views(
            [f"local_{k}" for k in range(local_crops)],
            local_size,
            local_scale,
            first_view=global_crops,
            augments=None if local_augment is None else [local_augment] * local_crops,
            **options,
        )
    )
    return yoke(views, anchor=next(iter(views))) if yoked and views else views


def _dino_style(
    *,
    global_size: int,
    local_size: int | None,
    num_local: int,
    global_scale: tuple[float, float],
    local_scale: tuple[float, float],
    augment: bool,
    normalize: bool = True,
    **options: str | bool,
) -> dict[str, ImagePipeline]:
    """Two global + local views with DINO's augmentation chains."""
    global_augments = local_augment = None
    if augment:
        global_augments = [
            color_augment(blur_p=1.0, normalize=normalize),
            color_augment(blur_p=0.1, solarize_p=0.2, normalize=normalize),
        ]
        local_augment = color_augment(blur_p=0.5, normalize=normalize)
    return multicrop(
        global_crops=2,
        local_crops=num_local,
        global_size=global_size,
        local_size=local_size,
        global_scale=global_scale,
        local_scale=local_scale,
        ratio=(3 / 4, 4 / 3),
        augment=False,
        global_augments=global_augments,
        local_augment=local_augment,
        normalize=normalize,
        **options,
    )


def dino(
    global_size: int = 224,
    local_size: int = 96,
    *,
    num_local: int = 8,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
    augment: bool = True,
    yoked: bool = False,
    **options: str | bool,
) -> dict[str, ImagePipeline]:
    """DINO multi-crop (Caron et al. 2021): 2 global views and ``num_local`` local views.

    Defaults are the DINO repository's: global crops 224 at scale 0.4-1, 8 local crops 96
    at scale 0.05-0.4; color jitter (0.4, 0.4, 0.2, 0.1) p=0.8 and grayscale p=0.2 on all
    views, blur p=1.0 on global 0, blur p=0.1 and solarization p=0.2 on global 1, blur
    p=0.5 on the local views.

    Args:
        global_size: Output side of the 2 global views.
        local_size: Output side of the local views.
        num_local: Number of local views.
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
        augment: Attach the augmentation chains (float32 output).
        yoked: Center the other views on ``global_0``'s crop (see :func:`yoke`).
        **options: ``field``, ``normalize``, ``dtype`` (see :func:`multicrop`).

    Returns:
        ``{"global_0", "global_1", "local_0", ...}``.
    """
    return _dino_style(
        global_size=global_size,
        local_size=local_size,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
        augment=augment,
        yoked=yoked,
        **options,
    )


def ipcl(
    size: int = 224,
    *,
    num_views: int = 5,
    scale: tuple[float, float] = (0.2, 1.0),
    augment: bool = True,
    field: str = "image",
    normalize: bool = True,
    dtype: str = "float32",
    seed: int | None = None,
    device: str | None = None,
) -> dict[str, ImagePipeline]:
    """IPCL views (Konkle & Alvarez 2022): 5 RandomResizedCrop(0.2-1) + flip views.

    Augmentation per view (instance-discrimination style): grayscale p=0.2 and color jitter
    (0.4, 0.4, 0.4, 0.4) on every sample, no blur.

    Args:
        size: Output side of every view.
        num_views: Number of views (5 in IPCL).
        scale: RandomResizedCrop area range.
        augment: Attach the color augmentation chain (float32 output).
        field: Image field to read.
        normalize: ImageNet normalization on the output device.
        dtype: Output dtype name without ``augment``.
        seed: Seed of the crop draws (default: the loader's ``seed``).
        device: Where the views go (default: the loader's device).

    Returns:
        ``{"crop_0", ..., "crop_4"}`` (the original slipstream's output names).
    """
    chain = color_augment(jitter=(0.4, 0.4, 0.4, 0.4), jitter_p=1.0, normalize=normalize)
    return _views(
        [f"crop_{k}" for k in range(num_views)],
        size,
        scale,
        first_view=0,
        field=field,
        normalize=normalize,
        dtype=dtype,
        augments=[chain] * num_views if augment else None,
        seed=seed,
        device=device,
    )


def lejepa(
    global_size: int = 224,
    local_size: int | None = None,
    *,
    num_local: int = 4,
    global_scale: tuple[float, float] = (0.3, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.3),
    augment: bool = True,
    yoked: bool = False,
    **options: str | bool,
) -> dict[str, ImagePipeline]:
    """LeJEPA views (Balestriero & LeCun 2025): 2 global 224 and 4 local 98 views.

    Global crops at scale 0.3-1, local crops at 0.05-0.3, with DINO's augmentation chains.

    Args:
        global_size: Output side of the 2 global views.
        local_size: Output side of the local views (default ``int(0.4375 * global_size)``,
            98 for 224, as the original slipstream).
        num_local: Number of local views.
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
        augment: Attach the augmentation chains (float32 output).
        yoked: Center the other views on ``global_0``'s crop (see :func:`yoke`).
        **options: ``field``, ``normalize``, ``dtype``, ``seed``, ``device`` (see
            :func:`multicrop`).

    Returns:
        ``{"global_0", "global_1", "local_0", ...}``.
    """
    return _dino_style(
        global_size=global_size,
        local_size=local_size,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
        augment=augment,
        yoked=yoked,
        **options,
    )
