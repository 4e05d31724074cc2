"""JPEG field vs its YUV420 companion, side by side in one process run.

For the same images: DecodeRandomResizedCrop 224 + flip, uint8 CPU output, batch 256, all cores,
through ``SlipstreamLoader`` with ``image_format="jpeg"`` and ``"yuv420"`` on each backend
(``native``; ``dali`` with ``decode_device="cpu"``, slipstream's DALI operator, where DALI is
installed), in alternating rounds (img/s = median of the warm epochs of a round; ratios are
against native JPEG in the same round); then the raw gather throughput of both fields (the
prefetcher's Numba gather, no decode) and their sizes.

Usage:
    python benchmarks/bench_yuv420.py [--data /tmp/corpus/train] [--rounds 3] [--epochs 3]
        [--backends native,dali]

The reference corpus: ``../shared/tools/make_photo_corpus.py OUT --n 5000``, ``--data
OUT/train``; its slip cache goes under ``--cache-root``, the companion inside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.cache.gather import gather_bytes
from slipstream.cache.yuv420 import build_yuv420
from slipstream.decode import default_backend
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline
from slipstream.sampling import epoch_order

BATCH = 256
FORMATS = ("jpeg", "yuv420")
BASELINE = ("native", "jpeg")
"""The run every other one is compared with, round by round."""


def loader_rates(loader: SlipstreamLoader, epochs: int) -> list[float]:
    """img/s of each epoch."""
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for batch in loader:
            count += batch["image"].shape[0]
        rates.append(count / (time.perf_counter() - start))
    return rates


def gather_rate(data: np.ndarray, meta: np.ndarray, epochs: int) -> tuple[float, float]:
    """Median ``(img/s, GB/s)`` of gathering every item in epoch order, batch by batch."""
    pointers = np.ascontiguousarray(meta["data_ptr"])
    sizes = np.ascontiguousarray(meta["data_size"])
    buffer = np.empty(int(np.sort(sizes)[-BATCH:].sum()), dtype=np.uint8)
    offsets = np.zeros(BATCH, dtype=np.uint64)
    rates, speeds = [], []
    for epoch in range(epochs):
        ids = epoch_order(len(meta), seed=0, epoch=epoch)
        start = time.perf_counter()
        for b in range(0, len(ids), BATCH):
            batch = ids[b : b + BATCH]
            gather_bytes(data, pointers[batch], sizes[batch], buffer, offsets[: len(batch)])
        seconds = time.perf_counter() - start
        rates.append(len(ids) / seconds)
        speeds.append(float(sizes.sum()) / seconds / 1e9)
    return statistics.median(rates), statistics.median(speeds)


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/corpus/train")
    parser.add_argument("--cache-root", default="/tmp/slipstream-bench/caches")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="per round; the first is cold")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--backends",
        default="native,dali" if default_backend() == "dali" else "native",
        help="comma-separated loader backends (dali: its CPU operator); default: %(default)s",
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "native" not in backends:
        backends.insert(0, "native")  # the baseline of every ratio

    dataset = SlipstreamDataset(args.data, cache_dir=args.cache_root)
    start = time.perf_counter()
    companion = build_yuv420(dataset.cache, "image")
    print(f"{dataset}\nYUV420 companion ready in {time.perf_counter() - start:.1f} s")
    pipeline = {
        "image": ImagePipeline(DecodeRandomResizedCrop(224), flip_probability=0.5, dtype="uint8")
    }
    runs = [(backend, fmt) for backend in backends for fmt in FORMATS]
    loaders = {
        (backend, fmt): SlipstreamLoader(
            dataset,
            BATCH,
            pipeline,
            seed=0,
            device="cpu",
            backend=backend,
            decode_device="cpu",
            num_workers=args.threads,
            image_format=fmt,
        )
        for backend, fmt in runs
    }
    rounds: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for r in range(args.rounds):
        for run in runs:
            rates = loader_rates(loaders[run], args.epochs)
            rounds[run].append(statistics.median(rates[1:] or rates))
        print(
            f"round {r + 1}: RRC224+flip "
            + ", ".join(f"{b} {f} {rounds[(b, f)][-1]:,.0f}" for b, f in runs)
            + " img/s"
        )

    jpeg_meta = dataset.cache.meta("image")
    raw = {
        "jpeg": gather_rate(np.asarray(dataset.cache.data("image")), jpeg_meta, args.epochs),
        "yuv420": gather_rate(np.asarray(companion.data), companion.meta, args.epochs),
    }
    print(f"\n{args.threads} threads, batch {BATCH}, {len(dataset)} images, {args.rounds} rounds")
    print("RRC224+flip, uint8 CPU output; ratio: median of same-round ratios to native jpeg")
    print("| backend | format | img/s, per round | median | vs native jpeg |")
    print("| --- | --- | ---: | ---: | ---: |")
    for run in runs:
        ratios = [v / b for v, b in zip(rounds[run], rounds[BASELINE], strict=True)]
        print(
            f"| {run[0]} | {run[1]} | "
            + " / ".join(f"{v:,.0f}" for v in rounds[run])
            + f" | {statistics.median(rounds[run]):,.0f} | {statistics.median(ratios):.2f} |"
        )
    print("\n| | jpeg | yuv420 | yuv420 / jpeg |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| raw gather img/s | {raw['jpeg'][0]:,.0f} | {raw['yuv420'][0]:,.0f} | "
        f"{raw['yuv420'][0] / raw['jpeg'][0]:.2f} |"
    )
    print(
        f"| raw gather GB/s | {raw['jpeg'][1]:.2f} | {raw['yuv420'][1]:.2f} | "
        f"{raw['yuv420'][1] / raw['jpeg'][1]:.2f} |"
    )
    print(
        f"| field size MB | {companion.source_bytes / 1e6:,.1f} | {companion.nbytes / 1e6:,.1f} | "
        f"{companion.size_ratio:.2f} |"
    )


if __name__ == "__main__":
    main()
