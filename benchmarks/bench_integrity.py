"""Cost of the per-item checksum check in the gather, RRC224 on the native engine.

Runs the same loader over the same cache with the check on (format v2) and off (the
checksum table dropped from the opened cache, as a version-1 cache reads), alternating,
``--runs`` times each, and prints img/s and the relative cost.

Usage: ``python benchmarks/bench_integrity.py CACHE_OR_FOLDER [--runs 3] [--batch 256]``
"""

from __future__ import annotations

import argparse
import time

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import supervised_train


def epoch_rate(dataset: SlipstreamDataset, batch: int, checked: bool) -> float:
    """Images per second of one warm epoch."""
    saved = dict(dataset.cache._checksums)
    if not checked:
        dataset.cache._checksums.clear()
    try:
        pipelines = supervised_train(224, normalize=False, dtype="uint8")
        loader = SlipstreamLoader(dataset, batch, pipelines, device="cpu", backend="native")
        for _ in loader:  # warm-up epoch
            pass
        start, count = time.perf_counter(), 0
        for b in loader:
            count += len(b["image"])
        return count / (time.perf_counter() - start)
    finally:
        dataset.cache._checksums.update(saved)


def main() -> None:
    """Alternate checked and unchecked epochs; print the rates and the cost."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    dataset = SlipstreamDataset(args.path)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.runs):
        for checked in (False, True):
            rates[checked].append(epoch_rate(dataset, args.batch, checked))
    off, on = max(rates[False]), max(rates[True])
    print(f"unchecked img/s: {[round(r) for r in rates[False]]}")
    print(f"checked   img/s: {[round(r) for r in rates[True]]}")
    print(f"cost (best of {args.runs}): {100 * (1 - on / off):.2f}%")


if __name__ == "__main__":
    main()
