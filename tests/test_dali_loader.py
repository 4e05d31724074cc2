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


def test_break_mid_epoch_then_next_epoch(photo_dataset):
    """A break shuts the DALI pipeline down; the next epoch runs on a fresh one, unchanged."""
    native = _loader(photo_dataset, "native", batch_size=32, seed=9)
    dali = _loader(photo_dataset, "dali", batch_size=32, seed=9)
    for k, _ in enumerate(dali):
        if k == 1:
            break
    native.set_epoch(1)
    dali.set_epoch(1)
    _assert_same(_batches(native), _batches(dali))


def test_dali_batches_own_their_memory(photo_dataset):
    """DALI outputs stay valid after later batches are drawn (no slot buffer behind them)."""
    loader = _loader(photo_dataset, "dali", batch_size=32, seed=1)
    reference = _batches(_loader(photo_dataset, "native", batch_size=32, seed=1))
    kept = list(loader)  # no clone
    _assert_same(reference, kept)


def test_prefetched_batches_in_a_user_pipeline(photo_dataset):
    """PrefetchedBatches + decode_crop in a hand-written pipeline = the loader's batches."""
    from nvidia.dali import pipeline_def
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    import slipstream.dali as sdali

    source = sdali.PrefetchedBatches(photo_dataset, 48, UINT8_TRAIN, seed=6)
    assert source.output_names == ["jpegs/image", "windows/image", "flips/image", "label"]

    @pipeline_def(batch_size=48, num_threads=2, device_id=None)
    def pipe():
        jpegs, windows, flips, labels = sdali.external_source(source)
        return sdali.decode_crop(jpegs, windows, size=64, flip=flips), labels

    pipeline = pipe()
    pipeline.build()
    iterator = DALIGenericIterator(
        pipeline, ["image", "label"], auto_reset=True, last_batch_policy=LastBatchPolicy.PARTIAL
    )
    native = _loader(photo_dataset, "native", batch_size=48, seed=6)
    for epoch in range(3):  # full epochs in a row, epochs advancing as the loader's do
        expected = _batches(native)
        got = [b for (b,) in iterator]
        assert len(got) == len(expected) == len(source)
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a["image"].permute(0, 2, 3, 1), b["image"])
            assert torch.equal(a["label"], b["label"].flatten())
        assert source.epoch == epoch + 1


def test_one_pipeline_serves_every_epoch(photo_dataset, monkeypatch):
    """Epochs reuse the built pipeline (a rebuild costs nvJPEG's set-up on a GPU each epoch)."""
    from slipstream.dali.loader_backend import DaliBackend

    builds = []
    build = DaliBackend._build
    monkeypatch.setattr(DaliBackend, "_build", lambda self: builds.append(1) or build(self))
    native = _loader(photo_dataset, "native", batch_size=48, seed=6)
    dali = _loader(photo_dataset, "dali", batch_size=48, seed=6)
    for epoch in range(3):
        native.set_epoch(epoch)
        dali.set_epoch(epoch)
        _assert_same(_batches(native), _batches(dali))
    assert len(builds) == 1
