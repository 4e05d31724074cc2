"""Loader throughput, side by side with the anchors, in one process run.

The runs, the table and the anchors are :mod:`slipstream.bench` (also ``slipstream bench
PATH``); this script adds the reference-corpus default, ``--record`` and the memory line.
Batch 256, uint8 224x224 output on all cores; img/s is the median over the warm epochs.

Usage:
    python benchmarks/bench_loader.py --data /path/to/imagefolder [--epochs 3] [--record]

The reference corpus: ``../shared/tools/make_photo_corpus.py OUT --n 5000`` then
``--data OUT/train``. Without ``--data`` the demo photos are used.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from slipstream import SlipstreamDataset
from slipstream.bench import default_runs, format_table, record_results, run_benchmarks

BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="image folder (class sub-folders)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--skip", nargs="*", default=[], help="runs to skip (by name)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these (by name)")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/...")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="(%(message)s)")

    work = Path(tempfile.gettempdir()) / "slipstream-bench"
    folder = args.data
    if folder is None:
        from slipstream.demo import make_demo_folder

        folder = make_demo_folder(work / "demo-photos", 5000)
    dataset = SlipstreamDataset(folder, cache_dir=work / "caches")
    print(f"{dataset}, {args.threads} threads, batch {BATCH}, {args.epochs} epochs")
    runs = default_runs(
        dataset, folder, epochs=args.epochs, threads=args.threads, batch_size=BATCH, work=work
    )
    results = run_benchmarks(
        runs,
        only=args.only,
        skip=args.skip,
        report=lambda name, r: print(
            f"  {name:34s} " + " ".join(f"{x:8,.0f}" for x in r.rates) + " img/s per epoch"
        ),
    )
    table = format_table(results)
    print()
    print(table)
    rrc = results.get("slipstream RRC224+flip")
    if rrc and len(rrc.rss_mib) >= 3:
        growth = rrc.rss_mib[2] / rrc.rss_mib[1] - 1
        print(
            "\nslipstream RRC resident memory after each epoch (MiB): "
            f"{[round(m) for m in rrc.rss_mib]}; epoch 2 -> 3 growth {growth:+.1%}"
        )

    if args.record:
        info = {
            "threads": args.threads,
            "data": str(folder),
            "samples": len(dataset),
            "results": {
                name: {**asdict(r), "median": r.median, "epochs": r.rates}
                for name, r in results.items()
            },
        }
        command = f"python benchmarks/bench_loader.py --data {folder} --epochs {args.epochs}"
        written = record_results(Path(__file__).parent / "results", "loader", info, command, table)
        print(f"recorded in {written}")


if __name__ == "__main__":
    main()
