"""Raw bytes, no decode: slipstream's ``PrefetchingDataLoader`` vs FFCV's ``BytesDecoder``.

Same image folder, same run, random order, batch 256: each run times every loader over
``--epochs`` consecutive epochs (after one warm-up epoch, page cache warm), loaders
interleaved, and prints img/s per run, the medians and the same-run ratios. Rows:

- ``slipstream`` : ``PrefetchingDataLoader(dataset, 256, shuffle=True)`` on the slip cache
  (items checked against their stored checksums, as by default);
- ``slipstream, unchecked`` : the same with the cache's checksum table dropped (what a
  version-1 cache reads): the checksum's share of the time;
- ``FFCV`` : FFCV 1.0.2 ``Loader`` over a ``.beton`` holding each file's bytes unchanged in a
  ``BytesField`` (``BytesDecoder``; label ``IntDecoder + ToTensor``), ``num_workers=2``,
  ``OrderOption.RANDOM``, ``os_cache=True`` (only where ``import ffcv`` works);
- ``memcpy bound`` : ``image.bin`` copied a batch's worth of bytes at a time into one reused
  buffer (numpy ``copyto``), as img/s: a gather without the checksum cannot beat it.

Usage: ``python benchmarks/bench_raw_loader.py FOLDER [--work DIR] [--runs 3] [--epochs 20]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from slipstream import PrefetchingDataLoader, SlipstreamDataset


def time_epochs(make_epoch: Callable[[], Iterable[Any]], epochs: int, count: Callable) -> float:
    """Images per second over ``epochs`` consecutive epochs (after one warm-up epoch)."""
    for _ in make_epoch():
        pass
    start, images = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in make_epoch():
            images += count(batch)
    return images / (time.perf_counter() - start)


def slipstream_rate(dataset: SlipstreamDataset, batch: int, epochs: int, checked: bool) -> float:
    """img/s of the raw loader (checksums checked, or the table dropped for this run)."""
    cache = dataset.cache
    saved = dict(cache._checksums)
    if not checked:
        cache._checksums.clear()
    try:
        loader = PrefetchingDataLoader(dataset, batch, shuffle=True)
        rate = time_epochs(lambda: loader, epochs, lambda b: len(b["indices"]))
        loader.close()
        return rate
    finally:
        cache._checksums.update(saved)


def ffcv_rate(folder: Path, work: Path, batch: int, epochs: int) -> float | None:
    """img/s of FFCV's raw-bytes loader, or None where FFCV is not installed."""
    try:
        from slipstream.bench.ffcv_anchor import make_loader
    except ImportError:
        return None
    try:
        loader = make_loader(folder, work, "raw bytes", batch, workers=2)
    except ImportError:
        return None
    return time_epochs(lambda: loader, epochs, lambda b: len(b[0]))


def memcpy_rate(dataset: SlipstreamDataset, batch: int) -> float:
    """img/s at memory-copy speed: the item file copied a batch's bytes at a time into one
    reused buffer (what a gather without the checksum could reach), best of 3."""
    source = np.asarray(dataset.cache.data("image"))
    chunk = int(source.size / len(dataset) * batch)
    target = np.empty(chunk, dtype=np.uint8)

    def copy_all() -> None:
        for start in range(0, source.size - chunk + 1, chunk):
            np.copyto(target, source[start : start + chunk])

    copy_all()
    best = min(_timed(copy_all) for _ in range(3))
    return (source.size // chunk) * batch / best


def _timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    """Run the loaders ``--runs`` times, interleaved; print per-run rates and medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slipstream-bench-raw"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    dataset = SlipstreamDataset(args.folder, cache_dir=args.work / "slip", progress=False)
    mean_item = float(np.asarray(dataset.cache.meta("image")["data_size"]).mean())
    print(f"{len(dataset)} samples, mean item {mean_item / 1024:.1f} KiB, batch {args.batch}")
    rows: dict[str, list[float]] = {
        "slipstream": [],
        "slipstream, unchecked": [],
        "FFCV BytesDecoder": [],
        "memcpy bound": [],
    }
    for run in range(args.runs):
        ours = slipstream_rate(dataset, args.batch, args.epochs, checked=True)
        unchecked = slipstream_rate(dataset, args.batch, args.epochs, checked=False)
        ffcv = ffcv_rate(args.folder, args.work, args.batch, args.epochs)
        bound = memcpy_rate(dataset, args.batch)
        rows["slipstream"].append(ours)
        rows["slipstream, unchecked"].append(unchecked)
        rows["memcpy bound"].append(bound)
        if ffcv is not None:
            rows["FFCV BytesDecoder"].append(ffcv)
        ratio = f", ours/FFCV {ours / ffcv:.2f}x" if ffcv else ""
        print(
            f"run {run + 1}: slipstream {ours:,.0f}, unchecked {unchecked:,.0f}, "
            f"FFCV {ffcv or 0:,.0f}, memcpy {bound:,.0f} img/s{ratio}"
        )
    print("\n| loader | img/s per run | median img/s | median same-run ratio to FFCV |")
    print("| --- | --- | --- | --- |")
    ffcv_runs = rows["FFCV BytesDecoder"]
    for name, rates in rows.items():
        if not rates:
            print(f"| {name} | not installed | | |")
            continue
        ratios = [r / f for r, f in zip(rates, ffcv_runs, strict=False)] if ffcv_runs else []
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "n/a"
        per_run = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"| {name} | {per_run} | {statistics.median(rates):,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
