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


def draw_windows(
    image: np.ndarray | Image.Image,
    windows: np.ndarray,
    colors: list[tuple[int, int, int]],
    *,
    height: int | None = None,
    line: int = 3,
    centers: bool = False,
) -> Image.Image:
    """Draw crop windows ``[K, 4]`` (y, x, h, w, source pixels) as boxes over an image.

    The windows are those of :mod:`slipstream.sampling.crops` (one row of a loader's
    ``[B, K, 4]`` windows); the boxes are drawn on a copy scaled to ``height``.

    Args:
        image: The full decoded image, ``uint8 [H, W, 3]`` or a PIL image.
        windows: ``[K, 4]`` int windows in ``image``'s pixel coordinates.
        colors: One RGB color per window (cycled when shorter).
        height: Display height (default: the image's own); boxes are scaled with it.
        line: Box line width in display pixels.
        centers: Also mark each window's center with a dot (yoked views share one).

    Returns:
        The picture, an RGB PIL image.
    """
    from PIL import ImageDraw

    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    picture = picture.convert("RGB")
    scale = 1.0 if height is None else height / picture.height
    if height is not None and height != picture.height:
        size = (max(1, round(picture.width * scale)), height)
        picture = picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    draw = ImageDraw.Draw(picture)
    for k, (y, x, h, w) in enumerate(np.asarray(windows, dtype=np.int64).reshape(-1, 4)):
        color = tuple(colors[k % len(colors)])
        box = [x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1]
        draw.rectangle(box, outline=color, width=line)
        if centers:
            cx, cy, r = (x + w / 2) * scale, (y + h / 2) * scale, line + 1
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    return picture
