"""The end-to-end demo: photos -> slip cache -> 3 epochs through the loader -> a picture."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from slipstream.dataset import SlipstreamDataset
from slipstream.demo.photos import demo_folder_ready, make_demo_folder
from slipstream.loader import SlipstreamLoader
from slipstream.logs import show_progress
from slipstream.pipelines import supervised_train
from slipstream.vis import contact_sheet


def run_demo(
    out: str | Path = "slipstream_demo_output",
    *,
    num_images: int = 3000,
    epochs: int = 3,
    batch_size: int = 128,
    num_workers: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> dict[str, float]:
    """Build a cache from real photos, stream it, and save a contact sheet.

    Args:
        out: Working folder (photos, cache, and ``batch.png`` go here).
        num_images: Images cut from the bundled photographs.
        epochs: Epochs to stream.
        batch_size: Samples per batch.
        num_workers: Decode threads (default: the loader's, all cores on one rank).
        device: Output device (default: CUDA when available, else CPU).
        progress: Per-epoch progress bars (default: see :func:`slipstream.logs.show_progress`).

    Returns:
        ``{"epoch_<i>_images_per_second": rate, ...}``.
    """
    out = Path(out)
    photos = out / "photos"
    if demo_folder_ready(photos, num_images):
        print(f"[1/3] reusing {num_images} JPEGs in {photos}")
    else:
        print(f"[1/3] cutting {num_images} JPEGs from scikit-image's sample photos -> {photos}")
    photos = make_demo_folder(photos, num_images)
    cache_root = out / "cache"
    existing = {p.parent.resolve() for p in cache_root.glob("*/manifest.json")}
    print(f"[2/3] slip cache of {photos} under {cache_root}")
    dataset = SlipstreamDataset(photos, cache_dir=cache_root)
    verb = "reusing" if Path(dataset.cache_path).resolve() in existing else "built"
    print(f"      {verb} {dataset.cache_path} ({len(dataset)} samples)")
    loader = SlipstreamLoader(
        dataset,
        batch_size,
        supervised_train(224, normalize=False, dtype="uint8"),
        seed=0,
        num_workers=num_workers,
        device=device,
    )
    print(
        f"[3/3] {epochs} epochs of RandomResizedCrop 224 + flip, batch {batch_size}, "
        f"{loader.num_workers} decode threads, engine {loader.engine} "
        f"(backend {loader.backend}), device {loader.device}"
    )
    rates: dict[str, float] = {}
    show = show_progress(progress)
    first_batch = None
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        count = 0
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not show)
        for batch in bar:
            if first_batch is None:
                first_batch = batch["image"][:32].clone()
            count += batch["image"].shape[0]
        if loader.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        rates[f"epoch_{epoch}_images_per_second"] = count / elapsed
        print(f"epoch {epoch}: {count} images in {elapsed:.2f} s = {count / elapsed:,.0f} img/s")
    sheet = contact_sheet(first_batch, out / "batch.png")
    print(f"contact sheet of an augmented batch: {sheet}")
    return rates
