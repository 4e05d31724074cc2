"""Shared fixtures and a hermetic test run.

Hermetic: :func:`pytest_configure` points ``$SLIPSTREAM_CACHE_DIR`` and
``$SLIPSTREAM_PLUGIN_DIR`` at folders under one temporary directory per run (removed at the
end), so no test writes to ``~/.cache``. Where DALI tests are collected, a current DALI
plugin from the user's own plugin folder is copied in first (it saves its 30-60 s build).

Fixtures (session scope unless stated):

* ``photo_folder``: 240 JPEGs (10 classes) cut from real photographs.
* ``photo_dataset``: its slip cache.
* ``yuv_dataset``: a copy of that cache with its YUV420 companion, built once per run.
* ``bogus_huffman_dataset``: ``(dataset, sample id)``: the photo cache with one stored JPEG
  whose Huffman table is bogus (the build rejects such a file, so the cache is damaged after
  its build, checksum updated: every decoder fails on it at load).
* ``short_yuv_item_dataset``: ``(dataset, sample id)``: ``yuv_dataset`` whose companion
  records one item shorter than its height and width need.
* ``corrupt_dataset`` (per test): ``(dataset, sample id)``: that sample's bytes overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from slipstream.demo.photos import make_demo_folder

CACHE_ENV = "SLIPSTREAM_CACHE_DIR"
PLUGIN_ENV = "SLIPSTREAM_PLUGIN_DIR"
VICTIM = 5
"""The sample id the damaged-dataset fixtures break."""

_run_dir: Path | None = None
_saved_env: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point slipstream's cache and plugin folders at a temporary directory for this run."""
    global _run_dir
    if _run_dir is not None:
        return
    _run_dir = Path(tempfile.mkdtemp(prefix="slipstream-tests-"))
    for name, sub in ((CACHE_ENV, "cache"), (PLUGIN_ENV, "dali_plugins")):
        _saved_env[name] = os.environ.get(name)
        os.environ[name] = str(_run_dir / sub)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's temporary directory and restore the environment."""
    global _run_dir
    if _run_dir is None:
        return
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_run_dir, ignore_errors=True)
    _run_dir = None


@contextlib.contextmanager
def _user_environment() -> Iterator[None]:
    """The environment as the user had it before :func:`pytest_configure` (temporarily)."""
    ours = {name: os.environ.get(name) for name in _saved_env}
    try:
        for name, value in _saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in ours.items():
            if value is not None:
                os.environ[name] = value


def _seed_dali_plugin() -> None:
    """Copy the user's DALI plugin into this run's plugin folder where its stamp is current.

    An optimization only: with no current plugin there, the first DALI test builds one.
    """
    try:
        from slipstream.dali import plugin
    except ImportError:
        return
    try:
        target = plugin.plugin_dir()
        if plugin.is_current(target):
            return
        with _user_environment():
            source = plugin.plugin_dir()
        if source == target or not plugin.is_current(source):
            return
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / plugin.LIB_NAME, target / plugin.LIB_NAME)
        shutil.copy2(source / plugin.STAMP_NAME, target / plugin.STAMP_NAME)  # stamp last
    except Exception:  # noqa: BLE001 - never fail a run over a cache warm-up
        return


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU tests cleanly where there is no GPU; warm the DALI plugin for DALI tests."""
    if any("dali" in item.keywords for item in items):
        _seed_dali_plugin()
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _guard_torch_rng():
    """Tests must not depend on or leak global torch RNG state."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


# ------------------------------------------------------------------ datasets
@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 JPEGs (10 classes) cut from scikit-image's bundled photographs."""
    return make_demo_folder(tmp_path_factory.mktemp("photos"), 240, seed=1)


