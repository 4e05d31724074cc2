"""Cache build speed, side by side with raw file-copy anchors, in one process run.

Prints one table of images/s and MB/s (source bytes per second), median of ``--repeats``
runs interleaved round-robin (the order rotated each round, ``sync`` before each run),
each with its ratio to the fastest copy anchor:

- anchor ``cat``: ``cat`` of every source file into one file, then ``fsync`` (no checks)
- anchor python concat: ``os.read`` of every file, ``os.writev`` into one file, ``fsync``
- ``build_cache`` from the image folder (``num_workers`` default, i.e.
  :func:`~slipstream.cache.writer.default_build_workers`, and 2 reader threads)
- ``build_cache`` from a file list of the same images
- ``build_cache`` from an FFCV ``.beton`` (``--beton``), when given

Every build checks every image (compiled JPEG marker walk, Pillow only for images that
are not portable JPEGs), writes and fsyncs the cache, re-opens and checks it, renames it.
Sources are read once before timing, so they are in the page cache ("already local").
The one-time load of the compiled file reads and JPEG check (cached Numba code, once per
process) is reported in the header line, not in the rows.

Usage:
    python benchmarks/bench_build.py --data /tmp/corpus/train [--beton F] [--repeats 3]
        [--record]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slipstream.cache import build_cache
from slipstream.cache.field_writer import write_all
from slipstream.cache.writer import default_build_workers
from slipstream.readers import FfcvFile, FileListReader, ImageFolderReader
from slipstream.readers.file_samples import read_file


def _cat_anchor(paths: list[str], out: Path) -> None:
    with open(out, "wb") as f:
        for first in range(0, len(paths), 2000):
            subprocess.run(["cat", *paths[first : first + 2000]], stdout=f, check=True)
        os.fsync(f.fileno())


def _python_anchor(paths: list[str], out: Path) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for first in range(0, len(paths), 128):
            items = [read_file(p) for p in paths[first : first + 128]]
            write_all(fd, items, sum(map(len, items)))
        os.fsync(fd)
    finally:
        os.close(fd)


def _timed(run: Callable[[Path], object], scratch: Path) -> float:
    target = scratch / "out"
    os.sync()  # the last case's deletes and write-back do not land in this one
    start = time.perf_counter()
    run(target)
    seconds = time.perf_counter() - start
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="image folder (class folders)")
    parser.add_argument("--beton", type=Path, default=None, help="FFCV .beton of the same images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=None, help="where outputs go (/tmp)")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/...")
    args = parser.parse_args()

    start = time.perf_counter()
    from slipstream.cache.jpeg_scan import prepare_images
    from slipstream.readers.file_batch_io import read_files_packed

    prepare_images(read_files_packed([]), 95)  # loads the compiled code once per process
    jit_seconds = time.perf_counter() - start

    folder = ImageFolderReader(args.data)
    paths = [p for p, _ in folder.samples]
    total_bytes = sum(os.path.getsize(p) for p in paths)
    for p in paths:  # warm the page cache: "the source is already local"
        read_file(p)
    scratch = Path(tempfile.mkdtemp(prefix="bench-build-", dir=args.scratch))
    listing = scratch / "train.txt"
    listing.write_text("".join(f"{p} {label}\n" for p, label in folder.samples))

    def build(make_reader, **kwargs):
        return lambda out: build_cache(make_reader(), out, progress=False, **kwargs)

    workers = default_build_workers()
    cases: dict[str, Callable[[Path], object]] = {
        "anchor: cat files > one file + fsync": lambda out: _cat_anchor(paths, out),
        "anchor: python read + writev + fsync": lambda out: _python_anchor(paths, out),
        f"build_cache(ImageFolderReader), default workers ({workers} here)": build(
            lambda: ImageFolderReader(args.data)
        ),
        "build_cache(ImageFolderReader), num_workers=2": build(
            lambda: ImageFolderReader(args.data), num_workers=2
        ),
        "build_cache(FileListReader), default workers": build(lambda: FileListReader(listing)),
    }
    if args.beton is not None:
        cases["build_cache(FfcvFile .beton), default workers"] = build(lambda: FfcvFile(args.beton))
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    try:
        names = list(cases)
        for repeat in range(args.repeats):  # rotate the order: no case always runs first
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                seconds[name].append(_timed(cases[name], scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    rates = {name: len(paths) / statistics.median(s) for name, s in seconds.items()}
    anchor = max(rates[n] for n in rates if n.startswith("anchor"))
    lines = [
        f"{len(paths)} images, {total_bytes / 2**20:,.1f} MiB ({args.data}); "
        f"{os.cpu_count()} cores; median of {args.repeats}; compiled check load "
        f"{jit_seconds:.2f} s once per process (not in the rows)",
        "",
        "| case | images/s (runs) | median images/s | MB/s | vs fastest anchor |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in seconds.items():
        per_run = " / ".join(f"{len(paths) / s:,.0f}" for s in runs)
        rate = rates[name]
        mbps = total_bytes / statistics.median(runs) / 1e6
        lines.append(f"| {name} | {per_run} | {rate:,.0f} | {mbps:,.0f} | {rate / anchor:.2f}x |")
    table = "\n".join(lines)
    print(table)
    if args.record:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        out = Path(__file__).parent / "results" / f"build-{stamp}"
        out.with_suffix(".md").write_text(table + "\n")
        record = {"seconds": seconds, "images": len(paths), "bytes": total_bytes}
        record.update({"jit_seconds": jit_seconds, "machine": platform.platform()})
        out.with_suffix(".json").write_text(json.dumps(record, indent=2))
        print(f"recorded {out}.md")


if __name__ == "__main__":
    main()
