"""SlipstreamLoader(backend="dali") against backend="native": the same batches, bit-exact."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip(
    "nvidia.dali", reason="nvidia-dali is not installed (pip install 'slipstream[dali]')"
)

from slipstream import SlipstreamLoader  # noqa: E402
from slipstream.native.backend import SampleDecodeError  # noqa: E402
from slipstream.pipelines import supervised_train, supervised_val  # noqa: E402

pytestmark = pytest.mark.dali

UINT8_TRAIN = supervised_train(64, normalize=False, dtype="uint8")


def _loader(dataset, backend, batch_size=64, pipelines=UINT8_TRAIN, **kwargs):
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("num_threads", 2)
    return SlipstreamLoader(dataset, batch_size, pipelines, backend=backend, **kwargs)


def _batches(loader) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


def _assert_same(expected, got):
    assert len(expected) == len(got)
    for a, b in zip(expected, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "pipelines",
    [
        UINT8_TRAIN,
        supervised_train(64),
        supervised_val(48, resize_short=56, normalize=False, dtype="uint8"),
    ],
    ids=["uint8-train", "float-train", "uint8-val"],
)
def test_identical_to_native_with_partial_last_batch(photo_dataset, pipelines):
    n = len(photo_dataset)
    assert n % 64  # the last batch is partial
    native = _loader(photo_dataset, "native", pipelines=pipelines, seed=11)
    dali = _loader(photo_dataset, "dali", pipelines=pipelines, seed=11)
    assert len(dali) == len(native) == -(-n // 64)
    for epoch in (0, 1):
        native.set_epoch(epoch)
        dali.set_epoch(epoch)
        expected, got = _batches(native), _batches(dali)
        assert got[-1]["image"].shape[0] == n % 64
        _assert_same(expected, got)


def test_three_epochs_full(photo_dataset):
    loader = _loader(photo_dataset, "dali", batch_size=50)
    for epoch in range(3):
        assert loader.epoch == epoch
        ids = torch.cat([b["index"] for b in loader]).numpy()
        assert sorted(ids.tolist()) == list(range(len(photo_dataset)))
    assert loader.epoch == 3


def test_resume_mid_epoch_yields_the_rest(photo_dataset):
    reference = _loader(photo_dataset, "native", batch_size=32, seed=5)
    reference.set_epoch(2)
    expected = _batches(reference)
    interrupted = _loader(photo_dataset, "dali", batch_size=32, seed=5)
    interrupted.set_epoch(2)
    for k, _ in enumerate(interrupted):
        if k == 2:
            state = interrupted.state_dict()
            break
    assert state == {"epoch": 2, "batch": 3, "seed": 5}
    resumed = _loader(photo_dataset, "dali", batch_size=32, seed=5)
    resumed.load_state_dict(state)
    _assert_same(expected[3:], _batches(resumed))
    assert resumed.state_dict()["epoch"] == 3


def test_distributed_ranks_match_native(photo_dataset):
    for rank in range(3):
        kwargs = {"batch_size": 32, "distributed": True, "rank": rank, "world_size": 3}
        expected = _batches(_loader(photo_dataset, "native", **kwargs))
        got = _batches(_loader(photo_dataset, "dali", **kwargs))
        assert sum(b["image"].shape[0] for b in got) == -(-len(photo_dataset) // 3)
        _assert_same(expected, got)


def test_corrupt_sample_error_names_the_file(corrupt_dataset):
    dataset, victim = corrupt_dataset
    path = dataset.cache.string("path", victim)
    loader = _loader(dataset, "dali", batch_size=16, shuffle=False)
    for _ in range(2):  # the stage rebuilds its pipeline after an error
        with pytest.raises(SampleDecodeError, match=f"sample {victim} .*{path}") as info:
            for _ in loader:
                pass
        assert [f[0] for f in info.value.failures] == [victim]
