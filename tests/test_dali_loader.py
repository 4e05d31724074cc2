"""What only the DALI engine does: outputs it owns, and PrefetchedBatches.

The loader contract on the DALI CPU engine, and its bit-exact equality with the native
engine, are in ``test_loader_contract.py``; the engine's life cycle (one pipeline for every
epoch, breaks, errors inside DALI) in ``test_dali_engine.py``.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip(
    "nvidia.dali", reason="nvidia-dali is not installed (pip install 'slipstream[dali]')"
)

from loader_engines import assert_same, batches, make_loader  # noqa: E402

from slipstream.pipelines import supervised_train  # noqa: E402

pytestmark = pytest.mark.dali

UINT8_TRAIN = supervised_train(64, normalize=False, dtype="uint8")


def test_dali_batches_own_their_memory(photo_dataset):
    """DALI outputs stay valid after later batches are drawn (no slot buffer behind them)."""
    loader = make_loader(photo_dataset, "dali-cpu-jpeg", 32, UINT8_TRAIN, seed=1)
    reference = batches(make_loader(photo_dataset, "native-jpeg", 32, UINT8_TRAIN, seed=1))
    kept = list(loader)  # no clone
    assert_same(reference, kept)


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
    native = make_loader(photo_dataset, "native-jpeg", 48, UINT8_TRAIN, seed=6)
    for epoch in range(3):  # full epochs in a row, epochs advancing as the loader's do
        expected = batches(native)
        got = [b for (b,) in iterator]
        assert len(got) == len(expected) == len(source)
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a["image"].permute(0, 2, 3, 1), b["image"])
            assert torch.equal(a["label"], b["label"].flatten())
        assert source.epoch == epoch + 1
