"""Quasi-random epoch order (``order="quasi_random"``): a keyed permutation with locality."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from slipstream import PrefetchingDataLoader, SlipstreamLoader
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline
from slipstream.sampling import ORDERS, epoch_order, quasi_random_permutation, resolve_order


class OrderOption(enum.Enum):
    """FFCV's ``ffcv.loader.OrderOption`` members (FFCV itself is not a test dependency)."""

    SEQUENTIAL = enum.auto()
    RANDOM = enum.auto()
    QUASI_RANDOM = enum.auto()


def quasi(n: int, seed: int = 0, epoch: int = 0, **kwargs) -> np.ndarray:
    return epoch_order(n, seed=seed, epoch=epoch, order="quasi_random", **kwargs)


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 10_000])
def test_is_a_permutation_of_the_epochs_samples(n):
    order = quasi(n, block_size=64, window=4)
    assert order.dtype == np.int64
    assert np.array_equal(np.sort(order), np.arange(n))
    indices = np.arange(7, 3 * n + 7, 3)
    subset = epoch_order(4 * n + 7, seed=1, epoch=0, order="quasi_random", indices=indices)
    assert np.array_equal(np.sort(subset), indices)


@pytest.mark.parametrize(("block", "window"), [(64, 4), (16, 8), (1, 3), (100, 1), (50, 5)])
def test_reads_within_a_window_touch_a_bounded_set_of_blocks(block, window):
    n = 20_000
    order = quasi(n, seed=3, block_size=block, window=window)
    blocks = order // block  # ids are 0..n-1, so blocks are runs of `block` ids
    span = block * window
    bound = window + (n % block != 0)  # a short last block shifts the cut by one block
    for start in range(0, n, span):  # a window: `span` reads from at most `window` blocks
        assert np.unique(blocks[start : start + span]).size <= bound
    for start in range(0, n - span, 997):  # any run of `span` reads spans two windows
        assert np.unique(blocks[start : start + span]).size <= 2 * window + 1
    # ...and the blocks themselves come in shuffled order, mixed within each window.
    first_seen = np.unique(blocks, return_index=True)[1]
    assert not np.array_equal(np.argsort(first_seen), np.arange(first_seen.size))
    if window > 1 and block > 1:
        assert np.unique(blocks[:block]).size > 1


def test_keyed_by_seed_and_epoch_and_reproducible():
    n = 50_000
    a = quasi(n, seed=1, epoch=0)
    assert np.array_equal(a, quasi(n, seed=1, epoch=0))
    assert np.array_equal(
        a, quasi_random_permutation(np.arange(n)[::-1], seed=1, epoch=0)
    )  # input order does not matter: blocks follow storage order
    assert (a != quasi(n, seed=1, epoch=1)).mean() > 0.99
    assert (a != quasi(n, seed=2, epoch=0)).mean() > 0.99
    assert not np.array_equal(a, epoch_order(n, seed=1, epoch=0))  # not the random order
    # Spread over the file: the first window's samples come from all over the id range.
    assert np.ptp(a[:16384]) > n // 2


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_get_disjoint_shards(drop_last):
    n, world = 10_007, 4
    shards = [quasi(n, seed=5, rank=r, world_size=world, drop_last=drop_last) for r in range(4)]
    counts = np.bincount(np.concatenate(shards), minlength=n)
    if drop_last:
        assert counts.max() == 1 and counts.sum() == n // world * world
    else:
        assert counts.min() == 1 and counts.sum() == -(-n // world) * world  # padded repeats
        assert np.count_nonzero(counts > 1) == -(-n // world) * world - n
    assert all(len(s) == len(shards[0]) for s in shards)


def test_order_names_and_shuffle():
    assert ORDERS == ("sequential", "random", "quasi_random")
    assert resolve_order(None, True) == "random"
    assert resolve_order(None, False) == "sequential"
    assert resolve_order("QUASI_RANDOM") == "quasi_random"
    for option in OrderOption:
        assert resolve_order(option) == option.name.lower()
    assert resolve_order("sequential", False) == "sequential"
    with pytest.raises(ValueError, match="shuffle=False"):
        resolve_order("quasi_random", False)
    with pytest.raises(ValueError, match="order must be one of"):
        resolve_order("shuffled")
    with pytest.raises(ValueError, match="block_size"):
        quasi(10, block_size=0)
    assert np.array_equal(epoch_order(9, seed=0, epoch=0, order="sequential"), np.arange(9))


def test_loaders_read_the_quasi_random_order_with_unchanged_crops(photo_dataset):
    n = len(photo_dataset)
    expected = epoch_order(n, seed=7, epoch=1, order="quasi_random").tolist()
    raw = PrefetchingDataLoader(photo_dataset, 32, seed=7, order=OrderOption.QUASI_RANDOM)
    raw.set_epoch(1)
    assert [i for b in raw for i in b["indices"].tolist()] == expected

    pipelines = {"image": ImagePipeline(DecodeRandomResizedCrop(24), dtype="uint8")}
    images = {}
    for order in ("random", "quasi_random"):
        loader = SlipstreamLoader(
            photo_dataset, 48, pipelines, seed=7, order=order, backend="native", num_workers=1
        )
        loader.set_epoch(1)
        ids, pixels = [], []
        for batch in loader:
            ids += batch["index"].tolist()
            pixels.append(batch["image"].clone())
        loader.close()
        if order == "quasi_random":
            assert ids == expected
        images[order] = dict(zip(ids, torch_rows(pixels), strict=True))
    for sample_id, pixels in images["random"].items():  # crops depend on the sample only
        assert np.array_equal(pixels, images["quasi_random"][sample_id])


def torch_rows(batches) -> list[np.ndarray]:
    return [row.numpy() for batch in batches for row in batch]
