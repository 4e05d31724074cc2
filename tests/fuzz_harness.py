"""The fuzz harness shared by ``tests/test_fuzz.py`` and ``scripts/fuzz.py``.

Sources: a slip cache folder, a ``.beton`` file, a LitData folder (``index.json`` and
chunks, written here with the real ``litdata`` package). Each mutation (a bit flip or a
truncation of one file) runs on a fresh copy in a subprocess (:mod:`fuzz_child`), a batch
of mutations per process; a batch that crashes or hangs is rerun one mutation per process
so the failure is attributed. Outcomes: ``same``, ``different`` (silently), ``slipstream``
(a :class:`~slipstream.errors.SlipstreamError`), ``other:<type>:<message>`` (any other
exception: a failure), ``crash-or-hang``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

CHILD = Path(__file__).parent / "fuzz_child.py"
PER_PROCESS = 50
TIMEOUT = 120


def reference(path: Path, out: Path, cache_root: Path) -> Path:
    """Save the unmutated epoch (uint8 32x32 crops, native engine, no shuffle) to ``out``."""
    from slipstream import SlipstreamDataset, SlipstreamLoader
    from slipstream.pipelines import supervised_train

    pipelines = supervised_train(32, normalize=False, dtype="uint8")
    dataset = SlipstreamDataset(path, cache_dir=cache_root, progress=False)
    loader = SlipstreamLoader(
        dataset, 16, pipelines, device="cpu", num_workers=1, backend="native", shuffle=False
    )
    np.save(out, np.concatenate([b["image"].numpy().copy() for b in loader]))
    return out


def run(source: Path, mutations: list[dict], tmp: Path, reference_npy: Path) -> list[dict]:
    """Run ``mutations`` of ``source`` in one child; rerun one by one if it crashed/hung."""
    spec = tmp / f"mutations-{len(list(tmp.iterdir()))}.json"
    spec.write_text(json.dumps(mutations))
    try:
        done = subprocess.run(
            [sys.executable, str(CHILD), str(source), str(tmp / "work"), str(spec),
             str(reference_npy)],
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
    return [r for m in mutations for r in run(source, [m], tmp, reference_npy)]


def run_all(source: Path, mutations: list[dict], tmp: Path, reference_npy: Path) -> list[dict]:
    """Every mutation, :data:`PER_PROCESS` per child process, in order."""
    results = []
    for first in range(0, len(mutations), PER_PROCESS):
        results += run(source, mutations[first : first + PER_PROCESS], tmp, reference_npy)
    return results


def mutations(rng: np.random.Generator, files: dict[str, tuple[int, int]], n: int) -> list:
    """``n`` random mutations: file -> byte range ``[lo, hi)`` to mutate in."""
    names = list(files)
    out = []
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        lo, hi = files[name]
        kind = "truncate" if rng.random() < 0.15 else "flip"
        offset = int(rng.integers(lo, max(hi, lo + 1)))
        out.append({"file": name, "kind": kind, "offset": offset, "xor": 1 << int(rng.integers(8))})
    return out


def slip_cache_mutations(cache_path: Path, rng: np.random.Generator, n: int) -> tuple[list, list]:
    """``(stored, metadata)``: ``n`` flips/truncations of stored item bytes, ``n`` of the rest."""
    meta = np.load(cache_path / "image.meta.npy")
    region = (int(meta["data_ptr"].min()), int((meta["data_ptr"] + meta["data_size"]).max()))
    files = {
        p.name: (0, p.stat().st_size)
        for p in sorted(cache_path.iterdir())
        if p.is_file() and p.name != "image.bin"
    }
    return mutations(rng, {"image.bin": region}, n), mutations(rng, files, n)


def folder_mutations(folder: Path, rng: np.random.Generator, n: int) -> list:
    """``n`` mutations anywhere in the files of a folder (a LitData dataset)."""
    files = {p.name: (0, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file()}
    return mutations(rng, files, n)


def write_litdata(folder: Path, jpegs: list[Path]) -> Path:
    """A LitData dataset of ``{"image": JPEG, "label": i}`` written by ``litdata`` itself."""
    from litdata.streaming.writer import BinaryWriter
    from PIL import Image

    writer = BinaryWriter(str(folder), chunk_size=max(1, len(jpegs) // 2))
    for i, path in enumerate(jpegs):
        writer[i] = {"image": Image.open(path), "label": i % 7}
    writer.done()
    writer.merge()
    return folder


def count(results: list[dict], silent_matters: bool) -> dict[str, int]:
    """Outcome counts: same, slipstream, different, other, crash-or-hang, failures."""
    kinds = Counter(r["outcome"].split(":")[0] for r in results)
    failures = (
        kinds["other"] + kinds["crash-or-hang"] + (kinds["different"] if silent_matters else 0)
    )
    return {
        "mutations": len(results),
        **{k: kinds[k] for k in ("same", "slipstream", "different", "other", "crash-or-hang")},
        "failures": failures,
    }
