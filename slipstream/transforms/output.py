"""Turn decoded batches and stored fields into the tensors a training step consumes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from slipstream.errors import FieldNotFoundError
from slipstream.pipelines.spec import ImagePipeline

if TYPE_CHECKING:
    from slipstream.cache import SlipCache

_DTYPES = {
    "uint8": torch.uint8,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class ImageOutput:
    """Moves a batch to the output device, then casts and normalizes it there.

    Only uint8 pixels cross to a GPU; the result has shape ``[B, 3, H, W]`` in
    channels-last memory order (a permuted view of the HWC decode buffer, the layout
    convolutions prefer).

    The normalization is one formula everywhere (this class on any device, and the C++
    kernel's fused CPU output, :data:`slipstream.native.decode.PIXEL_DTYPES`, bit for bit):
    ``x.float() * scale - shift`` in float32 with ``scale = 1 / (255 * std)`` and
    ``shift = mean / std`` (float32 constants, multiply and subtract each rounded), i.e.
    ``(x / 255 - mean) / std``; float16 and bfloat16 outputs are that float32 value cast
    (round to nearest even).

    Args:
        pipeline: The image pipeline whose ``dtype`` and ``normalize`` apply.
        device: Output device.
    """

    def __init__(self, pipeline: ImagePipeline, device: torch.device) -> None:
        """Precompute the normalization constants on ``device`` (or the pipeline's own)."""
        device = torch.device(pipeline.device) if pipeline.device is not None else device
        self.device = device
        self.dtype = _DTYPES[pipeline.dtype]
        self._scale: torch.Tensor | None = None
        self._shift: torch.Tensor | None = None
        if pipeline.normalize is not None:
            self._scale, self._shift = (
                t.view(1, 3, 1, 1).to(device) for t in normalize_constants(pipeline)
            )

    def __call__(self, pixels: torch.Tensor | list, normalized: bool = False) -> Any:
        """Convert ``[B, H, W, 3]`` pixels to the output tensor ``[B, 3, H, W]``.

        Args:
            pixels: Decoded uint8 pixels (host memory is pinned when the device is a GPU),
                or final values when ``normalized``.
            normalized: ``pixels`` already hold the output values (in this dtype, or float32
                for bfloat16 from DALI's GPU graph): only the layout (and that cast) remain.

        Returns:
            The batch on ``self.device``; on the CPU with ``dtype="uint8"``, or ``normalized``
            pixels of this dtype, this is a view of ``pixels`` (valid until the loader reuses
            the buffer). A full-resolution output (a list of per-sample uint8 tensors, or of
            ``(Y, U, V)`` tuples) is moved as it is.
        """
        if isinstance(pixels, list):
            return [
                tuple(p.to(self.device) for p in item)
                if isinstance(item, tuple)
                else item.to(self.device)
                for item in pixels
            ]
        images = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        if self.dtype == torch.uint8 or normalized:
            return images.to(self.dtype)
        if self._scale is None:
            return images.to(self.dtype)
        images = images.to(torch.float32).mul_(self._scale).sub_(self._shift)
        return images.to(self.dtype)


def normalize_constants(pipeline: ImagePipeline) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``(scale, shift)`` ``[3]`` of a pipeline's normalization (see ImageOutput).

    Raises:
        ValueError: The pipeline has no normalization.
    """
    if pipeline.normalize is None:
        raise ValueError("the pipeline has no normalization")
    mean = torch.tensor(pipeline.normalize.mean, dtype=torch.float32)
    std = torch.tensor(pipeline.normalize.std, dtype=torch.float32)
    # (x / 255 - mean) / std == x * scale - shift
    return 1.0 / (255.0 * std), mean / std


class FieldOutput:
    """Reads a batch's non-image fields: numbers as tensors on the device, strings as lists.

    Args:
        cache: The dataset's cache.
        fields: Field names (default: every numeric field).
        device: Output device of the numeric fields.
        numeric_types: The cache field types that are numbers.
    """

    def __init__(
        self,
        cache: SlipCache,
        fields: list[str] | None,
        device: torch.device,
        numeric_types: tuple[str, ...] | dict[str, Any],
    ) -> None:
        """Check the field names."""
        types = cache.field_types
        if fields is None:
            fields = [name for name, kind in types.items() if kind in numeric_types]
        for name in fields:
            if name not in types:
                raise FieldNotFoundError(f"unknown field {name!r}; fields: {list(types)}")
        self.cache, self.fields, self.device = cache, list(fields), device

    def describe(self, sample_id: int) -> str:
        """Names a sample: its ``path`` field when the dataset has one, else its row."""
        if self.cache.field_types.get("path") == "str":
            return self.cache.string("path", sample_id)
        return f"row {sample_id} of {self.cache.path}"

    def __call__(self, ids: np.ndarray) -> dict[str, Any]:
        """Each field's values for the samples ``ids``, plus ``index`` when not a field."""
        out: dict[str, Any] = {}
        for name in self.fields:
            if self.cache.field_types[name] == "str":
                out[name] = [self.cache.string(name, int(i)) for i in ids]
            else:
                values = torch.from_numpy(np.asarray(self.cache.numbers(name)[ids]))
                out[name] = values.to(self.device, non_blocking=True)
        if "index" not in out:
            out["index"] = torch.from_numpy(ids).to(self.device, non_blocking=True)
        return out
