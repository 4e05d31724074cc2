"""Conversion of the loader's uint8 batches to float, and normalization."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from slipstream.augment.base import BatchTransform, Params, stand_in, to_batch_device

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "ToFloatImage"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ToFloatImage(BatchTransform):
    """uint8 images to contiguous float ``[B, C, H, W]`` in ``0..1`` on a device.

    Takes the loader's uint8 ``[B, 3, H, W]`` batches (channels-last in memory) or, with
    ``channels_last_input=True``, ``[B, H, W, C]`` arrays. Only uint8 crosses to the
    device; the cast and the division run there. Float input is only moved and cast.

    Args:
        device: Output device (``None``: the input's device).
        dtype: Output float dtype.
        channels_last_input: The input is ``[B, H, W, C]``.
    """

    def __init__(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last_input: bool = False,
    ) -> None:
        """Store the target device and dtype."""
        self.device = None if device is None else str(device)
        self.dtype = dtype
        self.channels_last_input = bool(channels_last_input)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Float stand-in on the output device."""
        shape = batch.shape
        if self.channels_last_input:
            shape = torch.Size((shape[0], shape[3], shape[1], shape[2]))
        return stand_in(shape, self.dtype, self.device or batch.device)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Move, permute and cast (dividing integer images by 255)."""
        images = batch.to(self.device or batch.device, non_blocking=True)
        if self.channels_last_input:
            images = images.permute(0, 3, 1, 2)
        images = images.to(dtype=self.dtype, memory_format=torch.contiguous_format)
        return images if batch.dtype.is_floating_point else images.div_(255.0)


class Normalize(BatchTransform):
    """``(x - mean) / std`` per channel.

    Args:
        mean: Per-channel means.
        std: Per-channel standard deviations.
        inplace: Accepted for the original's signature; the output is always a new tensor
            (the input may be shared with other views of the same decode).
        dtype: The batch is cast to it first (a ``torch.dtype`` or its name).
        device: Accepted for the original's signature: the statistics follow the batch
            to its device.
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        inplace: bool = True,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the statistics."""
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a float torch dtype, got {dtype!r}")
        self.inplace = bool(inplace)
        self.dtype = dtype
        self.device = None if device is None else str(device)
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels, std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Normalize."""
        if batch.dtype != self.dtype:
            batch = batch.to(self.dtype)
        if batch.shape[1] != len(self.mean):
            raise ValueError(f"batch has {batch.shape[1]} channels, mean has {len(self.mean)}")
        mean = to_batch_device(torch.tensor(self.mean), batch, batch.dtype).view(1, -1, 1, 1)
        std = to_batch_device(torch.tensor(self.std), batch, batch.dtype).view(1, -1, 1, 1)
        return (batch - mean) / std
