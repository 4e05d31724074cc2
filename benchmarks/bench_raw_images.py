"""Raw RGB items vs JPEG: RRC224 throughput on the same photos, and the PNG build rate.

The demo photos (JPEG) are built into a slip cache as they are (JPEG items), and the same
photos, decoded once and saved as PNG, into a cache of raw RGB items (pixel for pixel the
JPEGs' decode). Both are read with the native engine, random-resized-crop 224 + flip,
uint8, batch 256, all cores, side by side in one process, ``--rounds`` times (JPEG then raw
each round); a round's rate is the median over its warm epochs (the first is left out).
Also timed: building a cache from a folder of ``--png`` PNG files (was ~18 img/s when PNGs
were re-encoded as JPEG q95).

Usage:
    python benchmarks/bench_raw_images.py [--images 1000] [--epochs 3] [--rounds 3]
        [--png 400] [--record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.cache import build_cache
from slipstream.demo import make_demo_folder
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline
from slipstream.readers import ImageFolderReader

BATCH = 256


def png_folder(photos: Path, out: Path, count: int | None) -> Path:
    """The first ``count`` photos (all: None) decoded and saved as PNG, same class folders."""
    if out.is_dir():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    for path in files[:count]:
        target = tmp / path.relative_to(photos).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            img.convert("RGB").save(target)
    os.rename(tmp, out)
    return out


def epoch_rates(cache: Path, epochs: int, threads: int) -> list[float]:
    """img/s of each epoch of RRC224 + flip (native engine, uint8)."""
    pipelines = {
        "image": ImagePipeline(DecodeRandomResizedCrop(224), flip_probability=0.5, dtype="uint8")
    }
    loader = SlipstreamLoader(
        SlipstreamDataset(cache), BATCH, pipelines, device="cpu", num_workers=threads
    )
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for batch in loader:
            n += len(batch["image"])
        rates.append(n / (time.perf_counter() - start))
    loader.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--png", type=int, default=400, help="PNG files of the build timing")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "slip-raw")
    parser.add_argument("--record", action="store_true", help="print the results as Markdown")
    args = parser.parse_args()
    work = args.work
    photos = make_demo_folder(work / "photos", args.images)
    jpeg_cache = build_cache(ImageFolderReader(photos), work / "jpeg.slip", progress=False)
    pngs = png_folder(photos, work / "png", None)
    raw_cache = build_cache(ImageFolderReader(pngs), work / "raw.slip", progress=False)

    few = png_folder(photos, work / f"png{args.png}", args.png)
    shutil.rmtree(work / "png-build.slip", ignore_errors=True)
    start = time.perf_counter()
    build_cache(ImageFolderReader(few), work / "png-build.slip", progress=False)
    build_rate = args.png / (time.perf_counter() - start)

    rows = []
    for r in range(args.rounds):
        jpeg = statistics.median(epoch_rates(jpeg_cache, args.epochs, args.threads)[1:])
        raw = statistics.median(epoch_rates(raw_cache, args.epochs, args.threads)[1:])
        rows.append((jpeg, raw))
        print(f"round {r + 1}: JPEG {jpeg:8,.0f} img/s  raw {raw:8,.0f} img/s  {raw / jpeg:.2f}x")
    jpeg_med = statistics.median(j for j, _ in rows)
    raw_med = statistics.median(r for _, r in rows)
    jpeg_mib, raw_mib = ((c / "image.bin").stat().st_size / 2**20 for c in (jpeg_cache, raw_cache))
    lines = [
        f"{args.images} demo photos, RRC224 + flip, uint8, batch {BATCH}, native engine, "
        f"{args.threads} threads, {args.epochs} epochs per run (first left out)",
        "",
        "| round | JPEG cache img/s | raw cache img/s | raw / JPEG |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {i + 1} | {j:,.0f} | {r:,.0f} | {r / j:.2f}x |" for i, (j, r) in enumerate(rows)),
        f"| median | {jpeg_med:,.0f} | {raw_med:,.0f} | {raw_med / jpeg_med:.2f}x |",
        "",
        f"image.bin: JPEG {jpeg_mib:,.0f} MiB, raw {raw_mib:,.0f} MiB",
        f"build of a folder of {args.png} PNGs (raw items): {build_rate:,.0f} img/s",
    ]
    print("\n".join(lines))
    if args.record:
        print("\ncommand: python benchmarks/bench_raw_images.py " + " ".join(
            f"--{k} {v}" for k, v in (("images", args.images), ("epochs", args.epochs),
                                        ("rounds", args.rounds), ("png", args.png))
        ))  # fmt: skip


if __name__ == "__main__":
    main()
