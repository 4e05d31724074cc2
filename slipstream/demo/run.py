"""The end-to-end demo: photos -> slip cache -> 3 epochs through the loader -> a picture."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from slipstream.dataset import SlipstreamDataset
from slipstream.demo.photos import make_demo_folder
from slipstream.loader import SlipstreamLoader
from slipstream.pipelines import supervised_train
from slipstream.vis import contact_sheet


def run_demo(
    out: str | Path = "slipstream_demo_output",
    *,
    num_images: int = 3000,
    epochs: int = 3,
    batch_size: int = 128,
    num_threads: int | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """Build a cache from real photos, stream it, and save a contact sheet.

    Args:
        out: Working folder (photos, cache, and ``batch.png`` go here).
        num_images: Images cut from the bundled photographs.
        epochs: Epochs to stream.
        batch_size: Samples per batch.
        num_threads: Decode threads (default: all cores).
        device: Output device (default: CUDA when available, else CPU).

    Returns:
        ``{"epoch_<i>_images_per_second": rate, ...}``.
    """
    out = Path(out)
    print(f"[1/3] cutting {num_images} JPEGs from scikit-image's sample photos -> {out / 'photos'}")
    photos = make_demo_folder(out / "photos", num_images)
    print(f"[2/3] building the slip cache under {out / 'cache'}")
    dataset = SlipstreamDataset(photos, cache_root=out / "cache")
    print(f"      {dataset}")
    loader = SlipstreamLoader(
        dataset,
        batch_size,
        supervised_train(224, normalize=False, dtype="uint8"),
        seed=0,
        num_threads=num_threads,
        device=device,
    )
    print(
        f"[3/3] {epochs} epochs of RandomResizedCrop 224 + flip, batch {batch_size}, "
        f"{loader.num_threads} decode threads, backend {loader.backend} "
        f"(decode on {loader.decode_device}), device {loader.device}"
    )
    rates: dict[str, float] = {}
    first_batch = None
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        count = 0
        start = time.perf_counter()
        for batch in tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False):
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
