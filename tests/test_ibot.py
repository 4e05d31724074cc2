"""iBOT block masks: keyed per sample, iBOT's block rule, its ratio distribution, the preset.

Oracle for the distribution: an independent implementation of the blockwise sampler as the
BEiT paper (Bao et al. 2022, Algorithm 1) and iBOT (Zhou et al. 2022, pred_shape "block")
describe it, on Python's ``random``; the two are compared by the two-sample
Kolmogorov-Smirnov statistic of the masked fraction.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from slipstream import SlipstreamLoader
from slipstream.augment.keys import BatchKey
from slipstream.augment.masks import RandomBlockMask
from slipstream.pipelines import ibot

GRID = 14
RATIO = (0.1, 0.5)
ASPECT = (0.3, 1 / 0.3)


def _reference_mask(rng: random.Random, grid: int, ratio, p: float, aspect) -> np.ndarray:
    """One mask from the papers' description (independent of the code under test)."""
    mask = np.zeros((grid, grid), dtype=bool)
    if rng.random() >= p:
        return mask
    goal = rng.uniform(*ratio) * grid * grid
    smallest = (grid // 3) ** 2
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    done = 0
    while done < goal:
        room, added = goal - done, 0
        for _ in range(10):
            area = rng.uniform(smallest, room)
            a = math.exp(rng.uniform(*log_aspect))
            h, w = round(math.sqrt(area * a)), round(math.sqrt(area / a))
            if w < grid and h < grid:
                top, left = rng.randint(0, grid - h), rng.randint(0, grid - w)
                new = h * w - int(mask[top : top + h, left : left + w].sum())
                if 0 < new <= room:
                    mask[top : top + h, left : left + w] = True
                    added = new
                    break
        if added == 0:
            break
        done += added
    return mask


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    ca = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(ca - cb).max())


def test_ratio_distribution_matches_the_papers_sampler():
    n = 3000
    sampler = RandomBlockMask(GRID, RATIO, p=0.5, aspect=ASPECT)
    ours = sampler.masks(BatchKey(7, 0, np.arange(n))).float().mean(dim=(1, 2)).numpy()
    rng = random.Random(0)
    ref = np.array([_reference_mask(rng, GRID, RATIO, 0.5, ASPECT).mean() for _ in range(n)])
    assert ours.max() <= RATIO[1] + 1e-9  # never more than the drawn ratio
    assert abs((ours == 0).mean() - 0.5) < 0.04  # p = 0.5 of the samples unmasked
    assert abs(ours.mean() - ref.mean()) < 0.015, (ours.mean(), ref.mean())
    assert _ks(ours, ref) < 0.05  # ~ the 0.1% critical value for 3000 vs 3000
    masked = ours[ours > 0]
    assert np.quantile(masked, 0.05) >= 0.08  # ratios start at 0.1 (a last block may fall short)


def test_masks_are_keyed_by_sample_not_batch():
    sampler = RandomBlockMask(GRID, RATIO, p=0.8)
    ids = np.array([3, 90, 17, 4, 55, 1000, 8])
    full = sampler.masks(BatchKey(1, 2, ids, view=1))
    order = np.array([6, 0, 3, 1, 5, 2, 4])
    shuffled = sampler.masks(BatchKey(1, 2, ids[order], view=1))
    assert torch.equal(shuffled, full[order])
    assert torch.equal(sampler.masks(BatchKey(1, 2, ids[2:4], view=1)), full[2:4])
    assert not torch.equal(sampler.masks(BatchKey(1, 3, ids, view=1)), full)  # another epoch
    assert not torch.equal(sampler.masks(BatchKey(1, 2, ids, view=0)), full)  # another view
    images = torch.zeros(len(ids), 3, 8, 8)
    assert torch.equal(sampler(images, BatchKey(1, 2, ids, view=1)), full)


def test_blocks_follow_ibots_rule():
    sampler = RandomBlockMask(GRID, RATIO, p=1.0, aspect=ASPECT)
    masks, blocks = sampler.masks(BatchKey(0, 0, np.arange(500)), max_blocks=32)
    low = (GRID // 3) ** 2
    rebuilt = torch.zeros_like(masks)
    for b in range(len(masks)):
        for k, (top, left, h, w) in enumerate(blocks[b].tolist()):
            if h == 0:
                break
            assert 0 < h < GRID and 0 < w < GRID and top + h <= GRID and left + w <= GRID
            # h = round(sqrt(area * a)), w = round(sqrt(area / a)): some a in range fits
            assert (h - 0.5) / (w + 0.5) <= ASPECT[1] and (h + 0.5) / (w - 0.5) >= ASPECT[0]
            if k == 0 and masks[b].sum() >= low:  # the first block's area is drawn >= low
                assert (h + 0.5) * (w + 0.5) >= low
            rebuilt[b, top : top + h, left : left + w] = True
    assert torch.equal(rebuilt, masks)  # the masks are exactly the union of the blocks
    with pytest.raises(ValueError, match="ratio"):
        RandomBlockMask(GRID, (0.2, 1.5))


@pytest.mark.parametrize("backend", ["native", "dali"])
def test_ibot_preset_masks_through_the_loader(photo_dataset, backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    views = ibot(64, 32, num_local=2, patch_size=8, augment=False, normalize=False, dtype="uint8")
    assert list(views) == ["global_0", "global_1", "local_0", "local_1", "mask_0", "mask_1"]
    assert views["mask_1"].view == views["global_1"].view

    def masks_by_id(batch_size: int) -> dict[int, tuple]:
        loader = SlipstreamLoader(
            photo_dataset, batch_size, views, seed=3, device="cpu", backend=backend,
            num_workers=2, indices=np.arange(24),
        )  # fmt: skip
        out = {}
        for batch in loader:
            assert batch["mask_0"].dtype == torch.bool and batch["mask_0"].shape[1:] == (8, 8)
            assert batch["global_0"].shape[1:] == (3, 64, 64)
            for k, i in enumerate(batch["index"].tolist()):
                out[i] = (batch["mask_0"][k].clone(), batch["mask_1"][k].clone())
        return out

    a, b = masks_by_id(8), masks_by_id(5)
    assert a.keys() == b.keys() and len(a) == 24
    for i in a:
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    sampler = views["mask_0"].augment
    ids = np.array(sorted(a))
    want = sampler.masks(BatchKey(3, 0, ids, view=views["global_0"].view))
    assert torch.equal(torch.stack([a[i][0] for i in ids]), want)
