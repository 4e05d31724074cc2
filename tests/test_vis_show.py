"""``show_batch`` / ``show_rgba`` (the original slipstream's helpers) and their image prep."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from slipstream.vis import batch_rows, rgba_composite, show_batch, show_rgba

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_batch_rows_undo_normalization_and_pick_views():
    pixels = torch.rand(5, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    batch = {"a": (pixels - mean) / std, "b": (pixels * 255).round().to(torch.uint8)}
    rows = batch_rows(batch, ["a"], n_cols=4, mean=MEAN, std=STD)
    assert len(rows) == 1 and rows[0].shape == (4, 6, 7, 3)
    np.testing.assert_allclose(rows[0], pixels[:4].permute(0, 2, 3, 1).numpy(), atol=1e-6)
    (uint8,) = batch_rows([batch["b"]])
    np.testing.assert_allclose(uint8, pixels.permute(0, 2, 3, 1).numpy(), atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError, match="view_names"):
        batch_rows(batch)
    with pytest.raises(KeyError, match="missing|no"):
        batch_rows(batch, ["c"])


def test_rgba_composite_against_numpy():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(2, 20, 18, 4), dtype=np.uint8)
    out = rgba_composite(rgba)
    board = np.full((20, 18), 200.0)
    board[::16] = 220
    board[:, ::16] = 220
    a = rgba[..., 3] / 255.0
    for ch in range(3):
        ref = np.round(a * rgba[..., ch] + (1 - a) * board)
        assert np.abs(out[..., ch].astype(float) - ref).max() <= 1
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert np.array_equal(rgba_composite(opaque), opaque[..., :3])


@pytest.mark.skipif(HAS_MATPLOTLIB, reason="matplotlib is installed")
def test_show_without_matplotlib_names_it():
    with pytest.raises(ImportError, match="pip install matplotlib"):
        show_batch(torch.rand(2, 3, 4, 4))
    with pytest.raises(ImportError, match="pip install matplotlib"):
        show_rgba(np.zeros((1, 4, 4, 4), dtype=np.uint8))


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_show_draws_a_grid():
    import matplotlib

    matplotlib.use("Agg")
    fig = show_batch([torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)], row_labels=["x", "y"])
    assert len(fig.axes) == 6
    fig = show_rgba(np.zeros((2, 8, 8, 4), dtype=np.uint8))
    assert len(fig.axes) == 2
