"""Write the pictures of the docs pages (docs/presets/, docs/crops/, docs/yuv420/).

Every picture comes from real photographs (scikit-image's bundled photos, written as JPEGs
into a small image folder) run through ``SlipstreamLoader`` (native backend, CPU, seed 0):

- ``docs/presets/<preset>.jpg``: a batch of each pipeline preset with its default
  parameters; rows are samples, columns the preset's views (one row for single-view
  presets), un-normalized, every view resized to one tile size for display;
  ``docs/presets/ibot_masks.jpg``: iBOT's block masks over their global crops.
- ``docs/crops/<mode>.jpg``: the crop windows of each crop mode drawn as boxes on the full
  photo, next to the loader's decoded output of each window (same colors). The windows are
  the loader's own (``loader.pipelines[name].crop.windows(...)`` with the loader's key, as
  the prefetcher calls it), and each is checked against the loader's output: the window cut
  from a PIL decode and resized must match the decoded tile.
- ``docs/yuv420/planes.jpg``: the Y, U and V planes of a photo's YUV420 companion and the
  round trip back to RGB, against the JPEG decode.

Everything is keyed by fixed seeds, so a rerun gives the same pixels on one machine (the
JPEG bytes depend on Pillow's libjpeg-turbo; ``tests/test_docs_pages.py`` compares decoded
pixels within a tolerance).

Run: ``python scripts/docs_pictures.py [--out docs] [--only crops yuv420 presets]``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.demo.photos import photo_sources
from slipstream.pipelines import (
    DecodeCenterCrop,
    DecodeDirectRandomResizedCrop,
    DecodeOnly,
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    DecodeResizeCrop,
    DecodeYUVPlanes,
    ImagePipeline,
    Normalize,
    byol,
    dino,
    ibot,
    ipcl,
    lejepa,
    multicrop,
    simclr,
    supervised_train,
    supervised_val,
)
from slipstream.sampling.crops import flips
from slipstream.vis import contact_sheet, draw_windows

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
QUALITY = 80
PRESETS: dict[str, Callable[[], dict[str, ImagePipeline]]] = {
    "supervised_train": supervised_train,
    "supervised_val": supervised_val,
    "simclr": simclr,
    "byol": byol,
    "dino": dino,
    "dino_yoked": lambda: dino(yoked=True),
    "ipcl": ipcl,
    "lejepa": lejepa,
    "multicrop": multicrop,
}
# The photos (class folder -> photo): a portrait cut of the astronaut, the rest as shipped.
PHOTOS = ("astronaut", "cat", "coffee", "motorcycle")
# Box / tile colors, one per window.
COLORS = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
]


# ------------------------------------------------------------------ data
def write_photo_folder(out: Path) -> Path:
    """``out/<class>/<class>.jpg``: the photos of ``PHOTOS`` as JPEGs (quality 90, 4:2:0)."""
    sources = photo_sources()
    for name in PHOTOS:
        pixels = sources[name]()
        if name == "astronaut":
            pixels = pixels[:, 96:416]  # 512 x 320: a portrait
        (out / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(out / name / f"{name}.jpg", quality=90)
    # The cat again as a 4:4:4 JPEG (full-resolution chroma), for the YUV420 picture.
    (out / "cat_444").mkdir(exist_ok=True)
    Image.fromarray(sources["cat"]()).save(out / "cat_444" / "cat.jpg", quality=90, subsampling=0)
    return out


def open_photos(work: Path) -> SlipstreamDataset:
    """The slip cache of the photo folder, built under ``work``."""
    folder = write_photo_folder(work / "photos")
    return SlipstreamDataset(folder, cache_dir=work / "cache", progress=False)


def sample_ids(dataset: SlipstreamDataset, names: tuple[str, ...]) -> list[int]:
    """The sample id of each named photo."""
    paths = [dataset.cache.string("path", i).replace("\\", "/") for i in range(len(dataset))]
    return [next(i for i, p in enumerate(paths) if f"{name}/" in p) for name in names]


def photo(dataset: SlipstreamDataset, sample: int) -> np.ndarray:
    """The full decode of one sample, ``uint8 [H, W, 3]`` (PIL)."""
    import io

    data = bytes(dataset.cache.item_bytes("image", sample))
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def run_batch(
    dataset: SlipstreamDataset, pipelines: Any, ids: list[int], *, epoch: int = 0, **options: Any
) -> tuple[SlipstreamLoader, dict]:
    """One batch of ``ids`` in order (native backend, CPU, seed ``SEED``), tensors cloned."""
    loader = SlipstreamLoader(
        dataset,
        len(ids),
        pipelines,
        seed=SEED,
        indices=ids,
        shuffle=False,
        device="cpu",
        backend="native",
        verbose=False,
        **options,
    )
    loader.set_epoch(epoch)
    batch = next(iter(loader))
    assert batch["index"].tolist() == ids, (batch["index"].tolist(), ids)
    out = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    return loader, out


def save_jpeg(picture: Image.Image | np.ndarray, path: Path) -> Path:
    """Save an RGB picture as an optimized JPEG of quality ``QUALITY``."""
    if not isinstance(picture, Image.Image):
        picture = Image.fromarray(picture)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.convert("RGB").save(path, quality=QUALITY, optimize=True)
    return path


# ------------------------------------------------------------------ presets
def tiles(batch: dict, names: list[str], tile: int) -> torch.Tensor:
    """``[B * K, 3, tile, tile]`` floats: each sample's K views ``names``, in order."""
    views = []
    for name in names:
        images = batch[name].float()
        views.append(F.interpolate(images, size=(tile, tile), mode="bilinear", antialias=True))
    return torch.stack(views, dim=1).flatten(0, 1)


