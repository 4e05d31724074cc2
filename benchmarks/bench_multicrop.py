"""Multi-crop decode: a sample's views decoded together vs one decode per view, same run.

LeJEPA-style views (2 x 224 at scale 0.3-1, 4 x 96 at scale 0.05-0.3, keyed RRC windows
and flips) of every image of a slip cache, batch 256, all cores, into preallocated uint8
buffers. "per view" calls the batch kernel once per view; "together" calls it once
with all 6 views (``[B, 6, 4]`` windows, the loader's decode group for one field), where
views sharing a DCT scale, whatever their output size, share one entropy decode. Both
give identical pixels (checked on the first batch).
Rounds alternate the two; the table gives each round's img/s (images, 6 views each) and the
ratio.

Usage:
    python benchmarks/bench_multicrop.py --data /path/to/imagefolder_or_cache [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from slipstream import SlipstreamDataset
from slipstream.cache.gather import gather_bytes
from slipstream.native import NativeDecoder
from slipstream.sampling import crops, epoch_order

BATCH = 256
GROUPS = (  # (output size, crop scale, views)
    (224, (0.3, 1.0), 2),
    (96, (0.05, 0.3), 4),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    cache_root = Path(tempfile.gettempdir()) / "slipstream-bench" / "caches"
    dataset = SlipstreamDataset(args.data, cache_dir=cache_root)
    cache = dataset.cache
    data = np.asarray(cache.data("image"))
    meta = cache.meta("image")
    pointers, sizes = (
        np.ascontiguousarray(meta["data_ptr"]),
        np.ascontiguousarray(meta["data_size"]),
    )
    heights, widths = np.asarray(meta["height"]), np.asarray(meta["width"])
    decoder = NativeDecoder(args.threads)

    ids_all = epoch_order(len(cache), seed=0, epoch=0)
    batches = []
    for start in range(0, len(ids_all) - BATCH + 1, BATCH):
        ids = ids_all[start : start + BATCH]
        buffer = np.empty(int(sizes[ids].sum()), np.uint8)
        offsets = np.zeros(BATCH, np.uint64)
        gather_bytes(data, pointers[ids], sizes[ids], buffer, offsets)
        groups, view = [], 0
        for size, scale, count in GROUPS:
            windows = np.stack(
                [
                    crops.random_resized_crop(
                        heights[ids], widths[ids], ids, seed=0, epoch=0, view=view + k, scale=scale
                    )
                    for k in range(count)
                ],
                axis=1,
            )
            flips = np.stack(
                [crops.flips(ids, seed=0, epoch=0, view=view + k) for k in range(count)], axis=1
            )
            view += count
            groups.append((size, np.ascontiguousarray(windows), np.ascontiguousarray(flips)))
        batches.append((buffer, offsets, sizes[ids].astype(np.uint64), groups))
    outs = {
        size: [np.empty((BATCH, size, size, 3), np.uint8) for _ in range(count)]
        for size, _, count in GROUPS
    }

    def per_view() -> None:
        for buffer, offsets, item_sizes, groups in batches:
            for size, windows, flips in groups:
                for k, out in enumerate(outs[size]):
                    decoder.decode_crop_batch(
                        buffer,
                        offsets,
                        item_sizes,
                        np.ascontiguousarray(windows[:, k]),
                        np.ascontiguousarray(flips[:, k]),
                        out,
                    )

    all_outs = [out for size, _, _ in GROUPS for out in outs[size]]

    def together() -> None:  # every view of a sample in one call: the loader's decode group
        for buffer, offsets, item_sizes, groups in batches:
            windows = np.ascontiguousarray(np.concatenate([g[1] for g in groups], axis=1))
            flips = np.ascontiguousarray(np.concatenate([g[2] for g in groups], axis=1))
            decoder.decode_views_batch(buffer, offsets, item_sizes, windows, flips, all_outs)

    # same pixels both ways (first batch)
    buffer, offsets, item_sizes, groups = batches[0]
    for size, windows, flips in groups:
        decoder.decode_views_batch(buffer, offsets, item_sizes, windows, flips, outs[size])
        together_pixels = [out.copy() for out in outs[size]]
        for k, out in enumerate(outs[size]):
            decoder.decode_crop_batch(
                buffer, offsets, item_sizes, np.ascontiguousarray(windows[:, k]),
                np.ascontiguousarray(flips[:, k]), out,
            )  # fmt: skip
            assert np.array_equal(out, together_pixels[k]), f"view {k} of size {size} differs"

    images = len(batches) * BATCH
    lines = [
        f"{images} images x 6 views (2x224 + 4x96), batch {BATCH}, {args.threads} threads",
        "| round | per view img/s | together img/s | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    ratios = []
    for r in range(args.rounds):
        rates = []
        for run in (per_view, together):
            start = time.perf_counter()
            run()
            rates.append(images / (time.perf_counter() - start))
        ratios.append(rates[1] / rates[0])
        lines.append(f"| {r + 1} | {rates[0]:,.0f} | {rates[1]:,.0f} | {ratios[-1]:.2f} |")
    lines.append(f"| median | | | {statistics.median(ratios):.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
