"""slipstream's DALI integration: the only subpackage that imports ``nvidia.dali``.

:func:`decode_crop` puts slipstream's fused decode-crop-resize operator into a DALI pipeline;
the operator's plugin is built for the installed DALI on first use (see
:mod:`slipstream.dali.plugin`). Install DALI with ``pip install 'slipstream[dali]'``.

Example:
    >>> from nvidia.dali import fn, pipeline_def
    >>> from slipstream.dali import decode_crop
    >>> @pipeline_def(batch_size=64, num_threads=4, device_id=None)
    ... def pipe(source):
    ...     jpegs, windows, flips = fn.external_source(source, num_outputs=3, cycle="raise")
    ...     return decode_crop(jpegs, windows, size=224, flip=flips)
"""

from __future__ import annotations

from typing import Any

from slipstream.dali.plugin import PluginBuildError, load_plugin

__all__ = ["PluginBuildError", "decode_crop", "load_plugin"]


def decode_crop(
    jpegs: Any,
    windows: Any,
    size: int | tuple[int, int],
    flip: Any = None,
    device: str = "cpu",
) -> Any:
    """Fused JPEG decode, crop, antialiased resize and flip, as a DALI graph node.

    Call inside a ``pipeline_def``. Outputs are bit-identical to
    :func:`slipstream.native.decode_crop` for the same windows.

    Args:
        jpegs: DataNode of encoded JPEG bytes, uint8 1-D per sample (e.g. from
            ``fn.external_source``).
        windows: DataNode of int32 crop windows ``[y, x, h, w]`` in source pixels, shape
            ``[4]`` per sample (or ``[K, 4]`` for K views, giving ``[K, H, W, 3]``).
        size: Output ``height`` and ``width``, or one int for a square.
        flip: Optional DataNode (bool or integer, 1 value per sample, or K with ``[K, 4]``
            windows) or a constant; non-zero mirrors the output horizontally.
        device: ``"cpu"``. The GPU (``"mixed"``) path is not implemented yet.

    Returns:
        DataNode of uint8 ``[H, W, 3]`` (layout ``HWC``) per sample.

    Raises:
        NotImplementedError: For ``device="mixed"`` or ``"gpu"``.
        ValueError: For another device or a malformed size.
    """
    if device in ("mixed", "gpu"):
        raise NotImplementedError(
            "slipstream.dali.decode_crop(device='mixed') (nvJPEG decode of the same windows) "
            "is not implemented yet; use device='cpu'"
        )
    if device != "cpu":
        raise ValueError(f"device must be 'cpu' (or 'mixed', not yet available), got {device!r}")
    sz = [int(size)] * 2 if isinstance(size, int) else [int(v) for v in size]
    if len(sz) != 2 or min(sz) < 1:
        raise ValueError(f"size must be an int or (height, width) with both >= 1, got {size!r}")
    load_plugin()
    from nvidia.dali import fn

    kwargs: dict[str, Any] = {"size": sz}
    if flip is not None:
        kwargs["flip"] = int(flip) if isinstance(flip, (bool, int)) else flip
    return fn.slipstream_decode_crop(jpegs, windows, **kwargs)
