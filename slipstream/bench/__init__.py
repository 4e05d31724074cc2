"""Loader throughput, side by side with the anchors, in one process run (``slipstream bench``).

Each run streams a few epochs and reports img/s per epoch; the table shows the median over
the warm epochs (all but the first) and each run's ratio to the anchors that ran:

- slipstream, native engine: RandomResizedCrop 224 + flip, center crop 224, raw bytes (the
  prefetcher's gather, no decode), and libjpeg-turbo full decode only (the same kernel,
  no crop or resize);
- slipstream, DALI backend (RRC and center), when nvidia-dali is installed, and on a GPU its
  nvJPEG path (``decode_device="mixed"``);
- anchors, each when installed: torchvision (ImageFolder + PIL RRC + flip, DataLoader
  workers), DALI's own CPU pipeline (readers.file + image_random_crop + resize +
  crop_mirror_normalize; on a GPU also its nvJPEG variant) and FFCV 1.0.2
  (:mod:`slipstream.bench.ffcv_anchor`).

Runs other than the slipstream ones need the source to be an image folder.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slipstream.cache.gather import gather_bytes
from slipstream.dataset import SlipstreamDataset
from slipstream.loader import SlipstreamLoader
from slipstream.native import decode_full
from slipstream.pipelines import DecodeCenterCrop, DecodeRandomResizedCrop, ImagePipeline
from slipstream.sampling import epoch_order

logger = logging.getLogger(__name__)


@dataclass
class BenchResult:
    """One run's img/s per epoch and resident memory (MiB) after each epoch."""

    rates: list[float]
    rss_mib: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median img/s of the warm epochs (every epoch but the first, when there are two+)."""
        warm = self.rates[1:] if len(self.rates) > 1 else self.rates
        return statistics.median(warm)


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import resource

        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def time_epochs(run_epoch: Callable[[], int], epochs: int) -> BenchResult:
    """Run ``run_epoch() -> images`` ``epochs`` times; img/s and RSS after each epoch."""
    rates, rss = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        count = run_epoch()
        rates.append(count / (time.perf_counter() - start))
        rss.append(_rss_mib())
    return BenchResult(rates, rss)


def time_pair_epochs(loader: Iterable[tuple[Any, Any]], epochs: int) -> BenchResult:
    """:func:`time_epochs` of a loader yielding ``(images, labels)`` (torchvision, FFCV)."""

    def run_epoch() -> int:
        count = 0
        for images, _ in loader:
            count += images.shape[0]
        return count

    return time_epochs(run_epoch, epochs)


def bench_slipstream(
    dataset: SlipstreamDataset,
    pipeline: ImagePipeline,
    epochs: int,
    threads: int,
    batch_size: int = 256,
    backend: str = "native",
    device: str = "cpu",
    decode_device: str | None = None,
) -> BenchResult:
    """Stream ``epochs`` epochs of one pipeline through a :class:`SlipstreamLoader`."""
    loader = SlipstreamLoader(
        dataset,
        batch_size,
        {"image": pipeline},
        seed=0,
        device=device,
        num_workers=threads,
        backend=backend,
        decode_device=decode_device,
    )

    def run_epoch() -> int:
        count = 0
        for batch in loader:
            count += batch["image"].shape[0]
        if device == "cuda":
            torch.cuda.synchronize()
        return count

    return time_epochs(run_epoch, epochs)


def bench_raw_bytes(dataset: SlipstreamDataset, epochs: int, batch_size: int = 256) -> BenchResult:
    """The gather alone: each batch's JPEG bytes copied into one reused buffer."""
    cache = dataset.cache
    data = np.asarray(cache.data("image"))
    meta = cache.meta("image")
    pointers = np.ascontiguousarray(meta["data_ptr"])
    sizes = np.ascontiguousarray(meta["data_size"])
    buffer = np.empty(int(np.sort(sizes)[-batch_size:].sum()), dtype=np.uint8)
    offsets = np.zeros(batch_size, dtype=np.uint64)
    epoch = [0]

    def run_epoch() -> int:
        ids = epoch_order(len(cache), seed=0, epoch=epoch[0])
        epoch[0] += 1
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            gather_bytes(data, pointers[batch], sizes[batch], buffer, offsets[: len(batch)])
        return len(ids)

    return time_epochs(run_epoch, epochs)


