"""Pictures of batches: a contact sheet of images for docs, demos and debugging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from slipstream.pipelines.spec import Normalize


def contact_sheet(
    images: torch.Tensor,
    path: str | Path,
    *,
    columns: int = 8,
    normalize: Normalize | None = None,
    padding: int = 2,
) -> Path:
    """Save a grid of a batch ``[B, 3, H, W]`` as a PNG.

    Args:
        images: uint8 pixels, or normalized floats together with ``normalize``.
        path: Output PNG path.
        columns: Images per row.
        normalize: The normalization to undo for float inputs.
        padding: White pixels between tiles.

    Returns:
        The written path.
    """
    batch = images.detach().to("cpu")
    if batch.dtype != torch.uint8:
        batch = batch.float()
        if normalize is not None:
            mean = torch.tensor(normalize.mean).view(1, 3, 1, 1)
            std = torch.tensor(normalize.std).view(1, 3, 1, 1)
            batch = (batch * std + mean) * 255.0
        batch = batch.clamp(0, 255).round().to(torch.uint8)
    pixels = batch.permute(0, 2, 3, 1).numpy()
    count, height, width, _ = pixels.shape
    rows = -(-count // columns)
    sheet = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, 3),
        255,
        dtype=np.uint8,
    )
    for i in range(count):
        r, c = divmod(i, columns)
        y, x = padding + r * (height + padding), padding + c * (width + padding)
        sheet[y : y + height, x : x + width] = pixels[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path
