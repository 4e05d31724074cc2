"""Run a list of mutations of a dataset, each on a fresh copy; print one JSON line each.

Usage: ``python fuzz_child.py SOURCE WORK MUTATIONS.json REFERENCE.npy`` where SOURCE is a
slip cache folder, a LitData folder or a ``.beton`` and each mutation is ``{"file",
"kind": "flip"|"truncate", "offset", "xor"}``. Outcome per mutation: ``same`` (the epoch
equals the reference), ``different`` (it does not, silently), ``slipstream`` (a
SlipstreamError), or ``other:<type>``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np


def run_one(source: Path, work: Path, mutation: dict, reference: np.ndarray) -> str:
    from slipstream import SlipstreamDataset, SlipstreamLoader
    from slipstream.errors import SlipstreamError
    from slipstream.pipelines import supervised_train

    cache_root = work.parent / f"{work.name}-caches"  # a LitData source builds a cache here
    for old in (work, cache_root):
        if old.exists():
            shutil.rmtree(old)
    if source.is_dir():
        shutil.copytree(source, work)
        target = work / mutation["file"]
        dataset_path = work
    else:
        work.mkdir(parents=True)
        target = dataset_path = work / source.name
        shutil.copyfile(source, target)
    raw = bytearray(target.read_bytes())
    if mutation["kind"] == "truncate":
        raw = raw[: mutation["offset"] % (len(raw) + 1)]
    elif raw:
        raw[mutation["offset"] % len(raw)] ^= mutation["xor"]
    target.write_bytes(bytes(raw))
    try:
        dataset = SlipstreamDataset(dataset_path, cache_dir=cache_root, progress=False)
        pipelines = supervised_train(32, normalize=False, dtype="uint8")
        loader = SlipstreamLoader(
            dataset, 16, pipelines, device="cpu", num_workers=1, backend="native", shuffle=False
        )
        images = np.concatenate([b["image"].numpy().copy() for b in loader])
    except SlipstreamError:
        return "slipstream"
    except Exception as exc:  # noqa: BLE001 - the harness classifies every other error
        return f"other:{type(exc).__name__}:{str(exc)[:200]}"
    return "same" if np.array_equal(images, reference) else "different"


def main() -> None:
    source, work, mutations, reference = sys.argv[1:5]
    expected = np.load(reference)
    for mutation in json.loads(Path(mutations).read_text()):
        outcome = run_one(Path(source), Path(work), mutation, expected)
        print(json.dumps({"mutation": mutation, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main()
