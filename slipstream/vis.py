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


def _pyplot():  # noqa: ANN202 - matplotlib is optional, so its types are too
    """``matplotlib.pyplot``, or a clear ImportError naming what to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "show_batch and show_rgba need matplotlib, which is not installed: "
            "pip install matplotlib"
        ) from error
    return plt


def batch_rows(
    batch: dict[str, torch.Tensor] | torch.Tensor | list[torch.Tensor],
    view_names: list[str] | None = None,
    n_cols: int = 8,
    mean: tuple[float, ...] | list[float] | None = None,
    std: tuple[float, ...] | list[float] | None = None,
) -> list[np.ndarray]:
    """The images :func:`show_batch` draws: one float ``[n, H, W, 3]`` array per row.

    Args:
        batch: A loader batch dict (rows picked by ``view_names``), one ``[B, C, H, W]``
            tensor (one row) or a list of them (one row each).
        view_names: The dict keys to show, one row each.
        n_cols: At most this many images per row.
        mean: Per-channel means to undo (with ``std``).
        std: Per-channel standard deviations to undo.

    Returns:
        Rows of RGB images in ``0..1`` (uint8 inputs are divided by 255; the first three
        channels are shown).
    """
    if isinstance(batch, dict):
        if view_names is None:
            raise ValueError("view_names is required when batch is a dict")
        missing = [name for name in view_names if name not in batch]
        if missing:
            raise KeyError(f"batch has no {missing} (keys: {sorted(batch)})")
        tensors = [batch[name] for name in view_names]
    elif isinstance(batch, torch.Tensor) and batch.ndim == 4:
        tensors = [batch]
    elif isinstance(batch, (list, tuple)):
        tensors = list(batch)
    else:
        raise TypeError(f"batch must be a dict, a [B, C, H, W] tensor or a list, got {batch!r:.80}")
    rows = []
    for tensor in tensors:
        images = tensor[:n_cols].detach().to("cpu")
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        images = images[:, :3]
        if mean is not None and std is not None:
            channels = images.shape[1]
            m = torch.tensor(list(mean)[:channels]).view(1, -1, 1, 1)
            s = torch.tensor(list(std)[:channels]).view(1, -1, 1, 1)
            images = images * s + m
        rows.append(images.clamp(0, 1).permute(0, 2, 3, 1).numpy())
    return rows


def show_batch(
    batch: dict[str, torch.Tensor] | torch.Tensor | list[torch.Tensor],
    view_names: list[str] | None = None,
    n_cols: int = 8,
    suptitle: str | None = None,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    mean: tuple[float, ...] | list[float] | None = None,
    std: tuple[float, ...] | list[float] | None = None,
) -> object:
    """Show batches as a grid with matplotlib (the original slipstream's ``show_batch``).

    Args:
        batch: As :func:`batch_rows`.
        view_names: As :func:`batch_rows`; also the default ``row_labels``.
        n_cols: At most this many images per row.
        suptitle: Figure title.
        row_labels: A label per row (left margin).
        col_labels: A label per column (top).
        mean: Per-channel means to undo (e.g. ``IMAGENET_MEAN``, with ``std``).
        std: Per-channel standard deviations to undo.

    Returns:
        The matplotlib figure (also shown with ``plt.show()``).

    Raises:
        ImportError: matplotlib is not installed.
    """
    plt = _pyplot()
    rows = batch_rows(batch, view_names, n_cols, mean, std)
    if row_labels is None and isinstance(batch, dict):
        row_labels = list(view_names or [])
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(2.5 * columns, 2.8 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(columns):
            if c < len(row):
                axes[r, c].imshow(row[c])
            axes[r, c].axis("off")
        if row_labels and r < len(row_labels):
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, labelpad=60, va="center")
    for c, label in enumerate((col_labels or [])[:columns]):
        axes[0, c].set_title(label, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=13, fontweight="bold")
    fig.tight_layout()
    plt.show()
    return fig


def rgba_composite(rgba: np.ndarray, cell: int = 16) -> np.ndarray:
    """RGBA uint8 images ``[B, H, W, 4]`` over a light gray checkerboard, as RGB uint8.

    Args:
        rgba: The images.
        cell: Checkerboard line spacing in pixels.

    Returns:
        ``[B, H, W, 3]`` uint8: ``alpha * rgb + (1 - alpha) * checkerboard``.
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 4 or rgba.shape[-1] != 4:
        raise ValueError(f"rgba must be [B, H, W, 4], got shape {rgba.shape}")
    _, h, w, _ = rgba.shape
    board = np.full((h, w, 3), 200, dtype=np.float32)
    board[::cell] = 220
    board[:, ::cell] = 220
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    mixed = alpha * rgba[..., :3].astype(np.float32) + (1.0 - alpha) * board
    return np.round(mixed).astype(np.uint8)


def show_rgba(
    rgba_batch: np.ndarray | list[np.ndarray],
    n_cols: int = 8,
    suptitle: str | None = None,
    row_labels: list[str] | None = None,
) -> object:
    """Show RGBA images ``[B, H, W, 4]`` over a checkerboard (the original's ``show_rgba``).

    Args:
        rgba_batch: One ``[B, H, W, 4]`` uint8 array, or a list of them (one row each).
        n_cols: At most this many images per row.
        suptitle: Figure title.
        row_labels: A label per row.

    Returns:
        The matplotlib figure (also shown with ``plt.show()``).

    Raises:
        ImportError: matplotlib is not installed.
    """
    plt = _pyplot()
    if isinstance(rgba_batch, np.ndarray):
        rgba_batch = [rgba_batch]
    rows = [rgba_composite(batch[:n_cols]) for batch in rgba_batch]
    columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(2.5 * columns, 2.8 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(columns):
            if c < len(row):
                axes[r, c].imshow(row[c])
            axes[r, c].axis("off")
        if row_labels and r < len(row_labels):
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, labelpad=60, va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=13, fontweight="bold")
    fig.tight_layout()
    plt.show()
    return fig
