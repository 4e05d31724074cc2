"""Run by ``torchrun --nproc_per_node=N tests/distributed_cover.py OUTDIR``.

Each rank computes its ``epoch_order`` (gloo, CPU), all ranks all-gather their ids, and
rank 0 checks that the union covers every sample with equal per-rank lengths, then
writes ``OUTDIR/result.json`` for the calling test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from slipstream.sampling import epoch_order, random_resized_crop

NUM_SAMPLES = 1003
INDICES = np.arange(0, NUM_SAMPLES, 3)


def main(outdir: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result: dict[str, object] = {"world_size": world}
    rng = np.random.default_rng(0)
    heights = rng.integers(50, 600, NUM_SAMPLES)
    widths = rng.integers(50, 600, NUM_SAMPLES)
    for name, kwargs in {
        "full": {},
        "subset": {"indices": INDICES},
        "drop_last": {"drop_last": True},
    }.items():
        for epoch in (0, 1):
            ids = epoch_order(
                NUM_SAMPLES, seed=5, epoch=epoch, rank=rank, world_size=world, **kwargs
            )
            wins = random_resized_crop(heights[ids], widths[ids], ids, seed=5, epoch=epoch)
            local = torch.from_numpy(np.concatenate([ids[:, None], wins], axis=1).astype(np.int64))
            gathered = [torch.empty_like(local) for _ in range(world)]
            lengths = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
            dist.all_gather(lengths, torch.tensor([len(ids)]))
            if len({int(n) for n in lengths}) != 1:
                result[f"{name}/{epoch}"] = {"ok": False, "why": "unequal lengths"}
                continue
            dist.all_gather(gathered, local)
            if rank != 0:
                continue
            rows = torch.cat(gathered).numpy()
            all_ids = rows[:, 0]
            universe = kwargs.get("indices", np.arange(NUM_SAMPLES))
            n = len(universe)
            # Windows computed on each rank equal those computed for the whole set at once.
            whole = random_resized_crop(
                heights[all_ids], widths[all_ids], all_ids, seed=5, epoch=epoch
            )
            expect_len = n // world if kwargs.get("drop_last") else -(-n // world)
            result[f"{name}/{epoch}"] = {
                "ok": True,
                "covers": bool(np.isin(universe, all_ids).all())
                if not kwargs.get("drop_last")
                else int(len(np.unique(all_ids))) == (n // world) * world,
                "inside": bool(np.isin(all_ids, universe).all()),
                "per_rank": int(lengths[0]),
                "expect_per_rank": expect_len,
                "windows_equal": bool(np.array_equal(rows[:, 1:], whole)),
                "order": all_ids[:20].tolist(),
            }
    if rank == 0:
        (outdir / "result.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
