"""Torch YUV420 decode (CPU, and CUDA when present) vs the C++ YUV420 kernel vs JPEG.

Kernel level, the same windows for every path: DecodeRandomResizedCrop 224 + flip (keyed by
seed, epoch and sample id, as the loader draws them), batch 256, uint8 out. Per batch each
path gathers its items back to back (the prefetcher's Numba gather, timed for every path
alike) and decodes:

- ``jpeg``: ``NativeDecoder.decode_crop_batch`` on the JPEG field (host output);
- ``yuv420 C++``: the same call on the YUV420 companion (host output);
- ``yuv420 torch cpu``: :class:`slipstream.decode.yuv420_torch.Yuv420TorchDecoder` on the CPU;
- ``yuv420 torch cuda``: the same decoder on the GPU (only each window's source rectangle
  crosses, pinned + non_blocking); ``torch.cuda.synchronize()`` ends each timed pass, and
  nothing in the loop reads results back.

img/s = median over rounds (each round: ``--batches`` batches, after one warm-up batch).

Usage:
    python benchmarks/bench_yuv420_torch.py [--data /tmp/corpus/train] [--rounds 3]
        [--batches 8] [--paths jpeg,cpp,torch-cpu,torch-cuda]

Without ``--data`` on disk it builds a small demo folder (``--demo N`` photos).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from slipstream import SlipstreamDataset
from slipstream.cache.gather import gather_bytes
from slipstream.cache.yuv420 import build_yuv420
from slipstream.decode.yuv420_torch import Yuv420TorchDecoder
from slipstream.native import NativeDecoder
from slipstream.pipelines import DecodeRandomResizedCrop
from slipstream.sampling import epoch_order, flips

BATCH = 256
SIZE = (224, 224)


class Source:
    """One field's items (memory map + meta) and a reusable gather buffer."""

    def __init__(self, data: np.ndarray, meta: np.ndarray) -> None:
        """Size the gather buffer for the largest batch."""
        self.data = np.asarray(data)
        self.pointers = np.ascontiguousarray(meta["data_ptr"])
        self.sizes = np.ascontiguousarray(meta["data_size"])
        self.heights = np.ascontiguousarray(meta["height"]).astype(np.int32)
        self.widths = np.ascontiguousarray(meta["width"]).astype(np.int32)
        self.buffer = np.empty(int(np.sort(self.sizes)[-BATCH:].sum()), dtype=np.uint8)
        self.offsets = np.zeros(BATCH, dtype=np.uint64)

    def gather(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(buffer, offsets, sizes)`` of the batch's items, back to back."""
        n = len(ids)
        sizes = self.sizes[ids]
        gather_bytes(self.data, self.pointers[ids], sizes, self.buffer, self.offsets[:n])
        return self.buffer, self.offsets[:n], sizes


def make_paths(
    jpeg: Source, yuv: Source, threads: int, wanted: list[str]
) -> dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], None]]:
    """Path name -> ``run(ids, windows, flips)`` decoding one batch."""
    decoder = NativeDecoder(threads)
    host = np.empty((BATCH, *SIZE, 3), dtype=np.uint8)
    paths: dict[str, Callable] = {}

    def native(source: Source, fmt: str) -> Callable:
        def run(ids: np.ndarray, windows: np.ndarray, flip: np.ndarray) -> None:
            data, offsets, sizes = source.gather(ids)
            extra = (source.heights[ids], source.widths[ids]) if fmt == "yuv420" else ()
            decoder.decode_crop_batch(
                data, offsets, sizes, windows, flip, host[: len(ids)], fmt, *extra
            )

        return run

    def torch_path(device: str) -> Callable:
        dec = Yuv420TorchDecoder(device)

        def run(ids: np.ndarray, windows: np.ndarray, flip: np.ndarray) -> None:
            data, offsets, _ = yuv.gather(ids)
            dec(data, offsets, yuv.heights[ids], yuv.widths[ids], windows, flip, SIZE)

        return run

    if "jpeg" in wanted:
        paths["jpeg"] = native(jpeg, "jpeg")
    if "cpp" in wanted:
        paths["yuv420 C++"] = native(yuv, "yuv420")
    if "torch-cpu" in wanted:
        paths["yuv420 torch cpu"] = torch_path("cpu")
    if "torch-cuda" in wanted and torch.cuda.is_available():
        paths["yuv420 torch cuda"] = torch_path("cuda")
    return paths


def timed_pass(run: Callable, batches: list[tuple], cuda: bool) -> float:
    """img/s of one pass over ``batches`` (device work finished before the clock stops)."""
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for ids, windows, flip in batches:
        run(ids, windows, flip)
    if cuda:
        torch.cuda.synchronize()
    return sum(len(b[0]) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    """Run every path in alternating rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/corpus/train")
    parser.add_argument("--cache-root", default="/tmp/slipstream-bench/caches")
    parser.add_argument("--demo", type=int, default=512, help="photos when --data is missing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per round")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--paths", default="jpeg,cpp,torch-cpu,torch-cuda")
    args = parser.parse_args()
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]

    data = Path(args.data)
    if not data.exists():
        from slipstream.demo.photos import make_demo_folder

        data = Path(tempfile.mkdtemp(prefix="bench-yuv-torch-")) / "photos"
        make_demo_folder(data, args.demo, seed=0)
    dataset = SlipstreamDataset(data, cache_dir=args.cache_root, progress=False)
    companion = build_yuv420(dataset.cache, "image", progress=False)
    jpeg = Source(dataset.cache.data("image"), dataset.cache.meta("image"))
    yuv = Source(companion.data, companion.meta)

    crop = DecodeRandomResizedCrop(SIZE[0])
    ids_all = epoch_order(len(dataset), seed=0, epoch=0)
    batches = []
    for b in range(args.batches + 1):
        ids = ids_all[(b * BATCH) % len(ids_all) :][:BATCH]
        windows = crop.windows(yuv.heights[ids], yuv.widths[ids], ids, seed=0, epoch=0)
        flip = flips(ids, seed=0, epoch=0).astype(np.uint8)
        batches.append((ids, np.ascontiguousarray(windows, dtype=np.int32), flip))
    warm, timed = batches[:1], batches[1:]

    paths = make_paths(jpeg, yuv, args.threads, wanted)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for name, run in paths.items():
        timed_pass(run, warm, "cuda" in name)  # compile / allocate / cuDNN-free warm-up
    for r in range(args.rounds):
        for name, run in paths.items():
            rates[name].append(timed_pass(run, timed, "cuda" in name))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items()))

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"\n{len(dataset)} images ({data}), batch {BATCH}, RRC {SIZE[0]} + flip, uint8, "
        f"{args.threads} threads, torch {torch.__version__} ({torch.get_num_threads()} "
        f"intra-op threads), {device}"
    )
    base = statistics.median(rates["jpeg"]) if "jpeg" in rates else None
    print("| path | img/s per round | median | vs jpeg |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in rates.items():
        med = statistics.median(values)
        ratio = f"{med / base:.2f}" if base else "-"
        print(f"| {name} | {' / '.join(f'{v:,.0f}' for v in values)} | {med:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
