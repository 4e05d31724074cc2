"""Per-sample probability p < 1: one-pass masking vs transform-then-select, in one process run.

A random transform applied with probability ``p`` per sample used to transform the whole
batch and then pick, per sample, the transformed or the original image (``select``: two
more passes over the batch). Flip now gathers with a mirrored column index per sample, and
brightness and contrast give unapplied samples their neutral factor (1) and erasing an
empty box, so one pass makes
the output (bit-identical; tested). This prints img/s of both on the same batch and params.
Float ``[B, 3, S, S]`` batch in channels-last order, ``p=0.5``, median of ``--iters``
timed calls per round after one warm-up; on CUDA every call ends with a synchronize.

Usage:
    python benchmarks/bench_augment_masking.py [--device cpu|cuda] [--rounds 3] [--iters 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import slipstream.augment as A
from slipstream.augment.base import apply_masked


def rate(run: Callable[[], torch.Tensor], batch: int, iters: int, device: torch.device) -> float:
    """Median img/s of ``run()`` over ``iters`` calls after one warm-up."""
    run()
    seconds = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return batch / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = torch.rand(args.batch_size, 3, args.size, args.size, device=device)
    batch = batch.contiguous(memory_format=torch.channels_last)
    key = A.BatchKey(seed=0, epoch=0, sample_ids=torch.arange(args.batch_size))
    cases = {
        "RandomHorizontalFlip": A.RandomHorizontalFlip(p=0.5),
        "RandomBrightness": A.RandomBrightness(p=0.5),
        "RandomContrast": A.RandomContrast(p=0.5),
        "RandomErasing": A.RandomErasing(p=0.5),
    }
    rows = []
    for name, transform in cases.items():
        _, params = transform(batch, key, return_params=True)

        def select_run(transform=transform, params=params) -> torch.Tensor:
            return apply_masked(transform.transform, batch, params, params["apply"])

        def one_pass_run(transform=transform, params=params) -> torch.Tensor:
            return transform.apply(batch, params)

        old, new = [], []
        for _ in range(args.rounds):
            old.append(rate(select_run, args.batch_size, args.iters, device))
            new.append(rate(one_pass_run, args.batch_size, args.iters, device))
        ratios = [n / o for n, o in zip(new, old, strict=True)]
        rows.append((name, old, new, ratios))
    print(
        f"batch {args.batch_size} float32 3x{args.size}x{args.size} channels-last, p=0.5, "
        f"device {device}, {args.rounds} rounds x median of {args.iters}\n"
    )
    print("| transform | select img/s (rounds) | one pass img/s (rounds) | one pass / select |")
    print("| --- | ---: | ---: | ---: |")
    for name, old, new, ratios in rows:
        print(
            f"| {name} | {' / '.join(f'{r:,.0f}' for r in old)} | "
            f"{' / '.join(f'{r:,.0f}' for r in new)} | {statistics.median(ratios):.2f}x |"
        )


if __name__ == "__main__":
    main()
