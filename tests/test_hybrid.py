"""Hybrid decode: one batch split between two engines, merged; checked with CPU engine pairs.

The oracle is one engine on the whole batch: two engines that each decode the same windows
and flips bit for bit (the C++ kernel, the DALI CPU operator) must give the same merged
batches, whatever the split, over several epochs, with a corrupt sample in either part.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loader_engines import assert_same, batches, has_dali, make_loader

from slipstream.decode.hybrid import SplitEngine, SplitRatio
from slipstream.decode.native import NativeEngine
from slipstream.decode.stage import EngineOptions
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline, supervised_train
from slipstream.prefetch import Prefetcher
from slipstream.prefetch.batch import allocate_batch, sub_batch

BATCH = 32


def _pipelines():
    return {
        "image": ImagePipeline(DecodeRandomResizedCrop((40, 48)), 0.5, None, "uint8"),
        "small": ImagePipeline(
            DecodeRandomResizedCrop(24), 0.5, None, "uint8", field="image", view=1
        ),
    }


def _options(pipelines, decode_device="cpu", threads=1):
    return EngineOptions(pipelines, BATCH, torch.device("cpu"), threads, 2, decode_device, "jpeg")


def _dali(pipelines):
    from slipstream.dali.engine import DaliEngine

    return DaliEngine(_options(pipelines))


class Scripted:
    """A controller whose splits are given (the merge is under test, not the ratio)."""

    def __init__(self, splits):
        self.splits = list(splits)
        self.calls = 0
        self.updates = []

    def split(self, n):
        k = self.splits[self.calls % len(self.splits)]
        self.calls += 1
        return min(k, n)

    def update(self, counts, waits, interval):
        self.updates.append(counts)


def _decode_epochs(dataset, engine, pipelines, epochs, shuffle=True):
    """Per epoch: the engine's decoded batches (ids, cloned images, failures)."""
    prefetcher = Prefetcher(dataset.cache, pipelines, batch_size=BATCH, seed=7, shuffle=shuffle)
    prefetcher.reserve(engine.slots_in_flight)
    out = []
    for epoch in range(epochs):
        stream = prefetcher.start(epoch)
        gen = engine.batches(stream)
        try:
            rows = [
                (
                    d.sample_ids.copy(),
                    {k: v.clone() for k, v in d.images.items()},
                    sorted((f.position, f.field, f.code) for f in d.failures),
                )
                for d in gen
            ]
        finally:
            gen.close()
            stream.close()
        out.append(rows)
    return out


def _assert_equal_epochs(expected, got):
    assert len(expected) == len(got)
    for a_epoch, b_epoch in zip(expected, got, strict=True):
        assert len(a_epoch) == len(b_epoch)
        for (ids_a, img_a, fail_a), (ids_b, img_b, fail_b) in zip(a_epoch, b_epoch, strict=True):
            np.testing.assert_array_equal(ids_a, ids_b)
            assert img_a.keys() == img_b.keys()
            for name in img_a:
                assert img_a[name].shape == img_b[name].shape, name
                assert torch.equal(img_a[name], img_b[name]), name
            assert fail_a == fail_b


# ---------------------------------------------------------------------------- sub_batch
def test_sub_batch_is_a_view_of_the_rows():
    batch = allocate_batch(8, {"image": ("jpeg", ("a", "b"), 100)})
    batch.count, batch.epoch, batch.index = 6, 3, 2
    images = batch.images["image"]
    batch.sample_ids[:] = np.arange(8) + 100
    images.offsets[:] = np.arange(8) * 10
    images.sizes[:] = 10
    images.shapes[:] = np.arange(16).reshape(8, 2)
    images.windows[:] = np.arange(64).reshape(2, 8, 4)
    images.flips[:] = np.arange(16).reshape(2, 8) % 2
    part = sub_batch(batch, 2, 5)
    assert (part.count, part.epoch, part.index) == (3, 3, 2)
    np.testing.assert_array_equal(part.ids(), [102, 103, 104])
    sub = part.images["image"]
    assert sub.data is images.data  # the bytes are shared
    np.testing.assert_array_equal(sub.offsets, [20, 30, 40])  # still into the shared bytes
    np.testing.assert_array_equal(sub.windows, images.windows[:, 2:5])
    np.testing.assert_array_equal(sub.flips, images.flips[:, 2:5])
    np.testing.assert_array_equal(sub.sample_windows(3), images.sample_windows(5)[2:5])
    assert np.shares_memory(sub.windows, images.windows)
    assert sub.views == images.views and sub.format == "jpeg"
    empty = sub_batch(batch, 6, 6)
    assert empty.count == 0
    with pytest.raises(ValueError, match="not within a batch of 6"):
        sub_batch(batch, 4, 7)


