"""Fused float output on the CPU: supervised_train(224) float32 vs uint8, same run.

Rows, each on the native engine and the DALI CPU engine (when nvidia-dali is installed),
batch 256, CPU output, all cores:

- ``uint8``: DecodeRandomResizedCrop 224 + flip, raw pixels (the reference rate);
- ``float32``: ``supervised_train(224)``: the same crops, ImageNet-normalized float32,
  written by the C++ kernel itself (the fused float output);
- ``bfloat16``: the same, bfloat16;
- ``float32 via torch``: the uint8 batches normalized afterwards by torch
  (:class:`slipstream.transforms.ImageOutput`), what the CPU output cost before the fusion.

The configurations run round-robin, one epoch each per round (so drift hits them alike);
the first round warms up; each row reports its median over the other rounds and its ratio
to the same engine's uint8 rate (the median of the per-round ratios: load changes between
rounds, e.g. other processes on the machine, hit both epochs of a round alike).

Usage:
    python benchmarks/bench_float_output.py [--data IMAGEFOLDER] [--epochs 4] [--record]

Without ``--data`` 5000 demo photos are generated (once, in the temp folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.bench import record_results
from slipstream.pipelines import supervised_train
from slipstream.transforms import ImageOutput

BATCH = 256


def _loader(dataset, backend: str, dtype: str, threads: int) -> SlipstreamLoader:
    pipes = supervised_train(224, dtype=dtype, normalize=dtype != "uint8")
    return SlipstreamLoader(
        dataset, BATCH, pipes, seed=0, device="cpu", num_workers=threads, backend=backend
    )


def _epoch_runner(loader: SlipstreamLoader, after: Callable | None) -> Callable[[int], float]:
    def run(epoch: int) -> float:
        loader.set_epoch(epoch)
        start = time.perf_counter()
        count = 0
        for batch in loader:
            images = batch["image"]
            if after is not None:  # the unfused path: torch normalizes the uint8 batch
                images = after(images.permute(0, 2, 3, 1))
            count += images.shape[0]
        return count / (time.perf_counter() - start)

    return run


def main() -> None:
    """Run the rows, print the table, optionally record it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="image folder (class sub-folders)")
    parser.add_argument("--epochs", type=int, default=4, help="rounds (the first warms up)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/...")
    args = parser.parse_args()

    work = Path(tempfile.gettempdir()) / "slipstream-bench"
    folder = args.data
    if folder is None:
        from slipstream.demo import make_demo_folder

        folder = work / "demo-photos"
        if not folder.exists():
            make_demo_folder(folder, 5000)
    dataset = SlipstreamDataset(folder, cache_dir=work / "caches", progress=False)
    print(f"{dataset}, {args.threads} threads, batch {BATCH}, {args.epochs} rounds")

    backends = ["native"]
    if importlib.util.find_spec("nvidia.dali") is not None:
        backends.append("dali")
    torch_out = ImageOutput(supervised_train(224)["image"], torch.device("cpu"))
    runs: dict[str, Callable[[int], float]] = {}
    for backend in backends:
        engine = "native" if backend == "native" else "dali-cpu"
        for dtype in ("uint8", "float32", "bfloat16"):
            loader = _loader(dataset, backend, dtype, args.threads)
            runs[f"{engine} {dtype}"] = _epoch_runner(loader, None)
        loader = _loader(dataset, backend, "uint8", args.threads)
        runs[f"{engine} float32 via torch"] = _epoch_runner(loader, torch_out)

    rates: dict[str, list[float]] = {name: [] for name in runs}
    for epoch in range(args.epochs):
        for name, run in runs.items():
            rates[name].append(run(epoch))
        print(f"  round {epoch}: " + ", ".join(f"{n} {r[-1]:,.0f}" for n, r in rates.items()))

    rows = []
    skip = 1 if args.epochs > 1 else 0
    for name, values in rates.items():
        base = rates[f"{name.split(' ')[0]} uint8"]
        # The ratio is the median of each round's ratio to the same round's uint8 epoch: a
        # load change between rounds hits both alike.
        ratio = statistics.median(v / b for v, b in zip(values[skip:], base[skip:], strict=True))
        median = statistics.median(values[skip:])
        rows.append({"name": name, "median": median, "ratio": ratio, "epochs": values})
    table = "| supervised_train(224), CPU output, batch 256 | img/s (median) | vs uint8 |\n"
    table += "| --- | ---: | ---: |\n"
    table += "\n".join(f"| {r['name']} | {r['median']:,.0f} | {r['ratio']:.2f}x |" for r in rows)
    print()
    print(table)

    if args.record:
        info = {
            "threads": args.threads,
            "data": str(folder),
            "samples": len(dataset),
            "rows": [dataclasses.asdict(_Row(**r)) for r in rows],
        }
        command = (
            f"python benchmarks/bench_float_output.py --data {folder} --epochs {args.epochs} "
            f"({args.threads} threads, {len(dataset)} images)"
        )
        out = Path(__file__).parent / "results"
        print(f"recorded in {record_results(out, 'float-output', info, command, table)}")


@dataclasses.dataclass
class _Row:
    name: str
    median: float
    ratio: float
    epochs: list[float]


if __name__ == "__main__":
    main()