def bench_full_decode(dataset: SlipstreamDataset, epochs: int, threads: int) -> BenchResult:
    """libjpeg-turbo full decodes of every image (slipstream's kernel, no crop or resize)."""
    cache = dataset.cache
    items = [cache.item_bytes("image", i) for i in range(len(cache))]
    pool = ThreadPoolExecutor(threads)

    def run_epoch() -> int:
        for _ in pool.map(decode_full, items, chunksize=64):
            pass
        return len(items)

    try:
        return time_epochs(run_epoch, epochs)
    finally:
        pool.shutdown()


def bench_torchvision(folder: Path, epochs: int, workers: int, batch_size: int = 256):
    """The torchvision anchor: ImageFolder + PIL RandomResizedCrop + flip in a DataLoader."""
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.PILToTensor(),
        ]
    )
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )

    return time_pair_epochs(loader, epochs)


def bench_dali(
    folder: Path, epochs: int, threads: int, device: str = "cpu", batch_size: int = 256
) -> BenchResult:
    """DALI's own pipeline: readers.file + image_random_crop + resize + crop_mirror_normalize."""
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    gpu = device == "mixed"

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=0 if gpu else None)
    def pipe():
        jpegs, labels = fn.readers.file(
            file_root=str(folder), random_shuffle=True, pad_last_batch=True, name="reader"
        )
        images = fn.decoders.image_random_crop(jpegs, device=device, output_type=types.RGB)
        images = fn.resize(images, resize_x=224, resize_y=224)
        images = fn.crop_mirror_normalize(
            images, dtype=types.UINT8, output_layout="CHW", mirror=fn.random.coin_flip()
        )
        return images, labels

    pipeline = pipe()
    pipeline.build()
    iterator = DALIGenericIterator(
        pipeline,
        ["image", "label"],
        reader_name="reader",
        last_batch_policy=LastBatchPolicy.PARTIAL,
        auto_reset=True,
    )

    def run_epoch() -> int:
        count = 0
        for batch in iterator:
            count += batch[0]["image"].shape[0]
        if gpu:
            torch.cuda.synchronize()
        return count

    return time_epochs(run_epoch, epochs)


def bench_ffcv(
    folder: Path, work: Path, kind: str, epochs: int, threads: int, batch_size: int = 256
) -> BenchResult:
    """FFCV 1.0.2 on ``.beton`` files written once from ``folder`` (see :mod:`.ffcv_anchor`)."""
    from slipstream.bench.ffcv_anchor import make_loader

    loader = make_loader(folder, work, kind, batch_size, threads)

    return time_pair_epochs(loader, epochs)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def default_runs(
    dataset: SlipstreamDataset,
    folder: Path | None,
    *,
    epochs: int,
    threads: int,
    batch_size: int = 256,
    work: Path | None = None,
    anchors: bool = True,
) -> dict[str, Callable[[], BenchResult]]:
    """The benchmark's runs by name, each a callable returning its :class:`BenchResult`.

    Args:
        dataset: The dataset slipstream streams.
        folder: The image folder behind it, for the anchors (None: no anchors).
        epochs: Epochs per run.
        threads: Decode threads (and DataLoader workers for torchvision).
        batch_size: Samples per batch.
        work: Folder for the FFCV anchor's ``.beton`` files.
        anchors: Add the torchvision, DALI and FFCV anchors that are installed.
    """
    rrc = ImagePipeline(DecodeRandomResizedCrop(224), flip_probability=0.5, dtype="uint8")
    center = ImagePipeline(DecodeCenterCrop(224, crop_ratio=224 / 256), dtype="uint8")
    args = {"epochs": epochs, "threads": threads, "batch_size": batch_size}
    runs: dict[str, Callable[[], BenchResult]] = {
        "slipstream RRC224+flip": lambda: bench_slipstream(dataset, rrc, **args),
        "slipstream center224": lambda: bench_slipstream(dataset, center, **args),
        "slipstream raw bytes": lambda: bench_raw_bytes(dataset, epochs, batch_size),
        "libjpeg-turbo full decode only": lambda: bench_full_decode(dataset, epochs, threads),
    }
    dali = _installed("nvidia.dali")
    gpu = torch.cuda.is_available()
    if dali:
        runs["slipstream DALI backend RRC224+flip"] = lambda: bench_slipstream(
            dataset, rrc, backend="dali", **args
        )
        runs["slipstream DALI backend center224"] = lambda: bench_slipstream(
            dataset, center, backend="dali", **args
        )
        if gpu:
            runs["slipstream DALI mixed (nvJPEG) RRC224+flip"] = lambda: bench_slipstream(
                dataset, rrc, backend="dali", device="cuda", decode_device="mixed", **args
            )
    if not anchors or folder is None:
        return runs
    if _installed("torchvision"):
        runs["torchvision RRC224+flip"] = lambda: bench_torchvision(
            folder, epochs, threads, batch_size
        )
    if dali:
        runs["DALI CPU RRC224+flip"] = lambda: bench_dali(
            folder, epochs, threads, batch_size=batch_size
        )
        if gpu:
            runs["DALI GPU (nvJPEG) RRC224+flip"] = lambda: bench_dali(
                folder, epochs, threads, device="mixed", batch_size=batch_size
            )
    if _installed("ffcv") and work is not None:
        for kind in ("RRC224+flip", "center224", "raw bytes"):
            runs[f"FFCV {kind}"] = lambda kind=kind: bench_ffcv(
                folder, work, kind, epochs, threads, batch_size
            )
    return runs


