"""Self-supervised multi-view presets: SimCLR, BYOL, DINO, IPCL, LeJEPA.

Each preset returns plain data, ``{output name: ImagePipeline}``, where every output reads
the same image field with its own ``view`` index, so each view's crop window and flip are
independent keyed draws of ``(seed, epoch, sample id, view)``: reproducible across batch
sizes, world sizes and resumes. A batch then holds one tensor per view, e.g.
``batch["view_0"]``, ``batch["view_1"]``.

Crop scales follow each method's reference setting (stated per preset).
"""

from __future__ import annotations

from slipstream.pipelines.spec import ImagePipeline, Normalize, RandomResizedCrop


def _views(
    names: list[str],
    size: int,
    scale: tuple[float, float],
    *,
    first_view: int,
    field: str,
    normalize: bool,
    dtype: str,
) -> dict[str, ImagePipeline]:
    return {
        name: ImagePipeline(
            crop=RandomResizedCrop(size, scale=scale),
            flip_probability=0.5,
            normalize=Normalize() if normalize else None,
            dtype=dtype,
            field=field,
            view=first_view + k,
        )
        for k, name in enumerate(names)
    }


def simclr(
    size: int = 224,
    *,
    num_views: int = 2,
    scale: tuple[float, float] = (0.08, 1.0),
    field: str = "image",
    normalize: bool = True,
    dtype: str = "float32",
) -> dict[str, ImagePipeline]:
    """SimCLR views (Chen et al. 2020): ``num_views`` RandomResizedCrop(0.08-1) + flip each.

    Args:
        size: Output side of every view.
        num_views: Number of views (2 in SimCLR).
        scale: RandomResizedCrop area range.
        field: Image field to read.
        normalize: ImageNet normalization on the output device.
        dtype: Output dtype name.

    Returns:
        ``{"view_0": ..., "view_1": ...}``.

    Example:
        >>> sorted(simclr(96))
        ['view_0', 'view_1']
    """
    names = [f"view_{k}" for k in range(num_views)]
    return _views(names, size, scale, first_view=0, field=field, normalize=normalize, dtype=dtype)


def byol(
    size: int = 224,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    field: str = "image",
    normalize: bool = True,
    dtype: str = "float32",
) -> dict[str, ImagePipeline]:
    """BYOL views (Grill et al. 2020): two RandomResizedCrop(0.08-1) + flip views.

    BYOL's asymmetry (blur always on view 0, rarely on view 1; solarization on view 1 only)
    lives in the batch augmentations applied after decoding.

    Args:
        size: Output side of both views.
        scale: RandomResizedCrop area range.
        field: Image field to read.
        normalize: ImageNet normalization on the output device.
        dtype: Output dtype name.

    Returns:
        ``{"view_0": ..., "view_1": ...}``.
    """
    return simclr(size, num_views=2, scale=scale, field=field, normalize=normalize, dtype=dtype)


def multi_crop(
    *,
    global_size: int,
    local_size: int,
    num_global: int,
    num_local: int,
    global_scale: tuple[float, float],
    local_scale: tuple[float, float],
    field: str = "image",
    normalize: bool = True,
    dtype: str = "float32",
) -> dict[str, ImagePipeline]:
    """Global and local views of one image (multi-crop, Caron et al. 2020).

    Args:
        global_size: Output side of the global views.
        local_size: Output side of the local views.
        num_global: Number of global views (``global_0``, ...).
        num_local: Number of local views (``local_0``, ...).
        global_scale: RandomResizedCrop area range of the global views.
        local_scale: RandomResizedCrop area range of the local views.
        field: Image field to read.
        normalize: ImageNet normalization on the output device.
        dtype: Output dtype name.

    Returns:
        ``{"global_0": ..., "local_0": ...}``, global views first.
    """
    options = {"field": field, "normalize": normalize, "dtype": dtype}
    views = _views(
        [f"global_{k}" for k in range(num_global)],
        global_size,
        global_scale,
        first_view=0,
        **options,
    )
    views.update(
        _views(
            [f"local_{k}" for k in range(num_local)],
            local_size,
            local_scale,
            first_view=num_global,
            **options,
        )
    )
    return views


def dino(
    global_size: int = 224,
    local_size: int = 96,
    *,
    num_local: int = 8,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
    **options: str | bool,
) -> dict[str, ImagePipeline]:
    """DINO multi-crop (Caron et al. 2021): 2 global views and ``num_local`` local views.

    Defaults are the DINO repository's: global crops 224 at scale 0.4-1, 8 local crops 96
    at scale 0.05-0.4.

    Args:
        global_size: Output side of the 2 global views.
        local_size: Output side of the local views.
        num_local: Number of local views.
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
        **options: ``field``, ``normalize``, ``dtype`` (see :func:`multi_crop`).

    Returns:
        ``{"global_0", "global_1", "local_0", ...}``.
    """
    return multi_crop(
        global_size=global_size,
        local_size=local_size,
        num_global=2,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
        **options,
    )


def ipcl(
    size: int = 224,
    *,
    num_views: int = 5,
    scale: tuple[float, float] = (0.2, 1.0),
    **options: str | bool,
) -> dict[str, ImagePipeline]:
    """IPCL views (Konkle & Alvarez 2022): 5 RandomResizedCrop(0.2-1) + flip views.

    Args:
        size: Output side of every view.
        num_views: Number of views (5 in IPCL).
        scale: RandomResizedCrop area range.
        **options: ``field``, ``normalize``, ``dtype`` (see :func:`simclr`).

    Returns:
        ``{"view_0", ..., "view_4"}``.
    """
    return simclr(size, num_views=num_views, scale=scale, **options)


def lejepa(
    global_size: int = 224,
    local_size: int = 96,
    *,
    num_local: int = 4,
    global_scale: tuple[float, float] = (0.3, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.3),
    **options: str | bool,
) -> dict[str, ImagePipeline]:
    """LeJEPA views (Balestriero & LeCun 2025): 2 global 224 and 4 local 96 views.

    Args:
        global_size: Output side of the 2 global views.
        local_size: Output side of the local views.
        num_local: Number of local views.
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
        **options: ``field``, ``normalize``, ``dtype`` (see :func:`multi_crop`).

    Returns:
        ``{"global_0", "global_1", "local_0", ...}``.
    """
    return multi_crop(
        global_size=global_size,
        local_size=local_size,
        num_global=2,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
        **options,
    )
