"""Soak: memory, threads and open files over many epochs and many loaders (issue 17).

Two measurements per CPU engine (``native``, ``dali-cpu``), over one slip cache:

- ``loaders``: create a loader, iterate one epoch, delete it, ``--loaders`` times; RSS
  after each (after ``gc.collect()``; and again after ``malloc_trim(0)``, which returns the
  allocator's free memory, telling allocator retention from a real leak), and the thread
  and open-fd counts before the first and after the last.
- ``epochs``: one loader with float32 (normalized) output, ``--epochs`` epochs; RSS after
  each epoch (no ``malloc_trim``).

Usage: ``python benchmarks/bench_soak.py [CACHE_OR_FOLDER] [--images 500] [--loaders 50]
[--epochs 150] [--engines native,dali-cpu] [--json OUT.json]``. Without a path, a demo
folder of ``--images`` photos is written to a temporary directory.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import supervised_train

ENGINES: dict[str, dict[str, str]] = {
    "native": {"backend": "native"},
    "dali-cpu": {"backend": "dali", "decode_device": "cpu"},
}
MIB = 1 << 20


def rss_mib(trim: bool = False) -> float:
    """Resident set size of this process in MiB (after ``gc``; ``trim``: and malloc_trim)."""
    gc.collect()
    if trim:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss / MIB


def resources() -> dict[str, int]:
    """Live OS threads, Python threads and open file descriptors of this process."""
    gc.collect()
    return {
        "os_threads": len(os.listdir("/proc/self/task")),
        "py_threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
    }


def one_loader(dataset: SlipstreamDataset, engine: str, batch: int, dtype: str) -> int:
    """Create a loader on ``engine``, run one epoch, close it; the number of images."""
    pipelines = supervised_train(224, normalize=dtype != "uint8", dtype=dtype)
    count = 0
    with SlipstreamLoader(
        dataset, batch, pipelines, device="cpu", num_workers=2, **ENGINES[engine]
    ) as loader:
        for b in loader:
            count += len(b["image"])
    return count


def soak_loaders(dataset: SlipstreamDataset, engine: str, n: int, batch: int) -> dict[str, Any]:
    """RSS per loader created, iterated and deleted; threads and fds before and after."""
    before = resources()
    rss, trimmed = [], []
    for _ in range(n):
        one_loader(dataset, engine, batch, "uint8")
        rss.append(rss_mib())
        trimmed.append(rss_mib(trim=True))
    after = resources()
    return {"rss": rss, "rss_trimmed": trimmed, "before": before, "after": after}


def soak_epochs(dataset: SlipstreamDataset, engine: str, n: int, batch: int) -> dict[str, Any]:
    """RSS after each of ``n`` epochs of one loader with float32 output."""
    pipelines = supervised_train(224, dtype="float32")
    rss, start = [], time.perf_counter()
    with SlipstreamLoader(
        dataset, batch, pipelines, device="cpu", num_workers=2, **ENGINES[engine]
    ) as loader:
        for _ in range(n):
            for _b in loader:
                pass
            rss.append(rss_mib())
    return {"rss": rss, "seconds": time.perf_counter() - start}


def growth(values: list[float]) -> float:
    """Relative growth of the last value over the first, in percent."""
    return 100.0 * (values[-1] / values[0] - 1.0)


def main() -> None:
    """Run both soaks on each engine; print a markdown table (and the raw series as JSON)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--loaders", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--engines", default="native,dali-cpu")
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path
        if path is None:
            from slipstream.demo.photos import make_demo_folder

            path = make_demo_folder(Path(tmp) / "photos", args.images, seed=0)
        dataset = SlipstreamDataset(path, cache_dir=Path(tmp) / "caches", progress=False)
        results: dict[str, Any] = {"samples": len(dataset), "start_rss": rss_mib()}
        for engine in args.engines.split(","):
            results[engine] = {
                "loaders": soak_loaders(dataset, engine, args.loaders, args.batch),
                "epochs": soak_epochs(dataset, engine, args.epochs, args.batch),
            }
            print_engine(engine, results[engine], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def print_engine(engine: str, result: dict[str, Any], flush: bool = False) -> None:
    """One engine's rows: loaders soak and epochs soak."""
    loaders, epochs = result["loaders"], result["epochs"]
    rss, trimmed = loaders["rss"], loaders["rss_trimmed"]
    b, a = loaders["before"], loaders["after"]
    print(
        f"| {engine} | {len(rss)} loaders | RSS after 1st {rss[0]:.0f} MiB, last "
        f"{rss[-1]:.0f} MiB ({growth(rss):+.1f}%), max {max(rss):.0f} | trimmed "
        f"{trimmed[0]:.0f} -> {trimmed[-1]:.0f} MiB ({growth(trimmed):+.1f}%) | "
        f"threads {b['os_threads']} -> {a['os_threads']}, fds {b['fds']} -> {a['fds']} |",
        flush=flush,
    )
    e = epochs["rss"]
    tenth = e[min(9, len(e) - 1)]
    peak = max(e[9:] or e)
    print(
        f"| {engine} | {len(e)} epochs float32 | RSS after epoch 1 {e[0]:.0f} MiB, 10 "
        f"{tenth:.0f}, last {e[-1]:.0f} ({growth(e):+.1f}%; from epoch 10 "
        f"{100 * (e[-1] / tenth - 1):+.1f}%), max {max(e):.0f} (from epoch 10 "
        f"{100 * (peak / tenth - 1):+.1f}%) | {epochs['seconds']:.0f} s | |",
        flush=flush,
    )


if __name__ == "__main__":
    main()
