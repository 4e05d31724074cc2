"""Fuzz: byte flips and truncations of a slip cache, a ``.beton`` and a LitData dataset.

Every mutation runs in a subprocess (:mod:`fuzz_harness`: a batch of mutations per
process; a crashing or hanging batch is rerun one mutation per process so the failure is
attributed). The oracle: no crash, no hang, every failure a
:class:`~slipstream.errors.SlipstreamError`, and a flip of stored item bytes of a slip
cache never gives a silently different epoch. About 200 mutations per reader per run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import (
    folder_mutations,
    mutations,
    reference,
    run_all,
    slip_cache_mutations,
    write_litdata,
)

FFCV = Path(__file__).parent / "fixtures" / "ffcv" / "custom.beton"
PER_READER = 200


def _check(results: list[dict], stored_bytes: bool) -> None:
    assert results
    bad = [r for r in results if r["outcome"].startswith(("other", "crash"))]
    assert not bad, bad[:5]
    if stored_bytes:
        silent = [r for r in results if r["outcome"] == "different"]
        assert not silent, silent[:5]


def _small_cache(photo_dataset, tmp_path: Path, n: int = 48) -> Path:
    """A slip cache of the first ``n`` photos (fewer pixels per mutation, same format)."""
    from slipstream.cache import build_cache
    from slipstream.readers.open_source import open_reader

    files = sorted(Path(photo_dataset.source).rglob("*.jpg"))[:n]
    folder = tmp_path / "photos"
    for f in files:
        (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / f.parent.name / f.name).write_bytes(f.read_bytes())
    return build_cache(open_reader(folder), tmp_path / "cache", progress=False)


@pytest.mark.slow
def test_fuzz_slip_cache(photo_dataset, tmp_path):
    source = _small_cache(photo_dataset, tmp_path)
    ref = reference(source, tmp_path / "reference.npy", tmp_path / "caches")
    work = tmp_path / "runs"
    work.mkdir()
    stored, metadata = slip_cache_mutations(source, np.random.default_rng(17), PER_READER // 2)
    results = run_all(source, stored + metadata, work, ref)
    _check(results[: len(stored)], stored_bytes=True)
    _check(results[len(stored) :], stored_bytes=False)


@pytest.mark.slow
def test_fuzz_beton(tmp_path):
    ref = reference(FFCV, tmp_path / "reference.npy", tmp_path / "caches")
    work = tmp_path / "runs"
    work.mkdir()
    rng = np.random.default_rng(18)
    mutated = mutations(rng, {FFCV.name: (0, FFCV.stat().st_size)}, PER_READER)
    _check(run_all(FFCV, mutated, work, ref), stored_bytes=False)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # litdata's
def test_fuzz_litdata(photo_folder, tmp_path):
    pytest.importorskip("litdata", reason="needs litdata to write the dataset")
    source = write_litdata(tmp_path / "litdata", sorted(photo_folder.rglob("*.jpg"))[:12])
    ref = reference(source, tmp_path / "reference.npy", tmp_path / "caches")
    work = tmp_path / "runs"
    work.mkdir()
    mutated = folder_mutations(source, np.random.default_rng(19), PER_READER)
    _check(run_all(source, mutated, work, ref), stored_bytes=False)
