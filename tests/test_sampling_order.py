"""Tests for epoch order (slipstream.sampling.order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from slipstream.sampling import epoch_order, num_batches

ROOT = Path(__file__).resolve().parents[1]


def test_unshuffled_is_identity():
    assert np.array_equal(epoch_order(10, seed=0, epoch=0, shuffle=False), np.arange(10))
    order = epoch_order(10, seed=0, epoch=0, shuffle=False, indices=np.array([7, 2, 5]))
    assert order.tolist() == [7, 2, 5]
    assert order.dtype == np.int64


def test_shuffle_is_permutation_keyed_by_seed_and_epoch():
    n = 10_000
    a = epoch_order(n, seed=1, epoch=0)
    assert a.dtype == np.int64
    assert np.array_equal(np.sort(a), np.arange(n))
    assert not np.array_equal(a, np.arange(n))
    assert np.array_equal(a, epoch_order(n, seed=1, epoch=0))  # deterministic
    assert (a != epoch_order(n, seed=1, epoch=1)).mean() > 0.99
    assert (a != epoch_order(n, seed=2, epoch=0)).mean() > 0.99
    # A fair shuffle: position of each id is uncorrelated with the id.
    assert abs(np.corrcoef(a, np.arange(n))[0, 1]) < 0.05


def test_indices_subset():
    idx = np.arange(5, 1000, 7)
    order = epoch_order(1000, seed=0, epoch=3, indices=idx)
    assert np.array_equal(np.sort(order), idx)
    assert not np.array_equal(order, idx)
    with pytest.raises(ValueError):
        epoch_order(10, seed=0, epoch=0, indices=np.array([3, 10]))
    with pytest.raises(ValueError):
        epoch_order(10, seed=0, epoch=0, indices=np.array([[1]]))


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (1001, 8), (3, 5), (1, 2), (0, 2)])
def test_distributed_padding_and_coverage(n: int, world: int):
    full = epoch_order(n, seed=9, epoch=2)
    parts = [epoch_order(n, seed=9, epoch=2, rank=r, world_size=world) for r in range(world)]
    per_rank = -(-n // world)
    assert all(len(p) == per_rank for p in parts)
    assert set(np.concatenate(parts).tolist()) == set(range(n))
    # Padding rule: the shuffled list repeated from its start, then rank r takes r::world.
    padded = np.resize(full, per_rank * world) if n else full
    for r, p in enumerate(parts):
        assert np.array_equal(p, padded[r::world])


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (1001, 8), (3, 5)])
def test_distributed_drop_last(n: int, world: int):
    full = epoch_order(n, seed=9, epoch=2)
    parts = [
        epoch_order(n, seed=9, epoch=2, rank=r, world_size=world, drop_last=True)
        for r in range(world)
    ]
    assert all(len(p) == n // world for p in parts)
    union = np.concatenate(parts)
    assert len(np.unique(union)) == len(union) == (n // world) * world
    assert set(union.tolist()) == set(full[: len(union)].tolist())


@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (3, 5, False)])
def test_matches_torch_distributed_sampler_layout(n: int, world: int, drop_last: bool):
    """Same split as DistributedSampler(shuffle=False) given the same global list."""
    for r in range(world):
        ours = epoch_order(
            n, seed=0, epoch=0, shuffle=False, rank=r, world_size=world, drop_last=drop_last
        )
        ref = DistributedSampler(
            range(n), num_replicas=world, rank=r, shuffle=False, drop_last=drop_last
        )
        assert ours.tolist() == list(ref)


def test_rank_validation():
    with pytest.raises(ValueError):
        epoch_order(10, seed=0, epoch=0, rank=2, world_size=2)
    with pytest.raises(ValueError):
        epoch_order(10, seed=0, epoch=0, world_size=0)


def test_num_batches():
    assert num_batches(10, 3, drop_last=False) == 4
    assert num_batches(10, 3, drop_last=True) == 3
    assert num_batches(9, 3, drop_last=False) == 3
    assert num_batches(0, 3, drop_last=False) == 0
    with pytest.raises(ValueError):
        num_batches(10, 0, drop_last=False)


def test_torchrun_two_ranks_cover_all_samples(tmp_path: Path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(ROOT / "tests" / "distributed_cover.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    for name in ("full", "subset", "drop_last"):
        for epoch in (0, 1):
            r = result[f"{name}/{epoch}"]
            assert r["ok"], (name, epoch, r)
            assert r["covers"] and r["inside"] and r["windows_equal"], (name, epoch, r)
            assert r["per_rank"] == r["expect_per_rank"], (name, epoch, r)
    assert result["full/0"]["order"] != result["full/1"]["order"]
