"""Dtype, device and memory-layout conversions, under the original slipstream's names.

* :class:`ToTorchImage`: numpy or tensor, HWC or CHW, one image or a batch -> float
  ``[(B,) C, H, W]`` in ``0..1`` on a device (integers divided by their dtype's maximum).
* :class:`ToChannelsFirst` / :class:`ToChannelsLast`: ``[B, H, W, C] <-> [B, C, H, W]`` as
  views (no copy): the result's memory keeps the input's order, so channels-first output
  of a contiguous HWC batch is channels-last in memory (``torch.channels_last``).
* :class:`ToDevice`, :class:`ToFloat`, :class:`ToFloatDiv`, :class:`ToNumpy`: a tensor (or
  a list / tuple of tensors, except ``ToNumpy``) moved, cast, divided, or turned into numpy.

None of them is random: they are :class:`~slipstream.augment.base.FixedTransform`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from slipstream.augment.base import FixedTransform, Params, stand_in

__all__ = [
    "ToChannelsFirst",
    "ToChannelsLast",
    "ToDevice",
    "ToFloat",
    "ToFloatDiv",
    "ToNumpy",
    "ToTorchImage",
    "is_channels_last_layout",
]

_INTEGER_MAX = {torch.uint8: 255, torch.int16: 32767, torch.int32: 2147483647}


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype, or the name of one (``"float16"``)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return resolved


def _each(x: Any, fn: Callable[[torch.Tensor], Any], name: str) -> Any:
    """``fn`` on a tensor, or on every tensor of a list / tuple (returned as a list)."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, (list, tuple)):
        return [_each(item, fn, name) for item in x]
    raise TypeError(f"{name} takes a tensor or a list/tuple of tensors, got {type(x).__name__}")


def _permute(x: torch.Tensor, order_3d: tuple[int, int, int], name: str) -> torch.Tensor:
    """Permute an image ``[3 dims]`` or a batch ``[B, 3 dims]`` (batch dimension kept)."""
    if x.dim() == 3:
        return x.permute(*order_3d)
    if x.dim() == 4:
        return x.permute(0, *(d + 1 for d in order_3d))
    raise ValueError(f"{name} takes a 3-D image or a 4-D batch, got shape {tuple(x.shape)}")


def is_channels_last_layout(x: torch.Tensor | np.ndarray) -> bool:
    """Whether an image or batch is HWC / BHWC (the original slipstream's test).

    The last dimension has 3 or 4 channels and the channel dimension of the CHW reading
    (``-3``) does not: a ``[B, 3, H, 3]`` batch is read as channels first.
    """
    if len(x.shape) not in (3, 4):
        return False
    return x.shape[-1] in (3, 4) and x.shape[-3] not in (3, 4)


class ToTorchImage(FixedTransform):
    """A numpy array or tensor image / batch to float ``[(B,) C, H, W]`` in ``0..1``.

    Accepts ``[H, W, C]``, ``[B, H, W, C]`` (``C`` = 3 or 4), ``[C, H, W]`` or
    ``[B, C, H, W]``; the layout is detected by :func:`is_channels_last_layout`. The input's
    own dtype crosses to the device (uint8 for decoded images); the permutation, the cast
    and the division by the dtype's maximum (255 for uint8, 32767 for int16, 2**31 - 1 for
    int32, 1 otherwise) run there, computed in float32 (or float64) and then cast to
    ``dtype``. HWC input gives a channels-first tensor that is channels-last in memory.

    Args:
        device: Output device.
        dtype: Output float dtype (or its name).
        from_numpy: Accepted for compatibility with the original slipstream; unused (numpy
            and tensor inputs are both converted).
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        from_numpy: bool = True,
    ) -> None:
        """Store the target device and dtype."""
        self.device = str(device)
        self.dtype = _dtype(dtype)
        if not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a float dtype, got {self.dtype}")
        self.from_numpy = bool(from_numpy)

    def output_stand_in(self, batch: Any) -> torch.Tensor:
        """Float channels-first stand-in on the output device."""
        shape = tuple(batch.shape)
        if is_channels_last_layout(batch):
            shape = (*shape[:-3], shape[-1], shape[-3], shape[-2])
        return stand_in(shape, self.dtype, self.device)

    def apply(self, batch: Any, params: Params) -> torch.Tensor:
        """Move, permute, cast and scale."""
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch if batch.flags.writeable else batch.copy())
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"ToTorchImage takes a numpy array or tensor, got {type(batch)}")
        channels_last = is_channels_last_layout(batch)
        scale = _INTEGER_MAX.get(batch.dtype, 1)
        target = torch.device(self.device)
        images = batch.to(target, non_blocking=target.type == "cuda")
        if channels_last:
            images = _permute(images, (2, 0, 1), "ToTorchImage")
        compute = torch.promote_types(self.dtype, torch.float32)
        if scale != 1:
            images = images.to(compute).div_(scale)
        return images.to(self.dtype)


class ToChannelsFirst(FixedTransform):
    """``[B, H, W, C]`` to ``[B, C, H, W]`` (or ``[H, W, C]`` to ``[C, H, W]``), a view."""

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """The permuted stand-in."""
        return _permute(batch, (2, 0, 1), "ToChannelsFirst")

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Permute."""
        return _permute(batch, (2, 0, 1), "ToChannelsFirst")


