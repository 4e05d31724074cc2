"""Fuzz slipstream's readers at scale with the test suite's harness (``tests/fuzz_harness``).

Builds a slip cache (from ``--images`` demo photos), takes the FFCV fixture ``.beton``
and writes a LitData dataset (with ``litdata``), then runs ``--mutations`` flips and
truncations per reader, each on a fresh copy in a subprocess, and prints (and with
``--out`` writes) the counts per reader: same, slipstream errors, silently different
outputs, other exceptions, crashes or hangs. The slip cache's count is split in stored
item bytes (where a silent difference is a failure) and metadata files.

Usage: ``python scripts/fuzz.py --mutations 5000 [--readers slip,beton,litdata]
[--seed 0] [--images 48] [--out results.md]``. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from fuzz_harness import (  # noqa: E402
    count,
    folder_mutations,
    mutations,
    reference,
    run_all,
    slip_cache_mutations,
    write_litdata,
)

FFCV = TESTS / "fixtures" / "ffcv" / "custom.beton"
COLUMNS = ("mutations", "same", "slipstream", "different", "other", "crash-or-hang", "failures")


def _sources(tmp: Path, images: int) -> dict[str, Path]:
    from slipstream.cache import build_cache
    from slipstream.demo.photos import make_demo_folder
    from slipstream.readers.open_source import open_reader

    photos = make_demo_folder(tmp / "photos", images, seed=3)
    cache = build_cache(open_reader(photos), tmp / "cache", progress=False)
    litdata = write_litdata(tmp / "litdata", sorted(photos.rglob("*.jpg"))[:12])
    return {"slip": cache, "beton": FFCV, "litdata": litdata}


def fuzz(reader: str, source: Path, n: int, seed: int, tmp: Path) -> dict[str, dict[str, int]]:
    """Counts of ``n`` mutations of one reader's source (slip: stored and metadata rows)."""
    work = tmp / f"runs-{reader}"
    work.mkdir()
    ref = reference(source, tmp / f"reference-{reader}.npy", tmp / f"caches-{reader}")
    rng = np.random.default_rng(seed)
    if reader == "slip":
        stored, metadata = slip_cache_mutations(source, rng, n // 2)
        results = run_all(source, stored + metadata, work, ref)
        return {
            "slip cache: stored item bytes": count(results[: len(stored)], silent_matters=True),
            "slip cache: metadata files": count(results[len(stored) :], silent_matters=False),
        }
    if reader == "beton":
        mutated = mutations(rng, {source.name: (0, source.stat().st_size)}, n)
    else:
        mutated = folder_mutations(source, rng, n)
    return {reader: count(run_all(source, mutated, work, ref), silent_matters=False)}


def main() -> int:
    """Run the fuzz; print a markdown table of the counts; 1 when anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutations", type=int, default=200, help="per reader (default: 200)")
    parser.add_argument("--readers", default="slip,beton,litdata", help="comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="mutation seed (default: 0)")
    parser.add_argument("--images", type=int, default=48, help="slip cache photos (default: 48)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    rows: dict[str, dict[str, int]] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sources = _sources(Path(tmp), args.images)
        for reader in args.readers.split(","):
            t0 = time.perf_counter()
            found = fuzz(reader, sources[reader], args.mutations, args.seed, Path(tmp))
            for name, row in found.items():
                rows[name] = row
                print(f"{name}: {row} ({time.perf_counter() - t0:.0f} s)", flush=True)
    lines = ["| source | " + " | ".join(COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
    lines += [
        "",
        f"{time.perf_counter() - start:.0f} s in all. failures = other + crash-or-hang "
        "(+ different, for stored item bytes of a slip cache).",
    ]
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
    return 1 if any(r["failures"] for r in rows.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
