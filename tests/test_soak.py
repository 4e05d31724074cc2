"""No leaks: loaders created, iterated and deleted give back their threads, files and memory.

On each CPU engine, 10 loaders (half closed by ``with``, half by ``del``) leave the
process's OS thread and open-fd counts where they were after a first warm-up loader (which
loads the engine's libraries once), and RSS (after ``gc`` and ``malloc_trim``) grows by at
most 5% (+ 16 MiB of allocator noise) from the first. One DALI CPU loader with float32
output keeps its RSS over many epochs (DALI ``malloc``-s every output batch; glibc's dynamic
thresholds used to keep freed batches in DALI's thread arenas, a batch more every few
epochs). ``benchmarks/bench_soak.py`` runs the long version (50 loaders, 150 epochs).
"""

from __future__ import annotations

import ctypes
import gc
import os

import numpy as np
import psutil
import pytest
import torch
from loader_engines import engine_params, make_loader

from slipstream.pipelines import supervised_train

CPU_ENGINES = ["native-jpeg", "dali-cpu-jpeg"]


def _counts() -> tuple[int, int]:
    gc.collect()
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


def _rss_mib() -> float:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss / 2**20


def _epoch(dataset, engine: str, use_with: bool) -> int:
    pipelines = supervised_train(96, dtype="float32")
    loader = make_loader(dataset, engine, 48, pipelines)
    seen = 0
    if use_with:
        with loader:
            for batch in loader:
                seen += len(batch["image"])
    else:
        for batch in loader:
            seen += len(batch["image"])
    del loader, batch
    return seen


@pytest.mark.parametrize("engine", engine_params(CPU_ENGINES))
def test_loaders_release_threads_fds_and_memory(photo_dataset, engine):
    assert _epoch(photo_dataset, engine, use_with=True) == len(photo_dataset)  # warm-up
    threads, fds = _counts()
    rss = []
    for i in range(10):
        assert _epoch(photo_dataset, engine, use_with=i % 2 == 0) == len(photo_dataset)
        rss.append(_rss_mib())
    assert _counts() == (threads, fds)
    assert rss[-1] <= rss[0] * 1.05 + 16, rss


@pytest.mark.parametrize("engine", engine_params(CPU_ENGINES))
def test_close_releases_the_engine_and_the_loader_runs_again(photo_dataset, engine):
    loader = make_loader(
        photo_dataset, engine, 64, supervised_train(64, normalize=False, dtype="uint8")
    )
    iterator = iter(loader)
    first = next(iterator)["image"].clone()
    threads, _ = _counts()
    loader.close()
    assert loader._decoder is None and _counts()[0] < threads  # the epoch's threads stopped
    with pytest.raises(StopIteration):
        next(iterator)
    loader.close()  # idempotent
    loader.set_epoch(0)  # a pass left early runs the next epoch unless told otherwise
    with loader:
        again = [b["image"].clone() for b in loader]
    assert again[0].equal(first)  # a fresh engine, the same epoch 0
    assert sum(len(b) for b in again) == len(photo_dataset)


@pytest.mark.parametrize("engine", engine_params(["dali-cpu-jpeg"]))
def test_float_epochs_keep_their_memory(photo_dataset, engine):
    """24 float32 epochs on one DALI CPU loader: RSS after the warm-up grows < 2 batches.

    Batches of 32 float32 128-px images (6 MiB each, below glibc's 32 MiB dynamic mmap
    cap) over 64 samples: before the fix the RSS rose by a batch every few epochs (+40 to
    +190 MiB over 20-40 epochs).
    """
    pipelines = supervised_train(128, dtype="float32")
    batch_mib = 32 * 128 * 128 * 3 * 4 / 2**20
    rss = []
    with make_loader(photo_dataset, engine, 32, pipelines, indices=np.arange(64)) as loader:
        for _ in range(24):
            for batch in loader:
                assert batch["image"].dtype == torch.float32
            del batch
            gc.collect()
            rss.append(psutil.Process().memory_info().rss / 2**20)
    assert max(rss[4:]) - rss[4] < 2 * batch_mib, [round(r) for r in rss]
