"""Loader throughput, side by side with the anchors, in one process run.

Prints one table of img/s (median over the warm epochs) and ratios, for batch 256
uint8 224x224 output on all cores:

- slipstream (native backend): RandomResizedCrop + flip, center crop, raw bytes
- slipstream with ``backend="dali"`` (the same kernel as a DALI CPU operator): RRC + flip,
  when nvidia-dali is installed
- libjpeg-turbo full decode only, same files (slipstream's kernel, no crop/resize)
- torchvision: ImageFolder + PIL, RandomResizedCrop + flip, DataLoader workers
- DALI CPU pipeline (readers.file + decoders.image_random_crop + resize +
  crop_mirror_normalize), when nvidia-dali is installed
- on a GPU machine: slipstream's nvJPEG path (``backend="dali", decode_device="mixed"``,
  output on the GPU) and DALI's own GPU pipeline (the same graph as the CPU anchor with
  ``device="mixed"`` decoding), each synchronized at the end of every epoch
- FFCV 1.0.2: RRC decoder + flip, center crop decoder, raw bytes (``.beton`` files
  written once from the same folder, see ffcv_anchor.py), when ffcv is installed
- resident memory after each epoch of the slipstream RRC run (flat across epochs expected)

Usage:
    python benchmarks/bench_loader.py --data /path/to/imagefolder [--epochs 3] [--record]

The reference corpus: ``../shared/tools/make_photo_corpus.py OUT --n 5000`` then
``--data OUT/train``. Without ``--data`` the demo photos are used.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import torch

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.cache.gather import gather_bytes
from slipstream.native import decode_full
from slipstream.pipelines import CenterCrop, ImagePipeline, RandomResizedCrop
from slipstream.sampling import epoch_order

BATCH = 256


def _epochs(run_epoch, epochs: int) -> tuple[list[float], list[float]]:
    """Run ``run_epoch() -> images`` repeatedly; img/s and RSS after each epoch (MiB)."""
    rates, rss = [], []
    process = psutil.Process()
    for _ in range(epochs):
        start = time.perf_counter()
        count = run_epoch()
        rates.append(count / (time.perf_counter() - start))
        rss.append(process.memory_info().rss / 2**20)
    return rates, rss


def bench_slipstream(
    dataset,
    pipeline: ImagePipeline,
    epochs: int,
    threads: int,
    backend: str = "native",
    device: str = "cpu",
    decode_device: str | None = None,
):
    loader = SlipstreamLoader(
        dataset,
        BATCH,
        {"image": pipeline},
        seed=0,
        device=device,
        num_threads=threads,
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

    return _epochs(run_epoch, epochs)


def bench_raw_bytes(dataset, epochs: int):
    cache = dataset.cache
    data = np.asarray(cache.data("image"))
    meta = cache.meta("image")
    pointers, sizes = (
        np.ascontiguousarray(meta["data_ptr"]),
        np.ascontiguousarray(meta["data_size"]),
    )
    buffer = np.empty(int(np.sort(sizes)[-BATCH:].sum()), dtype=np.uint8)
    offsets = np.zeros(BATCH, dtype=np.uint64)
    epoch = [0]

    def run_epoch() -> int:
        ids = epoch_order(len(cache), seed=0, epoch=epoch[0])
        epoch[0] += 1
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            gather_bytes(data, pointers[batch], sizes[batch], buffer, offsets[: len(batch)])
        return len(ids)

    return _epochs(run_epoch, epochs)


def bench_full_decode(dataset, epochs: int, threads: int):
    cache = dataset.cache
    items = [cache.item_bytes("image", i) for i in range(len(cache))]
    pool = ThreadPoolExecutor(threads)

    def run_epoch() -> int:
        for _ in pool.map(decode_full, items, chunksize=64):
            pass
        return len(items)

    return _epochs(run_epoch, epochs)


def bench_torchvision(folder: Path, epochs: int, workers: int):
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
        dataset, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=True
    )

    def run_epoch() -> int:
        count = 0
        for images, _ in loader:
            count += images.shape[0]
        return count

    return _epochs(run_epoch, epochs)


def bench_dali(folder: Path, epochs: int, threads: int, device: str = "cpu"):
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    gpu = device == "mixed"

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=0 if gpu else None)
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

    return _epochs(run_epoch, epochs)


def bench_ffcv(folder: Path, work: Path, kind: str, epochs: int, threads: int):
    from ffcv_anchor import make_loader

    loader = make_loader(folder, work, kind, BATCH, threads)

    def run_epoch() -> int:
        count = 0
        for images, _ in loader:
            count += images.shape[0]
        return count

    return _epochs(run_epoch, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="image folder (class sub-folders)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--skip", nargs="*", default=[], help="runs to skip (by name)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these (by name)")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/...")
    args = parser.parse_args()

    work = Path(tempfile.gettempdir()) / "slipstream-bench"
    folder = args.data
    if folder is None:
        from slipstream.demo import make_demo_folder

        folder = make_demo_folder(work / "demo-photos", 5000)
    dataset = SlipstreamDataset(folder, cache_root=work / "caches")
    print(f"{dataset}, {args.threads} threads, batch {BATCH}, {args.epochs} epochs")

    runs = {
        "slipstream RRC224+flip": lambda: bench_slipstream(
            dataset,
            ImagePipeline(RandomResizedCrop(224), flip_probability=0.5, dtype="uint8"),
            args.epochs,
            args.threads,
        ),
        "slipstream center224": lambda: bench_slipstream(
            dataset, ImagePipeline(CenterCrop(224), dtype="uint8"), args.epochs, args.threads
        ),
        "slipstream raw bytes": lambda: bench_raw_bytes(dataset, args.epochs),
        "libjpeg-turbo full decode only": lambda: bench_full_decode(
            dataset, args.epochs, args.threads
        ),
        "torchvision RRC224+flip": lambda: bench_torchvision(folder, args.epochs, args.threads),
    }
    try:
        import nvidia.dali  # noqa: F401

        runs["DALI CPU RRC224+flip"] = lambda: bench_dali(folder, args.epochs, args.threads)
        runs["slipstream DALI backend RRC224+flip"] = lambda: bench_slipstream(
            dataset,
            ImagePipeline(RandomResizedCrop(224), flip_probability=0.5, dtype="uint8"),
            args.epochs,
            args.threads,
            backend="dali",
        )
        runs["slipstream DALI backend center224"] = lambda: bench_slipstream(
            dataset,
            ImagePipeline(CenterCrop(224), dtype="uint8"),
            args.epochs,
            args.threads,
            backend="dali",
        )
        if torch.cuda.is_available():
            gpu_name = torch.cuda.get_device_name(0)
            runs[f"DALI GPU (nvJPEG) RRC224+flip, {gpu_name}"] = lambda: bench_dali(
                folder, args.epochs, args.threads, device="mixed"
            )
            runs[f"slipstream DALI mixed (nvJPEG) RRC224+flip, {gpu_name}"] = lambda: (
                bench_slipstream(
                    dataset,
                    ImagePipeline(RandomResizedCrop(224), flip_probability=0.5, dtype="uint8"),
                    args.epochs,
                    args.threads,
                    backend="dali",
                    device="cuda",
                    decode_device="mixed",
                )
            )
    except ImportError:
        print("(DALI not installed: its anchor is skipped)")
    try:
        from ffcv_anchor import KINDS  # imports ffcv

        for kind in KINDS:
            runs[f"FFCV {kind}"] = lambda kind=kind: bench_ffcv(
                folder, work, kind, args.epochs, args.threads
            )
    except ImportError:
        print("(FFCV not installed: its anchor is skipped)")

    results = {}
    for name, run in runs.items():
        if name in args.skip or (args.only is not None and name not in args.only):
            continue
        rates, rss = run()
        warm = rates[1:] if len(rates) > 1 else rates
        results[name] = {"median": statistics.median(warm), "epochs": rates, "rss_mib": rss}
        print(f"  {name:34s} " + " ".join(f"{r:8,.0f}" for r in rates) + " img/s per epoch")

    anchors = {
        "torchvision": results.get("torchvision RRC224+flip", {}).get("median"),
        "DALI CPU": results.get("DALI CPU RRC224+flip", {}).get("median"),
        "full decode": results.get("libjpeg-turbo full decode only", {}).get("median"),
    }
    if "FFCV RRC224+flip" in results:
        anchors["FFCV RRC"] = results["FFCV RRC224+flip"]["median"]
    lines = [
        "| pipeline | img/s (median, warm epochs) | "
        + " | ".join(f"vs {name}" for name in anchors)
        + " |",
        "| --- | ---: |" + " ---: |" * len(anchors),
    ]
    for name, r in results.items():
        ratios = [f"{r['median'] / a:.2f}x" if a else "-" for a in anchors.values()]
        lines.append(f"| {name} | {r['median']:,.0f} | " + " | ".join(ratios) + " |")
    table = "\n".join(lines)
    print()
    print(table)
    rrc = results.get("slipstream RRC224+flip")
    if rrc and len(rrc["rss_mib"]) >= 3:
        growth = rrc["rss_mib"][2] / rrc["rss_mib"][1] - 1
        print(
            "\nslipstream RRC resident memory after each epoch (MiB): "
            f"{[round(m) for m in rrc['rss_mib']]}; "
            f"epoch 2 -> 3 growth {growth:+.1%}"
        )

    if args.record:
        out = Path(__file__).parent / "results"
        out.mkdir(exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        info = {
            "date": stamp,
            "machine": platform.node(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "data": str(folder),
            "samples": len(dataset),
            "torch": torch.__version__,
            "results": results,
        }
        (out / f"loader-{stamp}.json").write_text(json.dumps(info, indent=2))
        (out / f"loader-{stamp}.md").write_text(
            f"# bench_loader {stamp}\n\n`python benchmarks/bench_loader.py "
            f"--data {folder} --epochs {args.epochs}` on {os.cpu_count()} cores\n\n{table}\n"
        )
        print(f"recorded in {out}")


if __name__ == "__main__":
    main()