# ---------------------------------------------------------------------------- SplitEngine
def test_native_plus_native_equals_native(photo_dataset):
    pipelines = _pipelines()
    expected = _decode_epochs(photo_dataset, NativeEngine(_options(pipelines)), pipelines, 3)
    # every kind of split: the first part empty, one row, most rows, the second part empty
    controller = Scripted([0, 1, 16, 31, 32, 7])
    split = SplitEngine(
        NativeEngine(_options(pipelines)),
        NativeEngine(_options(pipelines)),
        batch_size=BATCH,
        controller=controller,
    )
    got = _decode_epochs(photo_dataset, split, pipelines, 3)
    _assert_equal_epochs(expected, got)
    assert controller.calls == sum(len(e) for e in got)  # one split per batch
    assert (0, BATCH) in controller.updates and (BATCH, 0) in controller.updates


def test_adapting_ratio_stays_bit_exact(photo_dataset):
    """The real controller, from a lopsided start: every split it picks merges exactly."""
    pipelines = _pipelines()
    expected = _decode_epochs(photo_dataset, NativeEngine(_options(pipelines)), pipelines, 2)
    ratio = SplitRatio(0.9, warmup=0)
    split = SplitEngine(
        NativeEngine(_options(pipelines)),
        NativeEngine(_options(pipelines)),
        batch_size=BATCH,
        controller=ratio,
    )
    _assert_equal_epochs(expected, _decode_epochs(photo_dataset, split, pipelines, 2))
    assert len(ratio.history) == sum(len(e) for e in expected)
    assert all(1 <= k <= n - 1 for n, k in ratio.history)


