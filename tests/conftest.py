"""Shared fixtures: a small image folder cut from real photographs, and its slip cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from slipstream.demo.photos import make_demo_folder


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 JPEGs (10 classes) cut from scikit-image's bundled photographs."""
    return make_demo_folder(tmp_path_factory.mktemp("photos"), 240, seed=1)


@pytest.fixture(scope="session")
def photo_dataset(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The slip cache of ``photo_folder``."""
    from slipstream import SlipstreamDataset

    return SlipstreamDataset(
        photo_folder, cache_root=tmp_path_factory.mktemp("caches"), progress=False
    )


@pytest.fixture
def corrupt_dataset(photo_dataset, tmp_path: Path):
    """``(dataset, sample id)``: a copy of ``photo_dataset`` where that sample is not a JPEG."""
    victim = 5
    import numpy as np

    from slipstream import SlipstreamDataset

    broken = tmp_path / "broken-cache"
    shutil.copytree(photo_dataset.cache_path, broken)
    meta = np.load(broken / "image.meta.npy")
    with open(broken / "image.bin", "r+b") as f:
        f.seek(int(meta["data_ptr"][victim]))
        f.write(b"this is not a jpeg")
    return SlipstreamDataset(broken), victim


@pytest.fixture(autouse=True)
def _guard_torch_rng():
    """Tests must not depend on or leak global torch RNG state."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU tests cleanly where there is no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
