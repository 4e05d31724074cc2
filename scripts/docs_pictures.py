"""Write one picture of a batch per pipeline preset into docs/presets/ (see docs/presets.md).

Each preset runs on the demo photos through ``SlipstreamLoader`` (native backend, CPU) with
its default parameters; the picture shows a few samples (rows) x the preset's views
(columns; one row of samples for the single-view supervised presets), every view
un-normalized and resized to one tile size for display (``--tile`` pixels, smaller for
presets with many views so a row stays within ``--max-width``).

Run: ``python scripts/preset_pictures.py [--out docs/presets] [--samples 4] [--tile 96]``
(default data: the 640 demo photos the examples use).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.nn import functional as F

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import (
    ImagePipeline,
    Normalize,
    byol,
    dino,
    ipcl,
    lejepa,
    simclr,
    supervised_train,
    supervised_val,
)
from slipstream.vis import contact_sheet

ROOT = Path(__file__).resolve().parents[1]
PRESETS: dict[str, Callable[[], dict[str, ImagePipeline]]] = {
    "supervised_train": supervised_train,
    "supervised_val": supervised_val,
    "simclr": simclr,
    "byol": byol,
    "dino": dino,
    "dino_yoked": lambda: dino(yoked=True),
    "ipcl": ipcl,
    "lejepa": lejepa,
}
# One sample of each of these demo classes (colorful ones first).
CLASSES = ("astronaut", "coffee", "motorcycle", "cat", "rocket", "tissue", "retina", "hubble")


def pick_samples(dataset: SlipstreamDataset, count: int) -> list[int]:
    """The first sample of each of ``count`` demo classes (by path), in ``CLASSES`` order."""
    paths = [dataset.cache.string("path", i) for i in range(len(dataset))]
    picked = []
    for name in CLASSES[:count]:
        picked.append(next(i for i, p in enumerate(paths) if f"{name}/" in p.replace("\\", "/")))
    return picked


def tiles(batch: dict, pipelines: dict[str, ImagePipeline], tile: int) -> torch.Tensor:
    """``[B * K, 3, tile, tile]`` normalized floats: each sample's K views, in preset order."""
    views = []
    for name in pipelines:
        images = batch[name].float()
        views.append(F.interpolate(images, size=(tile, tile), mode="bilinear", antialias=True))
    return torch.stack(views, dim=1).flatten(0, 1)


def write_picture(
    dataset: SlipstreamDataset,
    ids: list[int],
    name: str,
    out: Path,
    *,
    tile: int,
    max_width: int,
    quality: int,
    seed: int,
) -> Path:
    """Run preset ``name`` on samples ``ids``; write ``out/<name>.jpg``."""
    pipelines = PRESETS[name]()
    tile = min(tile, max_width // len(pipelines) - 2)
    loader = SlipstreamLoader(
        dataset,
        len(ids),
        pipelines,
        seed=seed,
        indices=ids,
        shuffle=False,
        device="cpu",
        backend="native",
    )
    batch = next(iter(loader))
    order = batch["index"].tolist()
    assert order == ids, (order, ids)
    grid = tiles(batch, pipelines, tile)
    with tempfile.TemporaryDirectory() as tmp:
        # rows = samples, columns = views (one row of samples for single-view presets)
        columns = len(pipelines) if len(pipelines) > 1 else len(ids)
        png = contact_sheet(grid, Path(tmp) / "sheet.png", columns=columns, normalize=Normalize())
        path = out / f"{name}.jpg"
        Image.open(png).save(path, quality=quality, optimize=True)
    return path


def main() -> None:
    """Write every preset's picture and print its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="image folder or cache")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "presets")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--tile", type=int, default=96)
    parser.add_argument("--max-width", type=int, default=800)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(PRESETS))
    args = parser.parse_args()

    if args.data is None:
        from slipstream.demo import make_demo_folder

        args.data = make_demo_folder(Path(tempfile.gettempdir()) / "slipstream-demo-photos", 640)
    dataset = SlipstreamDataset(args.data)
    ids = pick_samples(dataset, args.samples)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or PRESETS:
        path = write_picture(
            dataset,
            ids,
            name,
            args.out,
            tile=args.tile,
            max_width=args.max_width,
            quality=args.quality,
            seed=args.seed,
        )
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
