"""Cold-cache reads: quasi-random vs random epoch order through ``PrefetchingDataLoader``.

Four configurations: each order plain (the gather's page faults read on demand) and with
``read_ahead=True`` (``madvise(MADV_WILLNEED)`` hints: per item for random, per block of
neighbouring samples for quasi-random).

Builds a slip cache of ``--gb`` GB from generated noisy JPEGs (``--distinct`` different
files, hard-linked many times into an image folder, so the folder costs no disk), then per
run and order: evicts the cache's files from the page cache, and reads ``--batches``
batches (default: a whole epoch) of raw bytes in that order. Orders alternate which goes
first. Prints img/s and MB/s per run, the medians and the same-run ratio quasi/random,
then deletes everything it wrote (unless ``--keep``).

Eviction: ``--drop file`` (default) is ``posix_fadvise(POSIX_FADV_DONTNEED)`` on the
cache's files, after which the bench checks with ``mincore`` that none of ``image.bin`` is
resident; ``--drop global`` is ``sync; echo 1 > /proc/sys/vm/drop_caches`` (root; also
evicts everybody else's files on a shared machine).

Usage: ``python benchmarks/bench_order_cold.py [--gb 3] [--runs 3] [--work DIR]``
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import mmap
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from slipstream import PrefetchingDataLoader, SlipstreamDataset


def make_folder(work: Path, gb: float, distinct: int, seed: int = 0) -> tuple[Path, int]:
    """An image folder of hard links to ``distinct`` noisy JPEGs, ``gb`` GB in all."""
    rng = np.random.default_rng(seed)
    sources = work / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(distinct):
        h, w = int(rng.integers(300, 400)), int(rng.integers(400, 500))
        base = rng.integers(0, 256, (1, 1, 3)) + np.linspace(0, 60, w)[None, :, None]
        pixels = np.clip(base + rng.normal(0, 24, (h, w, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        path = sources / f"{k:04d}.jpg"
        path.write_bytes(buffer.getvalue())
        files.append((path, len(buffer.getvalue())))
    folder = work / "folder"
    total, i = 0, 0
    while total < gb * 1e9:
        path, size = files[i % distinct]
        target = folder / f"c{i % 10}" / f"{i:07d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
        total, i = total + size, i + 1
    return folder, total


def evict(paths: list[Path], how: str) -> None:
    """Drop ``paths`` from the page cache (``how``: "file" or "global")."""
    os.sync()
    if how == "global":
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache (``mincore`` on a fresh read-only mapping)."""
    size, page = path.stat().st_size, mmap.PAGESIZE
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    vector = (ctypes.c_ubyte * ((size + page - 1) // page))()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as mapped:
        array = np.frombuffer(mapped, dtype=np.uint8)  # only to learn the mapping's address
        address = array.__array_interface__["data"][0]
        status = libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vector)
        del array
    if status != 0:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return int(np.count_nonzero(np.frombuffer(vector, dtype=np.uint8) & 1)) * page


def read_rate(root: Path, config: str, batch: int, batches: int, seed: int):
    """``(img/s, MB/s)`` of reading ``batches`` batches of raw bytes in ``order``.

    The cache is opened afresh and closed after (pages mapped by a live mapping cannot be
    evicted, so no mapping may outlive a run).
    """
    order, _, hinted = config.partition(" + ")
    loader = PrefetchingDataLoader(
        SlipstreamDataset(root), batch, order=order, seed=seed, read_ahead=bool(hinted)
    )
    images = nbytes = 0
    start = time.perf_counter()
    for k, b in enumerate(loader):
        images += len(b["indices"])
        nbytes += int(b["sizes"].sum())
        if k + 1 == batches:
            break
    elapsed = time.perf_counter() - start
    loader.close()
    del loader, b
    gc.collect()
    return images / elapsed, nbytes / elapsed / 1e6


def main() -> None:
    """Build the cache, time cold reads per order, print the table, clean up."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/slipstream-bench-order"))
    parser.add_argument("--gb", type=float, default=3.0)
    parser.add_argument("--distinct", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=0, help="0: a whole epoch")
    parser.add_argument("--drop", choices=("file", "global"), default="file")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    try:
        start = time.perf_counter()
        folder, total = make_folder(args.work, args.gb, args.distinct)
        dataset = SlipstreamDataset(folder, cache_dir=args.work / "cache", progress=False)
        root = Path(dataset.cache_path)
        image_bin = root / "image.bin"
        files = sorted(p for p in root.iterdir() if p.is_file())
        print(
            f"{len(dataset)} samples, {image_bin.stat().st_size / 1e9:.2f} GB image.bin, "
            f"mean item {total / len(dataset) / 1024:.0f} KiB, built in "
            f"{time.perf_counter() - start:.0f} s; eviction: {args.drop}"
        )
        batches = args.batches or len(PrefetchingDataLoader(dataset, args.batch))
        del dataset
        gc.collect()
        configs = [f"{o}{h}" for h in ("", " + read_ahead") for o in ("random", "quasi_random")]
        rates: dict[str, list[tuple[float, float]]] = {config: [] for config in configs}
        for run in range(args.runs):
            for order in configs if run % 2 == 0 else configs[::-1]:
                evict(files, args.drop)
                cached = resident_bytes(image_bin)
                rate = read_rate(root, order, args.batch, batches, seed=run)
                rates[order].append(rate)
                print(
                    f"run {run + 1} {order:>25}: {rate[0]:,.0f} img/s, {rate[1]:,.0f} MB/s "
                    f"(resident before: {cached / 1e6:.1f} MB)"
                )
        print("\n| order | img/s per run | MB/s per run | median img/s |")
        print("| --- | --- | --- | --- |")
        for order, values in rates.items():
            per_run = ", ".join(f"{v[0]:,.0f}" for v in values)
            mbs = ", ".join(f"{v[1]:,.0f}" for v in values)
            median = statistics.median(v[0] for v in values)
            print(f"| {order} | {per_run} | {mbs} | {median:,.0f} |")
        for hint in ("", " + read_ahead"):
            quasi, rand = rates[f"quasi_random{hint}"], rates[f"random{hint}"]
            ratios = [q[0] / r[0] for q, r in zip(quasi, rand, strict=True)]
            print(
                f"quasi_random / random{hint}, same run: "
                f"{', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x"
            )
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
        subprocess.run(["sync"], check=False)


if __name__ == "__main__":
    main()
