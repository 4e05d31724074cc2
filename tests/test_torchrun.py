"""torchrun / Slurm defaults: shard, decode threads, device, and the errors for contradictions.

The resolution functions of :mod:`slipstream.prefetch.world` are checked on the CPU with
explicit environments and process-group stand-ins (plain ``(rank, world_size)`` tuples);
one test runs real processes (``python -m torch.distributed.run --nproc_per_node 2``, gloo)
through ``tests/torchrun_loader.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slipstream.prefetch.world import (
    WorldError,
    default_num_workers,
    local_ranks,
    resolve_device,
    resolve_world,
)

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ world
def test_auto_shards_across_an_initialized_group():
    assert resolve_world("auto", group=(1, 4), environ={}) == (1, 4)
    assert resolve_world("auto", group=(0, 1), environ={}) == (0, 1)
    assert resolve_world("auto", group=None, environ={"RANK": "1", "WORLD_SIZE": "2"}) == (0, 1)


def test_explicit_rank_and_world_size_shard_without_distributed_true():
    assert resolve_world("auto", 1, 2, group=None, environ={}) == (1, 2)
    assert resolve_world("auto", None, 2, group=None, environ={"RANK": "1"}) == (1, 2)
    assert resolve_world(True, group=None, environ={"RANK": "2", "WORLD_SIZE": "3"}) == (2, 3)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8"}  # plain srun, no torchrun
    assert resolve_world(True, group=None, environ=slurm) == (5, 8)
    assert resolve_world(True, group=None, environ={**slurm, "RANK": "1", "WORLD_SIZE": "2"}) == (
        1,
        2,
    )
    assert resolve_world("auto", 1, 4, group=(1, 4), environ={}) == (1, 4)


def test_distributed_false_reads_everything_even_in_a_group():
    assert resolve_world(False, group=(1, 4), environ={}) == (0, 1)


@pytest.mark.parametrize(
    ("args", "group", "message"),
    [
        ((False, None, 2), None, "distributed=False"),
        ((False, 1, None), None, "distributed=False"),
        (("auto", 2, 2), None, r"rank 2 is not in \[0, world_size=2\)"),
        (("auto", 1, None), None, "pass world_size="),
        (("auto", None, 3), (0, 2), "world_size=3 disagrees .*rank 0 of 2"),
        ((True, 1, None), (0, 2), "rank=1 disagrees"),
        (("yes", None, None), None, "'auto', True or False"),
    ],
)
def test_contradictions_raise(args, group, message):
    with pytest.raises(WorldError, match=message):
        resolve_world(*args, group=group, environ={})


# ------------------------------------------------------------------ threads
@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, 1),
        ({"LOCAL_WORLD_SIZE": "4"}, 4),
        ({"SLURM_NTASKS_PER_NODE": "8"}, 8),
        ({"SLURM_TASKS_PER_NODE": "4(x2)"}, 4),
        ({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"}, 1),
        ({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "1"}, 2),
        ({"LOCAL_WORLD_SIZE": "2", "SLURM_NTASKS_PER_NODE": "8"}, 2),
    ],
)
def test_local_ranks(environ, expected):
    assert local_ranks(environ) == expected


def test_decode_threads_divide_the_cores_among_local_ranks():
    assert default_num_workers({}, cores=16) == 16
    assert default_num_workers({"LOCAL_WORLD_SIZE": "4"}, cores=16) == 4
    assert default_num_workers({"LOCAL_WORLD_SIZE": "3"}, cores=16) == 5
    assert default_num_workers({"LOCAL_WORLD_SIZE": "8"}, cores=2) == 1
    assert default_num_workers({"SLURM_TASKS_PER_NODE": "4(x2)"}, cores=32) == 8
    # Slurm's own share per task wins (each task may already be bound to its cores)
    slurm = {"SLURM_NTASKS_PER_NODE": "4", "SLURM_CPUS_PER_TASK": "6"}
    assert default_num_workers(slurm, cores=6) == 6
    assert default_num_workers(slurm, cores=4) == 4
    assert default_num_workers({**slurm, "LOCAL_WORLD_SIZE": "2"}, cores=24) == 12
    with pytest.raises(WorldError, match="SLURM_TASKS_PER_NODE"):
        local_ranks({"SLURM_TASKS_PER_NODE": "four"})


# ------------------------------------------------------------------ device
def _device(device, environ, current=None, count=8, cuda=True):
    return resolve_device(
        device, environ=environ, cuda_available=cuda, device_count=count, current_device=current
    )


def test_bare_cuda_is_this_local_ranks_gpu():
    assert _device("cuda", {"LOCAL_RANK": "3"}) == torch.device("cuda", 3)
    assert _device(None, {"LOCAL_RANK": "2"}) == torch.device("cuda", 2)
    assert _device("cuda", {"SLURM_LOCALID": "1"}) == torch.device("cuda", 1)
    assert _device("cuda", {}) == torch.device("cuda", 0)
    assert _device("cuda", {"LOCAL_RANK": "3"}, count=1) == torch.device("cuda", 0)
    with pytest.raises(WorldError, match="local rank 3 has no GPU"):
        _device("cuda", {"LOCAL_RANK": "3"}, count=2)


def test_a_device_the_program_chose_wins():
    assert _device("cuda", {"LOCAL_RANK": "3"}, current=5) == torch.device("cuda", 5)
    assert _device("cuda:1", {"LOCAL_RANK": "3"}) == torch.device("cuda", 1)
    assert _device(2, {"LOCAL_RANK": "3"}) == torch.device("cuda", 2)
    assert _device("cpu", {"LOCAL_RANK": "3"}) == torch.device("cpu")
    assert _device(None, {"LOCAL_RANK": "3"}, cuda=False) == torch.device("cpu")


@pytest.mark.gpu
def test_bare_cuda_on_a_gpu_machine(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())


# ------------------------------------------------------------------ real processes
def test_torchrun_two_ranks_default_sharding_threads_and_seed_check(photo_dataset, tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(ROOT / "tests" / "torchrun_loader.py"),
        str(photo_dataset.cache_path),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    subset = set(range(0, 240, 4))
    for rank, result in enumerate(ranks):
        assert result["world"] == [rank, 2]
        assert result["env_local_world_size"] == "2"
        assert result["num_workers"] == max(1, result["cores"] // 2)
        assert "world_size=3 disagrees" in result["disagree"]
        assert "different seeds [0, 1]" in result["seed_error"]
        assert "seed=rank" in result["seed_error"]
        first, second = result["ids"]
        assert len(first) == len(second) == 30
        assert set(first) | set(second) == subset and not set(first) & set(second)


def test_remote_cache_builder_is_global_rank_zero_under_plain_srun(monkeypatch):
    """Without a process group, ``$RANK`` (torchrun) then ``$SLURM_PROCID`` (srun) decide."""
    from slipstream.remote_cache.obtain import global_rank

    for name in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert global_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert global_rank() == 3
    monkeypatch.setenv("RANK", "1")
    assert global_rank() == 1
