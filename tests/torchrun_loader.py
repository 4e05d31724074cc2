"""Run by ``torchrun --nproc_per_node=2 tests/torchrun_loader.py CACHE OUTDIR`` (gloo, CPU).

Each rank builds loaders on the slip cache ``CACHE`` under an initialized process group and
writes ``OUTDIR/rank<r>.json`` for ``tests/test_torchrun.py``: the shard a default loader
reads (no ``distributed=`` argument), its decode threads, the error an explicit world size
that disagrees with the group gives, and the error different seeds give at the first pass.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.prefetch.world import SeedMismatchError, WorldError

SUBSET = list(range(0, 240, 4))  # 60 samples: 30 per rank


def _loader(dataset: SlipstreamDataset, **kwargs: object) -> SlipstreamLoader:
    options = {"batch_size": 8, "crop_size": 32, "device": "cpu", "backend": "native"}
    return SlipstreamLoader(dataset, indices=SUBSET, **{**options, **kwargs})


def main(cache: Path, outdir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    dataset = SlipstreamDataset(cache)
    result: dict[str, object] = {"env_local_world_size": os.environ.get("LOCAL_WORLD_SIZE")}

    loader = _loader(dataset)
    result["world"] = [loader.rank, loader.world_size]
    result["num_workers"] = loader.num_workers
    result["cores"] = len(os.sched_getaffinity(0))
    ids = [i for batch in loader for i in batch["index"].tolist()]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, ids)
    result["ids"] = gathered

    try:
        _loader(dataset, world_size=3)
    except WorldError as error:
        result["disagree"] = str(error)

    try:
        next(iter(_loader(dataset, seed=rank)))
    except SeedMismatchError as error:
        result["seed_error"] = str(error)

    (outdir / f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