def run_benchmarks(
    runs: dict[str, Callable[[], BenchResult]],
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    report: Callable[[str, BenchResult], None] | None = None,
) -> dict[str, BenchResult]:
    """Run the selected runs in order; ``report(name, result)`` after each."""
    only = None if only is None else set(only)
    skip = set(skip)
    results = {}
    for name, run in runs.items():
        if name in skip or (only is not None and name not in only):
            continue
        results[name] = run()
        if report is not None:
            report(name, results[name])
    return results


ANCHORS = {
    "torchvision": "torchvision RRC224+flip",
    "DALI CPU": "DALI CPU RRC224+flip",
    "FFCV RRC": "FFCV RRC224+flip",
    "full decode": "libjpeg-turbo full decode only",
}
"""Column name -> run name of the anchors the table divides by (those that ran)."""


def format_table(results: dict[str, BenchResult]) -> str:
    """A Markdown table: per run the img/s per epoch, the warm median and the anchor ratios."""
    anchors = {col: results[run].median for col, run in ANCHORS.items() if run in results}
    lines = [
        "| pipeline | img/s per epoch | median (warm) | "
        + "".join(f"vs {name} | " for name in anchors),
        "| --- | ---: | ---: |" + " ---: |" * len(anchors),
    ]
    for name, r in results.items():
        per_epoch = " / ".join(f"{rate:,.0f}" for rate in r.rates)
        ratios = "".join(f"{r.median / a:.2f}x | " if a else "- | " for a in anchors.values())
        lines.append(f"| {name} | {per_epoch} | {r.median:,.0f} | " + ratios)
    return "\n".join(line.rstrip() for line in lines)


def record_results(
    directory: Path, prefix: str, info: dict[str, Any], command: str, table: str
) -> Path:
    """Write ``<prefix>-<stamp>.json`` (``info`` + machine facts) and ``.md`` (the table).

    Args:
        directory: Where results go (created if missing), e.g. ``benchmarks/results``.
        prefix: File name prefix, e.g. ``"loader"``.
        info: What to store besides the date, machine, core count and torch version.
        command: The command line that reproduces the run (quoted in the ``.md``).
        table: The markdown table printed by the run.

    Returns:
        The ``.md`` file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    facts = {
        "date": stamp,
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    (directory / f"{prefix}-{stamp}.json").write_text(json.dumps({**facts, **info}, indent=2))
    markdown = directory / f"{prefix}-{stamp}.md"
    markdown.write_text(f"# {prefix} {stamp}\n\n`{command}` on {os.cpu_count()} cores\n\n{table}\n")
    return markdown