def preset_picture(
    dataset: SlipstreamDataset, ids: list[int], name: str, out: Path, *, tile: int, max_width: int
) -> Path:
    """Run preset ``name`` on samples ``ids``; write ``out/presets/<name>.jpg``."""
    pipelines = PRESETS[name]()
    tile = min(tile, max_width // len(pipelines) - 2)
    _, batch = run_batch(dataset, pipelines, ids)
    grid = tiles(batch, list(pipelines), tile)
    # rows = samples, columns = views (one row of samples for single-view presets)
    columns = len(pipelines) if len(pipelines) > 1 else len(ids)
    with tempfile.TemporaryDirectory() as tmp:
        png = contact_sheet(grid, Path(tmp) / "sheet.png", columns=columns, normalize=Normalize())
        return save_jpeg(Image.open(png), out / "presets" / f"{name}.jpg")


def ibot_masks_picture(dataset: SlipstreamDataset, ids: list[int], out: Path, *, tile: int) -> Path:
    """The two global crops of iBOT per sample, with their masked patches tinted red."""
    views = ibot(num_local=1, augment=False, normalize=False, dtype="uint8")
    _, batch = run_batch(dataset, views, ids)
    pictures = []
    for sample in range(len(ids)):
        for k in range(2):
            image = batch[f"global_{k}"][sample].permute(1, 2, 0).numpy().astype(np.float32)
            mask = batch[f"mask_{k}"][sample].numpy()
            patch = image.shape[0] // mask.shape[0]
            full = np.kron(mask, np.ones((patch, patch), dtype=bool))
            image[full] = 0.45 * image[full] + 0.55 * np.array([230.0, 25.0, 75.0])
            image[::patch, :] *= 0.6  # the patch grid
            image[:, ::patch] *= 0.6
            pictures.append(torch.from_numpy(image.round().astype(np.uint8)).permute(2, 0, 1))
    grid = F.interpolate(
        torch.stack(pictures).float(), size=(tile, tile), mode="bilinear", antialias=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        png = contact_sheet(grid.round().to(torch.uint8), Path(tmp) / "s.png", columns=4)
        return save_jpeg(Image.open(png), out / "presets" / "ibot_masks.jpg")


# ------------------------------------------------------------------ crops
def crop_modes() -> dict[str, tuple[Any, list[int]]]:
    """Picture name -> (the loader's ``pipelines``, the epochs whose windows are drawn).

    Single-view modes draw one window per epoch (how a sample's crop changes from epoch to
    epoch); multi-view modes draw every view of epoch 0.
    """
    epochs = [0, 1, 2, 3]

    def one(crop: Any) -> dict[str, ImagePipeline]:
        return {"image": ImagePipeline(crop, dtype="uint8")}

    def two(*crop_specs: Any) -> dict[str, ImagePipeline]:
        return {
            f"crop_{k}": ImagePipeline(c, dtype="uint8", field="image")
            for k, c in enumerate(crop_specs)
        }

    ssl = {"augment": False, "normalize": False, "dtype": "uint8"}
    return {
        "random_resized_crop": (one(DecodeRandomResizedCrop(224)), epochs),
        "direct_random_resized_crop": (one(DecodeDirectRandomResizedCrop(224)), epochs),
        "center_crop": (
            two(DecodeCenterCrop(224), DecodeCenterCrop(224, crop_ratio=224 / 256)),
            [0],
        ),
        "resize_crop": (two(DecodeResizeCrop(256, 224), DecodeResizeCrop(320, 224)), [0]),
        "resize_short_crop_long": (
            one(DecodeRandomResizeShortCropLong(224, x_range=(0, 1), y_range=(0, 1))),
            epochs,
        ),
        "multicrop": (multicrop(**ssl), [0]),
        "multicrop_yoked": (multicrop(yoked=True, **ssl), [0]),
    }


def loader_windows(loader: SlipstreamLoader, name: str, sample: int, h: int, w: int, epoch: int):
    """The window and flip of output ``name`` for one sample, as the prefetcher draws them."""
    pipeline = loader.pipelines[name]
    key = {"seed": SEED, "epoch": epoch, "view": pipeline.view}
    ids = np.array([sample])
    window = pipeline.crop.windows(np.array([h]), np.array([w]), ids, **key)[0]
    flip = pipeline.flip_probability > 0 and bool(
        flips(ids, probability=pipeline.flip_probability, **key)[0]
    )
    return window, flip


def check_tile(full: np.ndarray, window: np.ndarray, flip: bool, tile: torch.Tensor, what: str):
    """The loader's decoded ``tile`` is ``window`` of the full decode, resized (and flipped)."""
    y, x, h, w = (int(v) for v in window)
    expected = Image.fromarray(full[y : y + h, x : x + w]).resize(
        (tile.shape[2], tile.shape[1]), Image.Resampling.BILINEAR
    )
    expected = np.asarray(expected, dtype=np.float32)
    if flip:
        expected = expected[:, ::-1]
    error = np.abs(tile.permute(1, 2, 0).numpy().astype(np.float32) - expected).mean()
    if error > 6.0:
        raise AssertionError(f"{what}: the drawn window is not the loader's crop ({error:.1f})")


def framed(tile: torch.Tensor, size: int, color: tuple[int, int, int], border: int = 3):
    """One output resized to ``size`` inside a ``border``-pixel frame of ``color``."""
    pixels = F.interpolate(tile[None].float(), size=(size, size), mode="bilinear", antialias=True)[
        0
    ]
    out = np.empty((size + 2 * border, size + 2 * border, 3), dtype=np.uint8)
    out[:] = color
    out[border:-border, border:-border] = pixels.round().clamp(0, 255).byte().permute(1, 2, 0)
    return out


def crop_picture(
    dataset: SlipstreamDataset,
    ids: list[int],
    name: str,
    out: Path,
    *,
    height: int,
    tile: int,
) -> Path:
    """Boxes of one crop mode on each photo, and the loader's output of each box."""
    pipelines, epochs = crop_modes()[name]
    rows = []
    outputs: dict[int, dict] = {}
    loader = None
    for epoch in epochs:
        loader, outputs[epoch] = run_batch(dataset, pipelines, ids, epoch=epoch)
    assert loader is not None
    names = list(loader.pipelines)
    yoked = name.endswith("yoked")
    for row, sample in enumerate(ids):
        full = photo(dataset, sample)
        h, w = full.shape[:2]
        windows, frames = [], []
        for epoch in epochs:
            for output in names:
                window, flip = loader_windows(loader, output, sample, h, w, epoch)
                decoded = outputs[epoch][output][row]
                check_tile(full, window, flip, decoded, f"{name} {output} epoch {epoch}")
                frames.append(framed(decoded, tile, COLORS[len(windows) % len(COLORS)]))
                windows.append(window)
        boxes = np.asarray(
            draw_windows(full, np.stack(windows), COLORS, height=height, centers=yoked)
        )
        per_row = len(frames) if len(frames) <= 3 else -(-len(frames) // 2)
        side = frames[0].shape[0]
        grid = np.full((height, per_row * (side + 4)), 255, dtype=np.uint8)[..., None].repeat(3, 2)
        for k, frame in enumerate(frames):
            r, c = divmod(k, per_row)
            grid[r * (side + 4) : r * (side + 4) + side, c * (side + 4) : c * (side + 4) + side] = (
                frame
            )
        rows.append(np.concatenate([boxes, np.full((height, 8, 3), 255, np.uint8), grid], axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.full((len(rows) * (height + 6), width, 3), 255, dtype=np.uint8)
    for k, r in enumerate(rows):
        sheet[k * (height + 6) : k * (height + 6) + height, : r.shape[1]] = r
    return save_jpeg(sheet, out / "crops" / f"{name}.jpg")


# ------------------------------------------------------------------ YUV420
def yuv420_picture(
    dataset: SlipstreamDataset, sample: int, sample_444: int, out: Path, *, height: int
) -> Path:
    """A photo's Y, U, V planes and its round trip through YUV420, against the JPEG decode.

    Row 1 (a 4:2:0 JPEG, the usual kind): the JPEG decode, the Y plane, U above V (half
    size: one chroma sample per 2 x 2 pixels), the RGB decoded from the YUV420 companion
    (bit-identical here). Row 2 (the same photo as a 4:4:4 JPEG, full-resolution chroma):
    its JPEG decode, the absolute difference to its YUV420 round trip x 24, and a 4x zoom of
    the eye (JPEG decode left, YUV420 round trip right).
    """
    ids = [sample, sample_444]
    _, jpeg = run_batch(dataset, {"image": DecodeOnly()}, ids)
    _, yuv = run_batch(dataset, {"image": DecodeOnly()}, ids, image_format="yuv420")
    _, planes = run_batch(dataset, {"image": DecodeYUVPlanes()}, ids, image_format="yuv420")
    rgb, rgb_444 = (t.permute(1, 2, 0).numpy() for t in jpeg["image"])
    back, back_444 = (t.permute(1, 2, 0).numpy() for t in yuv["image"])
    y_plane, u_plane, v_plane = (p.numpy() for p in planes["image"][0])
    # What docs/yuv420.md says: a 4:2:0 JPEG round-trips exactly, a 4:4:4 one does not.
    if not np.array_equal(rgb, back) or np.array_equal(rgb_444, back_444):
        raise AssertionError("the YUV420 round trips are not what docs/yuv420.md describes")
    white = 255

    def show(pixels: np.ndarray, rows: int) -> np.ndarray:
        picture = Image.fromarray(pixels).convert("RGB")
        size = (round(pixels.shape[1] * rows / pixels.shape[0]), rows)
        return np.asarray(picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=None))

    def hstack(*panels: np.ndarray) -> np.ndarray:
        gap = np.full((panels[0].shape[0], 6, 3), white, np.uint8)
        return np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)

    half_u, half_v = show(u_plane, height // 2 - 3), show(v_plane, height // 2 - 3)
    chroma = np.concatenate([half_u, np.full((6, *half_u.shape[1:]), white, np.uint8), half_v])
    difference = np.abs(rgb_444.astype(np.int16) - back_444.astype(np.int16))
    difference = (difference * 24).clip(0, 255).astype(np.uint8)
    y0, x0, side = 98, 155, 40  # the cat's left eye (4x)
    zoom = [
        np.asarray(
            Image.fromarray(a[y0 : y0 + side, x0 : x0 + side]).resize(
                (height, height), Image.Resampling.NEAREST
            )
        )
        for a in (rgb_444, back_444)
    ]
    row1 = hstack(show(rgb, height), show(y_plane, height), chroma, show(back, height))
    row2 = hstack(show(rgb_444, height), show(difference, height), *zoom)
    width = max(row1.shape[1], row2.shape[1])
    sheet = np.full((2 * height + 6, width, 3), white, np.uint8)
    sheet[:height, : row1.shape[1]] = row1
    sheet[height + 6 :, : row2.shape[1]] = row2
    return save_jpeg(sheet, out / "yuv420" / "planes.jpg")


# ------------------------------------------------------------------ all
def write_pictures(out: Path, work: Path, *, only: list[str] | None = None) -> list[Path]:
    """Write every docs picture under ``out`` (``presets/``, ``crops/``, ``yuv420/``).

    Args:
        out: The docs folder (or a temporary one).
        work: A scratch folder for the photos and their cache.
        only: Groups to write (``presets``, ``crops``, ``yuv420``); default all.

    Returns:
        The written paths.
    """
    groups = set(only or ("presets", "crops", "yuv420"))
    dataset = open_photos(work)
    ids = sample_ids(dataset, PHOTOS)
    written = []
    if "presets" in groups:
        for name in PRESETS:
            written.append(preset_picture(dataset, ids, name, out, tile=80, max_width=800))
        written.append(ibot_masks_picture(dataset, ids, out, tile=112))
    if "crops" in groups:
        pair = sample_ids(dataset, ("coffee", "astronaut"))
        for name in crop_modes():
            written.append(crop_picture(dataset, pair, name, out, height=176, tile=80))
    if "yuv420" in groups:
        cat, cat_444 = sample_ids(dataset, ("cat", "cat_444"))
        written.append(yuv420_picture(dataset, cat, cat_444, out, height=160))
    return written


def main() -> None:
    """Write the pictures and print their sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", nargs="*", default=None, choices=["presets", "crops", "yuv420"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for path in write_pictures(args.out, Path(work), only=args.only):
            print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
