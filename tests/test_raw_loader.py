"""``PrefetchingDataLoader``: stored bytes per batch, in the order ``SlipstreamLoader`` reads.

Oracles: the bytes of the stored items read straight from ``image.bin`` with numpy and the
``image.meta.npy`` table (and the original JPEG files), the orders of a native
``SlipstreamLoader`` run and of ``epoch_order``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from slipstream import PrefetchingDataLoader, SlipstreamError, SlipstreamLoader
from slipstream.decode import SampleCorruptError
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline
from slipstream.prefetch.position import ResumeStateError
from slipstream.sampling import epoch_order


def stored_items(dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(image.bin bytes, meta table)`` read with numpy, not through the cache reader."""
    root = Path(dataset.cache_path)
    return np.fromfile(root / "image.bin", dtype=np.uint8), np.load(root / "image.meta.npy")


def epoch_ids(loader) -> list[int]:
    return [i for batch in loader for i in batch["indices"].tolist()]


@pytest.mark.parametrize("num_workers", [1, 3])
def test_every_item_equals_its_stored_bytes(photo_dataset, num_workers):
    data, meta = stored_items(photo_dataset)
    labels = np.asarray(photo_dataset.cache.numbers("label"))
    loader = PrefetchingDataLoader(photo_dataset, 32, shuffle=True, seed=3, num_workers=num_workers)
    assert loader.num_workers == num_workers
    seen = []
    for batch in loader:
        n = len(batch["indices"])
        assert batch["data"].dtype == np.uint8 and batch["data"].ndim == 1
        assert batch["sizes"].dtype == np.uint64 and batch["offsets"].dtype == np.uint64
        assert batch["heights"].dtype == np.uint32 and batch["widths"].dtype == np.uint32
        assert batch["indices"].dtype == np.int64 and batch["data"].size == batch["sizes"].sum()
        items = PrefetchingDataLoader.items(batch)
        assert len(items) == n
        for sid, item in zip(batch["indices"].tolist(), items, strict=True):
            start, size = int(meta["data_ptr"][sid]), int(meta["data_size"][sid])
            np.testing.assert_array_equal(item, data[start : start + size])
        ids = batch["indices"]
        np.testing.assert_array_equal(batch["heights"], meta["height"][ids])
        np.testing.assert_array_equal(batch["widths"], meta["width"][ids])
        np.testing.assert_array_equal(batch["label"], labels[ids])
        seen += ids.tolist()
    assert sorted(seen) == list(range(len(photo_dataset)))
    assert seen != sorted(seen)
    assert len(loader) == -(-len(photo_dataset) // 32)


def test_items_are_the_original_jpeg_files(photo_dataset, photo_folder):
    loader = PrefetchingDataLoader(photo_dataset, 16, fields=["path"])
    batch = next(iter(loader))
    assert len(batch["path"]) == 16
    for path, item in zip(batch["path"], PrefetchingDataLoader.items(batch), strict=True):
        assert item.tobytes() == (photo_folder / path).read_bytes()


@pytest.mark.parametrize("shuffle", [False, True])
def test_order_equals_slipstream_loaders(photo_dataset, shuffle):
    pipelines = {"image": ImagePipeline(DecodeRandomResizedCrop(32), dtype="uint8")}
    decoded = SlipstreamLoader(
        photo_dataset, 64, pipelines, seed=5, shuffle=shuffle, backend="native", num_workers=1
    )
    raw = PrefetchingDataLoader(photo_dataset, 64, shuffle=shuffle, seed=5)
    for epoch in (0, 1):
        decoded.set_epoch(epoch)
        raw.set_epoch(epoch)
        assert epoch_ids(raw) == [i for b in decoded for i in b["index"].tolist()]
    decoded.close()


def test_epochs_advance_and_set_epoch_replays(photo_dataset):
    loader = PrefetchingDataLoader(photo_dataset, 50, shuffle=True, seed=1)
    first, second = epoch_ids(loader), epoch_ids(loader)
    assert first != second and sorted(first) == sorted(second)
    loader.set_epoch(1)
    assert epoch_ids(loader) == second
    assert second == epoch_order(len(photo_dataset), seed=1, epoch=1).tolist()


def test_a_pass_left_early_runs_the_next_epoch_unless_a_state_was_loaded(photo_dataset):
    """SlipstreamLoader's epoch rules (docs/epochs.md), on the raw loader."""
    loader = PrefetchingDataLoader(photo_dataset, 16, shuffle=True, seed=2)
    it = iter(loader)
    first = next(it)["indices"].tolist()
    state = loader.state_dict()
    del it
    assert state["epoch"] == 0 and state["samples"] == 16
    assert epoch_ids(loader) == epoch_order(len(photo_dataset), seed=2, epoch=1).tolist()
    loader.load_state_dict(state)
    loader.set_epoch(0)  # the loaded state's epoch: the resume point is kept
    rest = epoch_ids(loader)
    assert first + rest == epoch_order(len(photo_dataset), seed=2, epoch=0).tolist()


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_ranks_are_disjoint_shards(photo_dataset, drop_last):
    world = 3
    n = len(photo_dataset) - 1  # 239: uneven across 3 ranks
    indices = np.arange(n)
    shards = []
    for rank in range(world):
        loader = PrefetchingDataLoader(
            photo_dataset,
            32,
            shuffle=True,
            drop_last=drop_last,
            seed=2,
            indices=indices,
            distributed=True,
            rank=rank,
            world_size=world,
        )
        ids = epoch_ids(loader)
        expected = epoch_order(
            len(photo_dataset),
            seed=2,
            epoch=0,
            indices=indices,
            rank=rank,
            world_size=world,
            drop_last=drop_last,
        )
        if drop_last:
            expected = expected[: len(expected) // 32 * 32]
        assert ids == expected.tolist()
        shards.append(ids)
    counts = np.bincount([i for shard in shards for i in shard], minlength=n)
    if drop_last:
        assert counts.max() == 1  # disjoint
    else:
        assert counts.min() == 1 and counts.sum() == n + 1  # every id; one padded repeat


def test_indices_subset(photo_dataset):
    indices = np.arange(3, 240, 7)
    loader = PrefetchingDataLoader(photo_dataset, 8, shuffle=True, indices=indices)
    ids = epoch_ids(loader)
    assert sorted(ids) == indices.tolist()
    assert len(loader) == -(-len(indices) // 8)


def test_resume_mid_epoch_at_another_batch_size(photo_dataset):
    loader = PrefetchingDataLoader(photo_dataset, 32, shuffle=True, seed=4)
    loader.set_epoch(2)
    full = epoch_ids(loader)
    loader.set_epoch(2)
    it = iter(loader)
    consumed = [i for _ in range(3) for i in next(it)["indices"].tolist()]
    state = loader.state_dict()
    it.close()
    assert state["epoch"] == 2 and state["samples"] == 96
    resumed = PrefetchingDataLoader(photo_dataset, 20, shuffle=True, seed=4)
    resumed.load_state_dict(state)
    assert consumed + epoch_ids(resumed) == full
    quasi = PrefetchingDataLoader(photo_dataset, 32, seed=4, order="quasi_random")
    with pytest.raises(ResumeStateError, match="order"):
        quasi.load_state_dict(state)


def test_batch_is_a_view_reused_after_the_next_one(photo_dataset):
    loader = PrefetchingDataLoader(photo_dataset, 16, batches_ahead=1)
    slots = loader.prefetcher
    it = iter(loader)
    batch = next(it)
    assert any(np.shares_memory(batch["data"], s.images["image"].data) for s in slots._ring())
    it.close()
    loader.close()


@pytest.fixture(scope="module")
def flipped_dataset(photo_dataset, tmp_path_factory):
    """``(dataset, victim)``: one bit flipped in the middle of sample 11's stored JPEG."""
    from slipstream import SlipstreamDataset

    dest = tmp_path_factory.mktemp("raw-flipped") / "cache"
    shutil.copytree(photo_dataset.cache_path, dest)
    meta = np.load(dest / "image.meta.npy")
    victim = 11
    with open(dest / "image.bin", "r+b") as f:
        f.seek(int(meta["data_ptr"][victim] + meta["data_size"][victim] // 2))
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0x10]))
    return SlipstreamDataset(dest), victim


def test_flipped_byte_raises_sample_corrupt_error(flipped_dataset):
    dataset, victim = flipped_dataset
    loader = PrefetchingDataLoader(dataset, 8)
    with pytest.raises(SampleCorruptError, match=rf"sample {victim} \(.*\.jpg\).*checksum") as info:
        epoch_ids(loader)
    assert isinstance(info.value, SlipstreamError)
    assert str(dataset.cache.path) in str(info.value)


@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_flipped_byte_skipped(flipped_dataset, num_workers):
    """The victim is flagged whichever share of the split gather copies it."""
    dataset, victim = flipped_dataset
    loader = PrefetchingDataLoader(dataset, 8, on_error="skip", num_workers=num_workers)
    invalid = [
        int(i) for b in loader for i, ok in zip(b["indices"], b["valid"], strict=True) if not ok
    ]
    assert invalid == [victim]


def test_bad_arguments(photo_dataset):
    with pytest.raises(ValueError, match="order"):
        PrefetchingDataLoader(photo_dataset, 8, order="backwards")
    with pytest.raises(ValueError, match="shuffle=False"):
        PrefetchingDataLoader(photo_dataset, 8, shuffle=False, order="random")
    with pytest.raises(KeyError, match="nope"):
        PrefetchingDataLoader(photo_dataset, 8, image_field="nope")
    with pytest.raises(TypeError, match="SlipstreamDataset"):
        PrefetchingDataLoader(photo_dataset.cache, 8)


@pytest.mark.parametrize("order", ["random", "sequential", "quasi_random"])
def test_read_ahead_reads_the_same_bytes(photo_dataset, order):
    plain = PrefetchingDataLoader(photo_dataset, 32, order=order, seed=9)
    hinted = PrefetchingDataLoader(photo_dataset, 32, order=order, seed=9, read_ahead=True)
    for a, b in zip(plain, hinted, strict=True):
        np.testing.assert_array_equal(a["indices"], b["indices"])
        np.testing.assert_array_equal(a["data"], b["data"])


def test_read_ahead_hints_items_or_whole_blocks_once_per_epoch(photo_dataset):
    from slipstream.prefetch.read_ahead import ReadAhead

    cache = photo_dataset.cache
    data, meta = cache.data("image"), cache.meta("image")
    ids = np.arange(len(cache))
    items = ReadAhead(data, meta["data_ptr"], meta["data_size"], ids)
    assert items.advise(np.array([2, 0, 1])) == 1  # neighbouring items: one merged span
    assert items.advise(np.array([0, 100, 200])) == 3
    blocks = ReadAhead(data, meta["data_ptr"], meta["data_size"], ids, block_size=64)
    assert blocks.advise(np.array([5, 70, 6])) == 1  # blocks 0 and 1 are one span
    assert blocks.advise(np.array([1, 64, 63])) == 0  # already hinted this epoch
    assert blocks.advise(np.array([200])) == 1
    blocks.new_epoch()
    assert blocks.advise(np.array([0])) == 1