class ToChannelsLast(FixedTransform):
    """``[B, C, H, W]`` to ``[B, H, W, C]`` (or ``[C, H, W]`` to ``[H, W, C]``), a view."""

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """The permuted stand-in."""
        return _permute(batch, (1, 2, 0), "ToChannelsLast")

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Permute."""
        return _permute(batch, (1, 2, 0), "ToChannelsLast")


class ToDevice(FixedTransform):
    """Move a tensor (or each tensor of a list / tuple) to a device.

    The copy does not block when the target is a GPU (host-to-device copies are ordered
    on the stream); copies to the host block, so the result is ready when returned.

    Args:
        device: Target device.
    """

    def __init__(self, device: torch.device | str) -> None:
        """Store the device."""
        self.device = str(device)

    def output_stand_in(self, batch: Any) -> Any:
        """The stand-in on the target device."""
        if not isinstance(batch, torch.Tensor):
            return batch
        return stand_in(batch.shape, batch.dtype, self.device)

    def apply(self, batch: Any, params: Params) -> Any:
        """Move."""
        target = torch.device(self.device)
        return _each(batch, lambda x: x.to(target, non_blocking=target.type == "cuda"), "ToDevice")


class ToFloat(FixedTransform):
    """``x.float()`` on a tensor (or each tensor of a list / tuple); no scaling.

    Args:
        value: Accepted for compatibility with the original slipstream, which stores it
            and does not use it; it does not scale (use :class:`ToFloatDiv`).
    """

    def __init__(self, value: float | None = None) -> None:
        """Store the (unused) value."""
        self.value = None if value is None else float(value)

    def output_stand_in(self, batch: Any) -> Any:
        """float32 stand-in."""
        if not isinstance(batch, torch.Tensor):
            return batch
        return stand_in(batch.shape, torch.float32, batch.device)

    def apply(self, batch: Any, params: Params) -> Any:
        """Cast."""
        return _each(batch, lambda x: x.float(), "ToFloat")


class ToFloatDiv(FixedTransform):
    """``x / value`` cast to a float dtype, on a tensor (or each of a list / tuple).

    The division runs in float32 (float64 for a float64 ``dtype``), then the result is
    cast: a float16 output is the correctly rounded float32 quotient.

    Args:
        value: The divisor (255 for uint8 images).
        dtype: Output float dtype (or its name).
    """

    def __init__(self, value: float, dtype: torch.dtype | str = torch.float32) -> None:
        """Store the divisor and dtype."""
        if float(value) == 0.0:
            raise ValueError("value must be non-zero")
        self.value = float(value)
        self.dtype = _dtype(dtype)
        if not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a float dtype, got {self.dtype}")

    def output_stand_in(self, batch: Any) -> Any:
        """Stand-in in the output dtype."""
        if not isinstance(batch, torch.Tensor):
            return batch
        return stand_in(batch.shape, self.dtype, batch.device)

    def apply(self, batch: Any, params: Params) -> Any:
        """Divide and cast."""
        compute = torch.promote_types(self.dtype, torch.float32)
        return _each(batch, lambda x: (x.to(compute) / self.value).to(self.dtype), "ToFloatDiv")


class ToNumpy(FixedTransform):
    """A tensor to a numpy array (detached, copied to the host); other inputs unchanged."""

    def apply(self, batch: Any, params: Params) -> Any:
        """Convert."""
        if isinstance(batch, torch.Tensor):
            return batch.detach().cpu().numpy()
        return batch