@pytest.fixture(scope="session")
def photo_dataset(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The slip cache of ``photo_folder``."""
    from slipstream import SlipstreamDataset

    return SlipstreamDataset(
        photo_folder, cache_dir=tmp_path_factory.mktemp("caches"), progress=False
    )


@pytest.fixture(scope="session")
def yuv_dataset(photo_dataset, tmp_path_factory: pytest.TempPathFactory):
    """A copy of ``photo_dataset``'s cache with its YUV420 companion (built once per run).

    Same samples, ids and labels as ``photo_dataset``; read it with ``image_format="yuv420"``
    (or ``"jpeg"``: the JPEG field is unchanged). Do not modify it: copy it first.
    """
    from slipstream import SlipstreamDataset
    from slipstream.cache.yuv420 import build_yuv420

    dest = tmp_path_factory.mktemp("yuv") / "cache"
    shutil.copytree(photo_dataset.cache_path, dest)
    dataset = SlipstreamDataset(dest)
    build_yuv420(dataset.cache, "image", progress=False)
    return dataset


@pytest.fixture
def corrupt_dataset(photo_dataset, tmp_path: Path):
    """``(dataset, sample id)``: a copy of ``photo_dataset`` where that sample is not a JPEG."""
    from slipstream import SlipstreamDataset

    broken = tmp_path / "broken-cache"
    shutil.copytree(photo_dataset.cache_path, broken)
    meta = np.load(broken / "image.meta.npy")
    with open(broken / "image.bin", "r+b") as f:
        f.seek(int(meta["data_ptr"][VICTIM]))
        f.write(b"this is not a jpeg")
    return SlipstreamDataset(broken), VICTIM


def bogus_huffman_table(jpeg: bytes) -> bytes:
    """``jpeg`` with its first Huffman table's 16 code-length counts summing to 272 (> 256).

    The markers (SOI, SOF, DHT, SOS, EOI) stay well formed and the length unchanged; the
    build's table check rejects the file, libjpeg stops at "Bogus Huffman table definition".
    """
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise ValueError(f"no marker at byte {pos}")
        marker, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if marker == 0xC4:  # DHT: FF C4, length, Tc/Th, 16 counts, values
            counts = pos + 5
            return jpeg[:counts] + bytes([17] * 16) + jpeg[counts + 16 :]
        if marker == 0xDA:
            break
        pos += 2 + length
    raise ValueError("no DHT segment before the scan")


@pytest.fixture(scope="session")
def bogus_huffman_dataset(photo_dataset, tmp_path_factory: pytest.TempPathFactory):
    """``(dataset, sample id)``: ``photo_dataset``'s cache with that sample made undecodable.

    The build rejects a JPEG with a bogus Huffman table, so the damage is done to a copy
    of the built cache: the victim's stored JPEG gets a bogus table (same length) and its
    checksum is updated to match, so the item reaches the decoders, which fail on it. Every
    other sample, and the victim's stored height and width, equal ``photo_dataset``'s.
    """
    from slipstream import SlipstreamDataset
    from slipstream.cache.checksum import checksum_file, xxh64

    dest = tmp_path_factory.mktemp("bogus-huffman") / "cache"
    shutil.copytree(photo_dataset.cache_path, dest)
    meta = np.load(dest / "image.meta.npy")
    start, size = int(meta["data_ptr"][VICTIM]), int(meta["data_size"][VICTIM])
    with open(dest / "image.bin", "r+b") as f:
        f.seek(start)
        bogus = bogus_huffman_table(f.read(size))
        assert len(bogus) == size
        f.seek(start)
        f.write(bogus)
    sums = np.load(dest / checksum_file("image"), mmap_mode="r+")
    sums[VICTIM] = xxh64(bogus)
    sums.flush()
    del sums
    dataset = SlipstreamDataset(dest)
    assert len(dataset) == len(photo_dataset)
    return dataset, VICTIM


@pytest.fixture(scope="session")
def short_yuv_item_dataset(yuv_dataset, tmp_path_factory: pytest.TempPathFactory):
    """``(dataset, sample id)``: ``yuv_dataset`` whose companion records that item as too short.

    The item's ``data_size`` in the companion's meta is halved: shorter than its height and
    width need, which every YUV420 decoder rejects for that sample only. (A bogus JPEG cannot
    serve here: the companion is built by decoding the JPEGs, so its build would fail.)
    """
    from slipstream import SlipstreamDataset
    from slipstream.cache.checksum import checksum_file, xxh64
    from slipstream.cache.yuv420 import companion_names

    dest = tmp_path_factory.mktemp("short-yuv") / "cache"
    shutil.copytree(yuv_dataset.cache_path, dest)
    meta = np.load(dest / companion_names("image")[1], mmap_mode="r+")
    meta["data_size"][VICTIM] //= 2
    meta.flush()
    # The item's checksum follows its new size: the decoder, not the checksum, rejects it.
    sums = np.load(dest / checksum_file("image_yuv420"), mmap_mode="r+")
    data = np.fromfile(dest / companion_names("image")[0], dtype=np.uint8)
    start, size = int(meta["data_ptr"][VICTIM]), int(meta["data_size"][VICTIM])
    sums[VICTIM] = xxh64(data[start : start + size])
    sums.flush()
    del meta, sums
    return SlipstreamDataset(dest), VICTIM
