"""Reopen time of an image folder whose cache exists: the source pointer vs the fingerprint.

Writes a synthetic image folder of ``--files`` tiny valid JPEGs (the same bytes in every
file: only the file count matters here) in ``--per-folder`` files per class folder, builds
its slip cache once, then times ``SlipstreamDataset(root, verify_source=mode)`` for

- ``fast``: the source pointer's folder times (one ``os.stat`` per folder),
- ``full``: the fingerprint (the folder scan plus one ``os.stat`` per file),
- ``none``: the pointer trusted without looking at the source,

median of ``--repeats`` opens each (interleaved; the page cache is warm for all: the tree
was just written). A ``full`` open runs first so the pointer is not "racy" (its folders
were modified well before it was taken). Prints a Markdown table.

Usage:
    nice python benchmarks/bench_reopen.py [--files 200000] [--per-folder 200]
        [--root /tmp/reopen-tree] [--repeats 5] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from slipstream import SlipstreamDataset
from slipstream.readers.source_pointer import POINTER_DIR, RACY_SECONDS, pointer_is_current


def tiny_jpeg() -> bytes:
    """A valid 8 x 8 RGB JPEG (a few hundred bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def write_tree(root: Path, files: int, per_folder: int) -> float:
    """Write the tree; return the seconds it took."""
    start = time.perf_counter()
    data = tiny_jpeg()
    folders = (files + per_folder - 1) // per_folder
    written = 0
    for c in range(folders):
        folder = root / f"class{c:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(min(per_folder, files - written)):
            fd = os.open(folder / f"{j:06d}.jpg", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            written += 1
    return time.perf_counter() - start


def timed_open(root: Path, caches: Path, mode: str) -> float:
    start = time.perf_counter()
    SlipstreamDataset(root, cache_dir=caches, verify_source=mode, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--per-folder", type=int, default=200)
    parser.add_argument("--root", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the tree and its cache")
    args = parser.parse_args()

    base = args.root or Path(tempfile.mkdtemp(prefix="bench-reopen-"))
    root, caches = base / "tree", base / "caches"
    if not root.exists():
        print(f"writing {args.files:,} files into {root} ...", flush=True)
        print(f"  tree written in {write_tree(root, args.files, args.per_folder):.1f} s")
    start = time.perf_counter()
    ds = SlipstreamDataset(root, cache_dir=caches, progress=False)
    build = time.perf_counter() - start
    print(
        f"  first open (scan + fingerprint + build if missing): {build:.1f} s, {len(ds):,} samples"
    )
    time.sleep(RACY_SECONDS + 0.5)  # a tree written just now is "racy" (see source_pointer)
    timed_open(root, caches, "full")  # rewrites the pointer: not racy any more
    pointer = next((caches / POINTER_DIR).iterdir())
    record = json.loads(pointer.read_text())
    trusted = pointer_is_current(record)

    times: dict[str, list[float]] = {"fast": [], "full": [], "none": []}
    for _ in range(args.repeats):
        for mode in times:
            times[mode].append(timed_open(root, caches, mode))
    folders = len(record["watched"])
    print()
    print(f"{len(ds):,} files in {folders:,} folders; pointer trusted by the fast check: {trusted}")
    print()
    print("| verify_source | reopen, median (s) | min (s) | max (s) | vs full |")
    print("| --- | --- | --- | --- | --- |")
    full = statistics.median(times["full"])
    for mode, values in times.items():
        med = statistics.median(values)
        print(
            f"| {mode} | {med:.3f} | {min(values):.3f} | {max(values):.3f} | "
            f"{full / med:.0f}x faster |"
            if mode != "full"
            else f"| {mode} | {med:.3f} | {min(values):.3f} | {max(values):.3f} | 1x |"
        )
    if not args.keep and args.root is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
