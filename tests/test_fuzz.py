"""Fuzz: byte flips and truncations of a slip cache's files and of a ``.beton``.

Every mutation runs in a subprocess (a batch of mutations per process; a crashing or
hanging batch is rerun one mutation per process so the failure is attributed). The
oracle: no crash, no hang, every failure a :class:`~slipstream.errors.SlipstreamError`,
and a flip of stored item bytes of a slip cache never gives a silently different epoch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import supervised_train

CHILD = Path(__file__).parent / "fuzz_child.py"
FFCV = Path(__file__).parent / "fixtures" / "ffcv" / "custom.beton"
PER_PROCESS = 20
TIMEOUT = 120


def _reference(path: Path, out: Path) -> Path:
    pipelines = supervised_train(32, normalize=False, dtype="uint8")
    loader = SlipstreamLoader(
        SlipstreamDataset(path), 16, pipelines, device="cpu", num_threads=1,
        backend="native", shuffle=False,
    )  # fmt: skip
    np.save(out, np.concatenate([b["image"].numpy().copy() for b in loader]))
    return out


def _run(source: Path, mutations: list[dict], tmp: Path) -> list[dict]:
    spec = tmp / f"mutations-{len(list(tmp.iterdir()))}.json"
    spec.write_text(json.dumps(mutations))
    try:
        done = subprocess.run(
            [sys.executable, str(CHILD), str(source), str(tmp / "work"), str(spec),
             str(tmp / "reference.npy")],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
        lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        crashed = done.returncode != 0
    except subprocess.TimeoutExpired:
        lines, crashed = [], True
    if not crashed:
        return lines
    if len(mutations) == 1:
        return [{"mutation": mutations[0], "outcome": "crash-or-hang"}]
    return [r for m in mutations for r in _run(source, [m], tmp)]


def _mutations(rng: np.random.Generator, files: dict[str, tuple[int, int]], n: int) -> list:
    names = list(files)
    out = []
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        lo, hi = files[name]
        kind = "truncate" if rng.random() < 0.15 else "flip"
        offset = int(rng.integers(lo, max(hi, lo + 1)))
        out.append({"file": name, "kind": kind, "offset": offset, "xor": 1 << int(rng.integers(8))})
    return out


def _check(results: list[dict], stored_bytes: bool) -> None:
    outcomes = [r["outcome"] for r in results]
    bad = [r for r in results if r["outcome"].startswith(("other", "crash"))]
    assert not bad, bad[:5]
    if stored_bytes:
        silent = [r for r in results if r["outcome"] == "different"]
        assert not silent, silent[:5]
    assert outcomes


@pytest.mark.slow
def test_fuzz_slip_cache(photo_dataset, tmp_path):
    source = photo_dataset.cache_path
    _reference(source, tmp_path / "reference.npy")
    rng = np.random.default_rng(17)
    meta = photo_dataset.cache.meta("image")
    item_region = (int(meta["data_ptr"].min()), int((meta["data_ptr"] + meta["data_size"]).max()))
    stored = _mutations(rng, {"image.bin": item_region}, 40)
    files = {
        p.name: (0, p.stat().st_size)
        for p in source.iterdir()
        if p.is_file() and p.name != "image.bin"
    }
    metadata = _mutations(rng, files, 40)
    results = []
    for group in (stored, metadata):
        for first in range(0, len(group), PER_PROCESS):
            results += _run(source, group[first : first + PER_PROCESS], tmp_path)
    _check(results[: len(stored)], stored_bytes=True)
    _check(results[len(stored) :], stored_bytes=False)


@pytest.mark.slow
def test_fuzz_beton(tmp_path):
    _reference(FFCV, tmp_path / "reference.npy")
    rng = np.random.default_rng(18)
    mutations = _mutations(rng, {FFCV.name: (0, FFCV.stat().st_size)}, 40)
    results = []
    for first in range(0, len(mutations), PER_PROCESS):
        results += _run(FFCV, mutations[first : first + PER_PROCESS], tmp_path)
    _check(results, stored_bytes=False)
