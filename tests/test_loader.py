"""SlipstreamLoader end to end on a real-photo cache, with oracles.

Oracles: the native kernel on the windows the sampler gives for each sample id
(bit-exact), Pillow crop+resize (tolerance), and the loader itself under a
different batch size / world size / resume (bit-exact).
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from slipstream import SlipstreamLoader
from slipstream.native import decode_crop
from slipstream.native.backend import SampleDecodeError
from slipstream.pipelines import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    supervised_train,
    supervised_val,
)
from slipstream.sampling import crops

UINT8_TRAIN = supervised_train(64, normalize=False, dtype="uint8")


def _loader(dataset, batch_size=16, pipelines=UINT8_TRAIN, **kwargs) -> SlipstreamLoader:
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("num_threads", 2)
    kwargs.setdefault("backend", "native")  # test_dali_loader.py checks "dali" against it
    return SlipstreamLoader(dataset, batch_size, pipelines, **kwargs)


def _collect(loader) -> dict[int, tuple[torch.Tensor, int]]:
    """Sample id -> (image copy, label), over one epoch."""
    seen = {}
    for batch in loader:
        for image, label, index in zip(batch["image"], batch["label"], batch["index"], strict=True):
            assert int(index) not in seen
            seen[int(index)] = (image.clone(), int(label))
    return seen


def test_epoch_shapes_labels_and_length(photo_dataset):
    loader = _loader(photo_dataset, batch_size=32)
    n = len(photo_dataset)
    assert len(loader) == -(-n // 32)
    batches = list(loader)
    assert len(batches) == len(loader)
    total = 0
    labels = photo_dataset.cache.numbers("label")
    for batch in batches:
        b = batch["image"].shape[0]
        total += b
        assert batch["image"].shape == (b, 3, 64, 64)
        assert batch["image"].dtype == torch.uint8
        assert batch["label"].dtype == torch.int64
        np.testing.assert_array_equal(batch["label"].numpy(), labels[batch["index"].numpy()])
    assert total == n


def test_pixels_equal_kernel_on_sampled_windows(photo_dataset):
    loader = _loader(photo_dataset, batch_size=16, seed=3)
    loader.set_epoch(2)
    heights, widths = photo_dataset.image_sizes()
    checked = 0
    for batch in loader:
        ids = batch["index"].numpy()
        windows = crops.random_resized_crop(heights[ids], widths[ids], ids, seed=3, epoch=2)
        flip = crops.flips(ids, seed=3, epoch=2, probability=0.5)
        for k, sample_id in enumerate(ids):
            data = photo_dataset.cache.item_bytes("image", int(sample_id))
            expected = decode_crop(data, windows[k], (64, 64), flip=bool(flip[k]))
            got = batch["image"][k].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got, expected)
            checked += 1
        if checked >= 48:
            break
    assert checked >= 48


def test_val_pipeline_matches_pillow(photo_dataset):
    loader = _loader(
        photo_dataset,
        batch_size=8,
        pipelines=supervised_val(64, resize_short=73, normalize=False, dtype="uint8"),
        shuffle=False,
    )
    batch = next(iter(loader))
    heights, widths = photo_dataset.image_sizes()
    ids = batch["index"].numpy()
    windows = crops.center_crop(heights[ids], widths[ids], crop_ratio=64 / 73, output_size=(64, 64))
    for k, sample_id in enumerate(ids):
        data = bytes(photo_dataset.cache.item_bytes("image", int(sample_id)))
        y, x, h, w = (int(v) for v in windows[k])
        reference = (
            Image.open(io.BytesIO(data))
            .convert("RGB")
            .resize((64, 64), Image.BILINEAR, box=(x, y, x + w, y + h))
        )
        got = batch["image"][k].permute(1, 2, 0).numpy().astype(np.float64)
        diff = np.abs(got - np.asarray(reference, dtype=np.float64)).mean(axis=(0, 1))
        assert (diff <= 3.0).all(), diff


def test_normalized_float_output(photo_dataset):
    raw = _loader(photo_dataset, pipelines=supervised_train(64, normalize=False, dtype="uint8"))
    norm = _loader(photo_dataset, pipelines=supervised_train(64))
    a, b = next(iter(raw)), next(iter(norm))
    assert b["image"].dtype == torch.float32
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = (a["image"].float() / 255 - mean) / std
    torch.testing.assert_close(b["image"], expected, atol=1e-5, rtol=1e-5)


def test_three_epochs_full_and_different(photo_dataset):
    loader = _loader(photo_dataset, batch_size=50)
    orders = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        ids = torch.cat([b["index"] for b in loader]).numpy()
        assert sorted(ids.tolist()) == list(range(len(photo_dataset)))
        orders.append(ids)
    assert not np.array_equal(orders[0], orders[1])
    # without set_epoch, the epoch advances by itself
    auto = _loader(photo_dataset, batch_size=50)
    for _ in auto:
        pass
    assert auto.epoch == 1


def test_same_seed_same_batches_and_batch_size_invariance(photo_dataset):
    a = _collect(_loader(photo_dataset, batch_size=16, seed=7))
    b = _collect(_loader(photo_dataset, batch_size=7, seed=7, shuffle=False, num_threads=1))
    assert a.keys() == b.keys()
    for sample_id, (image, label) in a.items():
        torch.testing.assert_close(image, b[sample_id][0], rtol=0, atol=0)
        assert label == b[sample_id][1]
    c = _collect(_loader(photo_dataset, batch_size=16, seed=8))
    assert any(not torch.equal(a[i][0], c[i][0]) for i in a)


def test_distributed_ranks_cover_and_agree(photo_dataset):
    whole = _collect(_loader(photo_dataset, batch_size=16))
    covered = {}
    lengths = []
    for rank in range(3):
        loader = _loader(photo_dataset, batch_size=16, distributed=True, rank=rank, world_size=3)
        count = 0
        for batch in loader:
            count += batch["image"].shape[0]
            for image, index in zip(batch["image"], batch["index"], strict=True):
                covered[int(index)] = image.clone()
        lengths.append(count)
    assert len(set(lengths)) == 1 and lengths[0] == -(-len(photo_dataset) // 3)
    assert covered.keys() == whole.keys()
    for sample_id, image in covered.items():
        assert torch.equal(image, whole[sample_id][0])


def test_resume_mid_epoch_yields_the_rest(photo_dataset):
    reference = _loader(photo_dataset, batch_size=16, seed=5)
    reference.set_epoch(4)
    expected = [(b["index"].clone(), b["image"].clone()) for b in reference]

    interrupted = _loader(photo_dataset, batch_size=16, seed=5)
    interrupted.set_epoch(4)
    for k, _ in enumerate(interrupted):
        if k == 5:
            state = interrupted.state_dict()
            break
    assert state == {"epoch": 4, "batch": 6, "seed": 5}

    resumed = _loader(photo_dataset, batch_size=16, seed=5)
    resumed.load_state_dict(state)
    rest = [(b["index"].clone(), b["image"].clone()) for b in resumed]
    assert len(rest) == len(expected) - 6
    for (i0, x0), (i1, x1) in zip(expected[6:], rest, strict=True):
        assert torch.equal(i0, i1) and torch.equal(x0, x1)
    assert resumed.state_dict()["epoch"] == 5


def test_indices_subset_and_drop_last(photo_dataset):
    labels = np.asarray(photo_dataset.cache.numbers("label"))
    subset = np.flatnonzero(labels < 3)
    loader = _loader(photo_dataset, batch_size=10, indices=subset, drop_last=True)
    ids = torch.cat([b["index"] for b in loader]).numpy()
    assert set(ids.tolist()) <= set(subset.tolist())
    assert len(ids) == (len(subset) // 10) * 10
    assert len(loader) == len(subset) // 10


def test_break_and_iterate_again(photo_dataset):
    loader = _loader(photo_dataset, batch_size=8)
    for k, _ in enumerate(loader):
        if k == 2:
            break
    assert sum(b["image"].shape[0] for b in loader) == len(photo_dataset)


def test_bad_arguments(photo_dataset):
    with pytest.raises(ValueError, match="batch_size"):
        _loader(photo_dataset, batch_size=0)
    with pytest.raises(ValueError, match="backend"):
        _loader(photo_dataset, backend="nope")
    with pytest.raises(KeyError, match="not an image field"):
        _loader(photo_dataset, pipelines={"label": UINT8_TRAIN["image"]})
    with pytest.raises(IndexError):
        _loader(photo_dataset, indices=[0, 10_000])


def test_corrupt_sample_error_names_the_file(corrupt_dataset):
    dataset, victim = corrupt_dataset
    path = dataset.cache.string("path", victim)
    loader = _loader(dataset, batch_size=16, shuffle=False)
    with pytest.raises(SampleDecodeError, match=f"sample {victim} .*{path}"):
        for _ in loader:
            pass


@pytest.mark.gpu
def test_cuda_output_matches_cpu(photo_dataset):
    for pipelines in (UINT8_TRAIN, supervised_train(64)):
        cpu = _loader(photo_dataset, batch_size=16, pipelines=pipelines)
        gpu = _loader(photo_dataset, batch_size=16, pipelines=pipelines, device="cuda")
        for a, b in zip(cpu, gpu, strict=True):
            assert b["image"].is_cuda and b["label"].is_cuda
            torch.testing.assert_close(b["image"].cpu(), a["image"], rtol=0, atol=1e-5)
            assert torch.equal(b["index"].cpu(), a["index"])


def test_dali_backend_without_dali_names_the_extra(photo_dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "slipstream.dali.loader_backend", None)
    with pytest.raises(ImportError, match=r"pip install 'slipstream\[dali\]'"):
        _loader(photo_dataset, backend="dali")


def test_import_slipstream_does_not_import_dali():
    code = "import sys, slipstream; print('nvidia.dali' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stdout + proc.stderr


def test_default_backend_is_dali_where_installed(photo_dataset, monkeypatch):
    import importlib.util

    from slipstream.loader import default_backend

    installed = importlib.util.find_spec("nvidia.dali") is not None
    assert default_backend() == ("dali" if installed else "native")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_backend() == "native"
    loader = SlipstreamLoader(photo_dataset, 8, UINT8_TRAIN, device="cpu")
    assert loader.backend == "native"