@pytest.mark.parametrize("victim_part", [0, 1])
def test_corrupt_sample_in_either_part(bogus_huffman_dataset, victim_part):
    dataset, victim = bogus_huffman_dataset
    pipelines = _pipelines()
    position = victim % BATCH  # unshuffled: the victim's row in its batch
    k = position + 1 if victim_part == 0 else position
    expected = _decode_epochs(
        dataset, NativeEngine(_options(pipelines)), pipelines, 1, shuffle=False
    )
    split = SplitEngine(
        NativeEngine(_options(pipelines)),
        NativeEngine(_options(pipelines)),
        batch_size=BATCH,
        controller=Scripted([k]),
    )
    got = _decode_epochs(dataset, split, pipelines, 1, shuffle=False)
    _assert_equal_epochs(expected, got)
    failures = got[0][victim // BATCH][2]
    assert [(p, f) for p, f, _ in failures] == [(position, "image")]


@pytest.mark.dali
@pytest.mark.skipif(not has_dali(), reason="nvidia-dali is not installed")
@pytest.mark.parametrize("victim_part", [0, 1])
def test_native_plus_dali_cpu_equals_native(bogus_huffman_dataset, victim_part):
    """The DALI CPU operator's part: same pixels, its per-sample status remapped."""
    dataset, victim = bogus_huffman_dataset
    pipelines = _pipelines()
    position = victim % BATCH
    k = position + 1 if victim_part == 0 else position
    expected = _decode_epochs(
        dataset, NativeEngine(_options(pipelines)), pipelines, 2, shuffle=False
    )
    split = SplitEngine(
        NativeEngine(_options(pipelines)),
        _dali(pipelines),
        batch_size=BATCH,
        controller=Scripted([k, 5, 27]),
    )
    got = _decode_epochs(dataset, split, pipelines, 2, shuffle=False)
    _assert_equal_epochs(expected, got)


# ---------------------------------------------------------------------------- loader
@pytest.mark.dali
@pytest.mark.skipif(not has_dali(), reason="nvidia-dali is not installed")
def test_loader_hybrid_on_cpu_equals_native(photo_dataset):
    pipelines = supervised_train(48, normalize=False, dtype="uint8")
    native = make_loader(photo_dataset, "native-jpeg", 40, pipelines, seed=3)
    hybrid = make_loader(
        photo_dataset, "dali-cpu-jpeg", 40, pipelines, seed=3, decode_device="hybrid"
    )
    assert (hybrid.engine, hybrid.decode_device) == ("hybrid-cpu", "hybrid")
    for epoch in range(3):
        native.set_epoch(epoch)
        hybrid.set_epoch(epoch)
        assert_same(batches(native), batches(hybrid))


@pytest.mark.dali
@pytest.mark.skipif(not has_dali(), reason="nvidia-dali is not installed")
def test_loader_hybrid_float_output(photo_dataset):
    """Normalized once on the merged uint8 batch: equal to native's fused float within 1e-6."""
    pipelines = supervised_train(48, normalize=True, dtype="float32")
    native = batches(make_loader(photo_dataset, "native-jpeg", 40, pipelines, seed=5))
    hybrid = batches(
        make_loader(photo_dataset, "dali-cpu-jpeg", 40, pipelines, seed=5, decode_device="hybrid")
    )
    assert len(native) == len(hybrid)
    for a, b in zip(native, hybrid, strict=True):
        assert b["image"].dtype == torch.float32 and b["image"].shape == a["image"].shape
        assert torch.equal(a["label"], b["label"])
        torch.testing.assert_close(b["image"], a["image"], atol=1e-5, rtol=0)


@pytest.mark.dali
@pytest.mark.skipif(not has_dali(), reason="nvidia-dali is not installed")
def test_loader_hybrid_skips_the_corrupt_sample(bogus_huffman_dataset):
    dataset, victim = bogus_huffman_dataset
    pipelines = supervised_train(32, normalize=False, dtype="uint8")
    kwargs = {"seed": 1, "on_error": "skip"}
    native = batches(make_loader(dataset, "native-jpeg", 24, pipelines, **kwargs))
    hybrid = batches(
        make_loader(dataset, "dali-cpu-jpeg", 24, pipelines, decode_device="hybrid", **kwargs)
    )
    assert_same(native, hybrid)
    invalid = [int(i) for b in hybrid if "valid" in b for i in b["index"][~b["valid"]]]
    assert invalid == [victim]


# ---------------------------------------------------------------------------- SplitRatio
def _simulate(ratio: SplitRatio, rates, batches_: int, n: int = 256) -> list[float]:
    """Shares over ``batches_`` steps of two parts running flat out at ``rates`` img/s."""
    shares = []
    for _ in range(batches_):
        k = ratio.split(n)
        times = (k / rates[0], (n - k) / rates[1])
        interval = max(times)  # the merge waits for the slower part only
        waits = (times[0], 0.0) if times[0] >= times[1] else (0.0, times[1])
        ratio.update((k, n - k), waits, interval)
        shares.append(k / n)
    return shares


@pytest.mark.parametrize(
    ("rates", "start"), [((1000, 3000), 0.5), ((24000, 23000), 0.1), ((5000, 40000), 0.4)]
)
def test_split_ratio_converges_to_the_rates(rates, start):
    ratio = SplitRatio(start)
    shares = _simulate(ratio, rates, 60)
    target = rates[0] / sum(rates)
    assert abs(np.mean(shares[-20:]) - target) < 0.03, (np.mean(shares[-20:]), target)
    assert abs(np.mean(shares[15:]) - target) < 0.05  # within 15 batches
    assert ratio.rates is not None


def test_split_ratio_learns_nothing_when_the_consumer_is_slow():
    ratio = SplitRatio(0.3, warmup=0)
    for _ in range(10):
        k = ratio.split(100)
        ratio.update((k, 100 - k), (0.0001, 0.0), 1.0)  # both parts were ready
    assert ratio.rates is None and ratio.share() == 0.3


def test_split_ratio_edges():
    assert SplitRatio(0.99).split(2) == 1  # each part keeps at least one row
    assert SplitRatio(0.01).split(2) == 1
    assert SplitRatio(0.5).split(1) in (0, 1)
    with pytest.raises(ValueError, match="ratio"):
        SplitRatio(1.0)
