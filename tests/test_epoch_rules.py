"""Which epoch each iteration runs: every row of the table in docs/epochs.md.

Oracle: the sample order of epoch ``e`` is that of a fresh loader told ``set_epoch(e)``
(one complete pass); the rows check which of those orders (and from which sample) a loader
yields after a complete pass, a ``break``, an error, a newer ``iter()``, ``load_state_dict``
and ``set_epoch``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from loader_engines import engine_params, make_loader

from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline

PIPES = {"image": ImagePipeline(DecodeRandomResizedCrop(16), dtype="uint8")}
SUBSET = np.arange(0, 240, 5)  # 48 samples: 3 batches of 16
BATCH = 16


def _loader(dataset, engine="native-jpeg", **kwargs):
    return make_loader(dataset, engine, BATCH, PIPES, seed=4, indices=SUBSET, **kwargs)


def _ids(batches) -> list[int]:
    return [i for batch in batches for i in batch["index"].tolist()]


def _first(loader, n: int) -> list[int]:
    """Take ``n`` batches of a new iteration and leave it (a ``break``)."""
    taken = []
    for k, batch in enumerate(loader):
        taken += batch["index"].tolist()
        if k + 1 == n:
            break
    return taken


@pytest.fixture(scope="module")
def orders(photo_dataset) -> dict[int, list[int]]:
    """Epoch -> its sample order (a fresh loader per epoch)."""
    out = {}
    for epoch in range(4):
        loader = _loader(photo_dataset)
        loader.set_epoch(epoch)
        out[epoch] = _ids(loader)
    assert len({tuple(o) for o in out.values()}) == 4  # the epochs differ
    return out


def test_a_new_loader_runs_epoch_0(photo_dataset, orders):
    assert _ids(_loader(photo_dataset)) == orders[0]


def test_after_a_complete_pass_the_next_epoch(photo_dataset, orders):
    loader = _loader(photo_dataset)
    assert [_ids(loader) for _ in range(3)] == [orders[0], orders[1], orders[2]]
    assert loader.epoch == 3 and loader.state_dict()["samples"] == 0


def test_after_a_break_the_next_epoch_from_its_start(photo_dataset, orders):
    loader = _loader(photo_dataset)
    assert _first(loader, 1) == orders[0][:BATCH]
    state = loader.state_dict()  # still the interrupted epoch and its position
    assert (state["epoch"], state["samples"], state["batch"]) == (0, BATCH, 1)
    assert _ids(loader) == orders[1]
    assert _ids(loader) == orders[2]


def test_a_checkpoint_written_after_a_break_resumes_the_rest(photo_dataset, orders):
    loader = _loader(photo_dataset)
    _first(loader, 2)
    state = json.loads(json.dumps(loader.state_dict()))
    resumed = _loader(photo_dataset)
    resumed.load_state_dict(state)
    assert _ids(resumed) == orders[0][2 * BATCH :]
    assert _ids(resumed) == orders[1]


def test_after_an_error_the_next_epoch(photo_dataset, orders):
    calls = []

    def fail_on_second(batch):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a training step failed")
        return batch

    loader = _loader(photo_dataset, after_batch_transforms=[fail_on_second])
    with pytest.raises(RuntimeError, match="training step"):
        _ids(loader)
    assert _ids(loader) == orders[1]


def test_after_a_newer_iter_the_next_epoch(photo_dataset, orders):
    loader = _loader(photo_dataset)
    first = iter(loader)
    assert next(first)["index"].tolist() == orders[0][:BATCH]
    assert _ids(loader) == orders[1]  # the newer iteration closed the first


def test_an_iter_never_started_does_not_count(photo_dataset, orders):
    loader = _loader(photo_dataset)
    iter(loader)
    assert _ids(loader) == orders[0]


def test_load_state_dict_resumes_the_saved_epoch(photo_dataset, orders):
    saver = _loader(photo_dataset)
    saver.set_epoch(2)
    _first(saver, 1)
    state = saver.state_dict()
    loader = _loader(photo_dataset)
    _ids(loader)  # a complete pass of epoch 0 first: the state decides, not the history
    loader.load_state_dict(state)
    assert _ids(loader) == orders[2][BATCH:]
    assert _ids(loader) == orders[3]


def test_set_epoch_of_the_loaded_state_keeps_the_resume_point(photo_dataset, orders):
    saver = _loader(photo_dataset)
    saver.set_epoch(1)
    _first(saver, 2)
    loader = _loader(photo_dataset)
    loader.load_state_dict(saver.state_dict())
    for epoch in range(1, 3):  # the usual loop, started at the checkpoint's epoch
        loader.set_epoch(epoch)
        got = _ids(loader)
        assert got == (orders[1][2 * BATCH :] if epoch == 1 else orders[2])


def test_set_epoch_of_another_epoch_drops_the_resume_point(photo_dataset, orders, caplog):
    saver = _loader(photo_dataset)
    saver.set_epoch(1)
    _first(saver, 1)
    loader = _loader(photo_dataset)
    loader.load_state_dict(saver.state_dict())
    with caplog.at_level(logging.WARNING, logger="slipstream"):
        loader.set_epoch(3)
    assert "drops the resume point loaded for epoch 1" in caplog.text
    assert _ids(loader) == orders[3]


def test_set_epoch_each_epoch_gives_each_epoch_once(photo_dataset, orders):
    loader = _loader(photo_dataset)
    seen = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        seen.append(_ids(loader))
    assert seen == [orders[e] for e in range(4)]


def test_set_epoch_after_a_break_runs_that_epoch_from_its_start(photo_dataset, orders):
    loader = _loader(photo_dataset)
    loader.set_epoch(2)
    _first(loader, 1)
    loader.set_epoch(2)
    assert _ids(loader) == orders[2]


@pytest.mark.parametrize("engine", engine_params(["dali-cpu-jpeg"]))
def test_dali_after_a_break_the_next_epoch(photo_dataset, orders, engine):
    loader = _loader(photo_dataset, engine)
    assert _first(loader, 1) == orders[0][:BATCH]
    assert _ids(loader) == orders[1]
