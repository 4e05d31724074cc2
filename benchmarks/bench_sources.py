"""Loader throughput reading an FFCV ``.beton`` in place vs a slip cache of the same bytes.

The slip cache is built from the ``.beton`` itself (``build_cache(FfcvFile(...))``), so both
runs decode identical JPEG bytes with identical windows; only where the bytes are read
from differs. The two sources alternate, round after round, in one process; the table
gives each round's warm-epoch median and the ratio ``.beton / slip cache`` per round.

Usage:
    python benchmarks/bench_sources.py --beton PATH.beton [--rounds 3] [--epochs 3]

Without ``--beton`` the ``jpg95`` file ``bench_loader.py``'s FFCV anchor wrote under
``$TMPDIR/slipstream-bench/ffcv/`` is used (written only when ``ffcv`` is installed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.cache import build_cache
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline
from slipstream.readers import FfcvFile

BATCH = 256


def warm_rate(dataset: SlipstreamDataset, epochs: int, threads: int, backend: str) -> float:
    """Median img/s of epochs 2.. of RRC224+flip, uint8 on the CPU."""
    pipeline = ImagePipeline(DecodeRandomResizedCrop(224), flip_probability=0.5, dtype="uint8")
    loader = SlipstreamLoader(
        dataset,
        BATCH,
        {"image": pipeline},
        seed=0,
        device="cpu",
        num_workers=threads,
        backend=backend,
    )
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        count = sum(batch["image"].shape[0] for batch in loader)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beton", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--backend", default="native", choices=("native", "dali"))
    args = parser.parse_args()

    work = Path(tempfile.gettempdir()) / "slipstream-bench"
    beton = args.beton
    if beton is None:
        found = sorted((work / "ffcv").glob("*-jpg95.beton"))
        if not found:
            raise SystemExit(f"no .beton given and none under {work / 'ffcv'}: pass --beton")
        beton = found[-1]
    ffcv_file = FfcvFile(beton)
    cache_dir = work / "caches" / f"{beton.stem}-{ffcv_file.fingerprint()[:16]}"
    build_cache(ffcv_file, cache_dir, progress=False)
    in_place, cached = SlipstreamDataset(beton), SlipstreamDataset(cache_dir)
    assert isinstance(in_place.cache, FfcvFile), "the .beton must hold JPEG images"
    print(f"{beton} ({len(in_place)} samples) vs {cache_dir}, backend {args.backend}")

    lines = [
        "| round | .beton in place img/s | slip cache img/s | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    ratios = []
    for r in range(args.rounds):
        a = warm_rate(in_place, args.epochs, args.threads, args.backend)
        b = warm_rate(cached, args.epochs, args.threads, args.backend)
        ratios.append(a / b)
        lines.append(f"| {r + 1} | {a:,.0f} | {b:,.0f} | {a / b:.3f} |")
    lines.append(f"| median | | | {statistics.median(ratios):.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
