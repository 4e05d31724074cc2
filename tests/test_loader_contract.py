"""The SlipstreamLoader contract, one suite over every decode engine (``loader_engines.ENGINES``).

Per engine: shapes, dtypes, labels, order, keyed crops, set_epoch, resume, distributed,
drop_last, multi-view, and ``on_error`` on real damaged data. Across engines: every CPU
engine of an image format gives the native engine's batches bit for bit.

Oracles: the C++ kernel of the format on the windows the sampler gives per sample id
(bit-exact), Pillow crop+resize (tolerance), ``torch.utils.data.DistributedSampler`` (ids),
the dataset's own label column, and the loader itself under another batch size, shuffle,
world size or a resume (bit-exact). Every engine reads ``yuv_dataset`` (the photo cache with
its YUV420 companion): the JPEG engines read its JPEG field.
"""

from __future__ import annotations

import io
import logging
import re

import numpy as np
import pytest
import torch
from loader_engines import (
    ENGINES,
    MULTI_VIEW,
    NATIVE_OF_FORMAT,
    assert_same,
    batches,
    by_sample,
    engine_params,
    make_loader,
)
from PIL import Image
from torch.utils.data import DistributedSampler

from slipstream.cache.yuv420 import build_yuv420
from slipstream.native import decode_crop
from slipstream.native.yuv420 import decode_crop_yuv420
from slipstream.pipelines import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DecodeCenterCrop,
    ImagePipeline,
    dino,
    supervised_train,
    supervised_val,
)
from slipstream.sampling import crops

UINT8_TRAIN = supervised_train(64, normalize=False, dtype="uint8")
FLOAT_TRAIN = supervised_train(64)
UINT8_VAL = supervised_val(48, resize_short=56, normalize=False, dtype="uint8")
UINT8_CENTER = {"image": ImagePipeline(DecodeCenterCrop(56), dtype="uint8")}
DINO = dino(
    global_size=64, local_size=32, num_local=2, augment=False, normalize=False, dtype="uint8"
)
PIPELINES = {
    "uint8-train": UINT8_TRAIN,
    "float-train": FLOAT_TRAIN,
    "uint8-val": UINT8_VAL,
    "center-crop": UINT8_CENTER,
    "multi-view": MULTI_VIEW,
}

every_engine = pytest.mark.parametrize("engine", engine_params())


def _format(engine: str) -> str:
    return ENGINES[engine]["image_format"]


@pytest.fixture(scope="module")
def dataset(yuv_dataset):
    """The photo cache with its YUV420 companion: every engine reads it."""
    return yuv_dataset


# ------------------------------------------------------------------ shapes, dtypes, labels
@every_engine
@pytest.mark.parametrize("pipelines", ["uint8-train", "float-train"])
def test_epoch_shapes_dtypes_labels_and_length(dataset, engine, pipelines):
    loader = make_loader(dataset, engine, 32, PIPELINES[pipelines])
    n = len(dataset)
    assert n % 32  # the last batch is partial
    assert len(loader) == -(-n // 32)
    epoch = batches(loader)
    assert len(epoch) == len(loader)
    assert epoch[-1]["image"].shape[0] == n % 32
    labels = np.asarray(dataset.cache.numbers("label"))
    dtype = torch.uint8 if pipelines == "uint8-train" else torch.float32
    ids = []
    for batch in epoch:
        b = batch["image"].shape[0]
        assert batch["image"].shape == (b, 3, 64, 64)
        assert batch["image"].dtype == dtype
        assert batch["image"].device.type == "cpu"
        assert batch["image"].is_contiguous(memory_format=torch.channels_last)
        assert batch["label"].dtype == batch["index"].dtype == torch.int64
        assert batch["label"].shape == batch["index"].shape == (b,)
        np.testing.assert_array_equal(batch["label"].numpy(), labels[batch["index"].numpy()])
        ids += batch["index"].tolist()
    assert sorted(ids) == list(range(n))
    if dtype == torch.float32:  # normalized: clearly not in [0, 255] units
        images = torch.cat([b["image"] for b in epoch])
        assert images.min() < -1.0 and images.max() > 1.0


@every_engine
def test_normalized_float_is_the_uint8_output_normalized(dataset, engine):
    raw = next(iter(make_loader(dataset, engine, 16, UINT8_TRAIN, seed=4)))
    norm = next(iter(make_loader(dataset, engine, 16, FLOAT_TRAIN, seed=4)))
    assert torch.equal(raw["index"], norm["index"])
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = (raw["image"].float() / 255 - mean) / std
    torch.testing.assert_close(norm["image"], expected, atol=1e-5, rtol=1e-5)


@every_engine
def test_pixels_equal_the_kernel_on_sampled_windows(dataset, engine):
    """Each sample's pixels: the format's C++ kernel on the sampler's window and flip."""
    loader = make_loader(dataset, engine, 16, UINT8_TRAIN, seed=3)
    loader.set_epoch(2)
    heights, widths = dataset.image_sizes()
    companion = build_yuv420(dataset.cache, "image", progress=False)  # opens the built one
    checked = 0
    for batch in loader:
        ids = batch["index"].numpy()
        windows = crops.random_resized_crop(heights[ids], widths[ids], ids, seed=3, epoch=2)
        flip = crops.flips(ids, seed=3, epoch=2, probability=0.5)
        for k, sample_id in enumerate(ids):
            if _format(engine) == "jpeg":
                data = dataset.cache.item_bytes("image", int(sample_id))
                expected = decode_crop(data, windows[k], (64, 64), flip=bool(flip[k]))
            else:
                rec = companion.meta[int(sample_id)]
                start = int(rec["data_ptr"])
                item = companion.data[start : start + int(rec["data_size"])]
                h, w = int(rec["height"]), int(rec["width"])
                expected = decode_crop_yuv420(item, h, w, windows[k], (64, 64), bool(flip[k]))
            got = batch["image"][k].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got, expected)
            checked += 1
        if checked >= 48:
            break
    assert checked >= 48


@every_engine
def test_val_pipeline_matches_pillow(dataset, engine):
    pipelines = supervised_val(64, resize_short=73, normalize=False, dtype="uint8")
    batch = next(iter(make_loader(dataset, engine, 8, pipelines, shuffle=False)))
    heights, widths = dataset.image_sizes()
    ids = batch["index"].numpy()
    np.testing.assert_array_equal(ids, np.arange(8))
    windows = crops.center_crop(heights[ids], widths[ids], crop_ratio=64 / 73, output_size=(64, 64))
    for k, sample_id in enumerate(ids):
        data = bytes(dataset.cache.item_bytes("image", int(sample_id)))
        y, x, h, w = (int(v) for v in windows[k])
        reference = (
            Image.open(io.BytesIO(data))
            .convert("RGB")
            .resize((64, 64), Image.BILINEAR, box=(x, y, x + w, y + h))
        )
        got = batch["image"][k].permute(1, 2, 0).numpy().astype(np.float64)
        diff = np.abs(got - np.asarray(reference, dtype=np.float64)).mean(axis=(0, 1))
        assert (diff <= 3.0).all(), diff


# ------------------------------------------------------------------ order and epochs
@every_engine
def test_order_in_sequence_or_keyed_by_seed_and_epoch(dataset, engine):
    n = len(dataset)
    in_order = make_loader(dataset, engine, 50, UINT8_TRAIN, shuffle=False)
    assert torch.cat([b["index"] for b in in_order]).tolist() == list(range(n))

    loader = make_loader(dataset, engine, 50, UINT8_TRAIN, seed=1)
    orders = []
    for epoch in range(3):  # without set_epoch, the epoch advances by itself
        assert loader.epoch == epoch
        ids = torch.cat([b["index"] for b in loader]).numpy()
        assert sorted(ids.tolist()) == list(range(n))
        orders.append(ids)
    assert loader.epoch == 3
    assert not np.array_equal(orders[0], orders[1])
    again = make_loader(dataset, engine, 50, UINT8_TRAIN, seed=1)
    again.set_epoch(1)
    np.testing.assert_array_equal(torch.cat([b["index"] for b in again]).numpy(), orders[1])
    other = make_loader(dataset, engine, 50, UINT8_TRAIN, seed=2)
    other.set_epoch(1)
    assert not np.array_equal(torch.cat([b["index"] for b in other]).numpy(), orders[1])


@every_engine
def test_set_epoch_equals_reaching_the_epoch(dataset, engine):
    walked = make_loader(dataset, engine, 64, UINT8_TRAIN, seed=12)
    for _ in range(2):
        for _ in walked:
            pass
    jumped = make_loader(dataset, engine, 64, UINT8_TRAIN, seed=12)
    jumped.set_epoch(2)
    assert_same(batches(jumped), batches(walked))
    walked.set_epoch(0)  # and back
    assert_same(batches(make_loader(dataset, engine, 64, UINT8_TRAIN, seed=12)), batches(walked))


@every_engine
def test_crops_keyed_by_sample_not_batch_size_or_shuffle(dataset, engine):
    a = by_sample(batches(make_loader(dataset, engine, 16, UINT8_TRAIN, seed=7)))
    b = by_sample(
        batches(make_loader(dataset, engine, 7, UINT8_TRAIN, seed=7, shuffle=False, num_workers=1))
    )
    assert a.keys() == b.keys() == set(range(len(dataset)))
    for sample_id, image in a.items():
        assert torch.equal(image, b[sample_id]), sample_id
    c = by_sample(batches(make_loader(dataset, engine, 16, UINT8_TRAIN, seed=8)))
    assert any(not torch.equal(a[i], c[i]) for i in a)
    later = make_loader(dataset, engine, 16, UINT8_TRAIN, seed=7)
    later.set_epoch(1)
    d = by_sample(batches(later))
    assert any(not torch.equal(a[i], d[i]) for i in a)


@every_engine
def test_resume_mid_epoch_yields_the_rest(dataset, engine):
    reference = make_loader(dataset, engine, 16, UINT8_TRAIN, seed=5)
    reference.set_epoch(4)
    expected = batches(reference)

    interrupted = make_loader(dataset, engine, 16, UINT8_TRAIN, seed=5)
    interrupted.set_epoch(4)
    for k, _ in enumerate(interrupted):
        if k == 5:
            state = interrupted.state_dict()
            break
    assert {key: state[key] for key in ("epoch", "batch", "seed", "samples")} == {
        "epoch": 4, "batch": 6, "seed": 5, "samples": 96
    }  # fmt: skip

    resumed = make_loader(dataset, engine, 16, UINT8_TRAIN, seed=5)
    resumed.load_state_dict(state)
    rest = batches(resumed)
    assert len(rest) == len(expected) - 6
    assert_same(expected[6:], rest)
    assert resumed.state_dict()["epoch"] == 5
    with pytest.raises(ValueError, match="seed"):
        make_loader(dataset, engine, 16, UINT8_TRAIN, seed=6).load_state_dict(state)


@every_engine
def test_break_then_iterate_again(dataset, engine):
    """A break ends the epoch's stages; the next iteration runs the next epoch, whole."""
    loader = make_loader(dataset, engine, 32, UINT8_TRAIN, seed=9)
    for k, _ in enumerate(loader):
        if k == 1:
            break
    again = batches(loader)  # the next epoch (as FFCV): state_dict was not loaded
    assert sum(b["image"].shape[0] for b in again) == len(dataset)
    reference = make_loader(dataset, engine, 32, UINT8_TRAIN, seed=9)
    reference.set_epoch(1)
    assert_same(batches(reference), again)
    loader.set_epoch(1)
    fresh = make_loader(dataset, engine, 32, UINT8_TRAIN, seed=9)
    fresh.set_epoch(1)
    assert_same(batches(fresh), batches(loader))


@every_engine
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_ranks_follow_distributed_sampler(dataset, engine, shuffle):
    """Two ranks over an odd subset: DistributedSampler's split and padding, same pixels."""
    subset = np.arange(1, len(dataset))  # 239 ids: one padded
    kwargs = {"seed": 3, "indices": subset, "shuffle": shuffle}
    whole = make_loader(dataset, engine, 32, UINT8_TRAIN, **kwargs)
    whole_ids = torch.cat([b["index"] for b in batches(whole)]).numpy()
    whole.set_epoch(0)
    pixels = by_sample(batches(whole))
    covered: list[int] = []
    for rank in range(2):
        loader = make_loader(
            dataset, engine, 32, UINT8_TRAIN, distributed=True, rank=rank, world_size=2, **kwargs
        )
        assert len(loader) == -(-120 // 32)
        epoch = batches(loader)
        ids = torch.cat([b["index"] for b in epoch]).numpy()
        assert len(ids) == 120 == -(-len(subset) // 2)
        # DistributedSampler over the (unshuffled or shuffled) global order
        positions = list(DistributedSampler(range(len(subset)), 2, rank, shuffle=False))
        np.testing.assert_array_equal(ids, whole_ids[positions])
        for batch in epoch:
            for image, index in zip(batch["image"], batch["index"], strict=True):
                assert torch.equal(image, pixels[int(index)])
        covered += ids.tolist()
    assert set(covered) == set(subset.tolist()) and len(covered) == 240


@every_engine
def test_indices_subset_and_drop_last(dataset, engine):
    labels = np.asarray(dataset.cache.numbers("label"))
    subset = np.flatnonzero(labels < 3)
    assert len(subset) % 10
    loader = make_loader(dataset, engine, 10, UINT8_TRAIN, indices=subset, drop_last=True)
    epoch = batches(loader)
    ids = torch.cat([b["index"] for b in epoch]).numpy()
    assert set(ids.tolist()) <= set(subset.tolist()) and len(set(ids.tolist())) == len(ids)
    assert len(ids) == (len(subset) // 10) * 10
    assert len(loader) == len(epoch) == len(subset) // 10
    assert all(b["image"].shape[0] == 10 for b in epoch)
    # distributed drop_last: the tail that does not split evenly is dropped, not padded
    ranks = [
        make_loader(
            dataset,
            engine,
            10,
            UINT8_TRAIN,
            indices=subset,
            drop_last=True,
            distributed=True,
            rank=r,
            world_size=4,
        )  # fmt: skip
        for r in range(4)
    ]
    seen = [torch.cat([b["index"] for b in batches(r)]).tolist() for r in ranks]
    per_rank = len(subset) // 4
    assert all(len(s) == (per_rank // 10) * 10 for s in seen)
    flat = sum(seen, [])
    assert len(set(flat)) == len(flat)


# ------------------------------------------------------------------ multi-view
@every_engine
@pytest.mark.parametrize("pipelines", ["multi-view", "dino"])
def test_multi_view_outputs(dataset, engine, pipelines):
    """Views of one field: their sizes, keyed per (sample, view), unlike each other."""
    pipes = MULTI_VIEW if pipelines == "multi-view" else DINO
    a = batches(make_loader(dataset, engine, 48, pipes, seed=4))
    b = batches(make_loader(dataset, engine, 20, pipes, seed=4, shuffle=False))
    for batch in a:
        n = batch["index"].shape[0]
        for name, pipe in pipes.items():
            assert batch[name].shape == (n, 3, *pipe.crop.output_size)
            assert batch[name].dtype == torch.uint8
    for name in pipes:
        x, y = by_sample(a, name), by_sample(b, name)
        assert x.keys() == y.keys() == set(range(len(dataset)))
        assert all(torch.equal(x[i], y[i]) for i in x), name
    first, second = by_sample(a, "global_0"), by_sample(a, "global_1")
    assert any(not torch.equal(first[i], second[i]) for i in first)


# ------------------------------------------------------------------ across engines
@pytest.mark.parametrize("pipelines", list(PIPELINES))
@pytest.mark.parametrize(
    "engine", engine_params([e for e in ENGINES if e not in NATIVE_OF_FORMAT.values()])
)
def test_cpu_engine_identical_to_native(dataset, engine, pipelines):
    """Same arguments, same batches as the native engine of the format, bit for bit."""
    n = len(dataset)
    assert n % 64  # the last batch is partial
    native = make_loader(
        dataset, NATIVE_OF_FORMAT[_format(engine)], 64, PIPELINES[pipelines], seed=11
    )
    other = make_loader(dataset, engine, 64, PIPELINES[pipelines], seed=11)
    assert len(other) == len(native) == -(-n // 64)
    for epoch in (0, 1):
        native.set_epoch(epoch)
        other.set_epoch(epoch)
        expected, got = batches(native), batches(other)
        assert got[-1]["index"].shape[0] == n % 64
        assert_same(expected, got)


# ------------------------------------------------------------------ on_error
def _damaged(engine: str, bogus_huffman_dataset, short_yuv_item_dataset):
    return bogus_huffman_dataset if _format(engine) == "jpeg" else short_yuv_item_dataset


def _sample_decode_error() -> type[Exception]:
    from slipstream.decode import SampleDecodeError
    from slipstream.decode.errors import SampleDecodeError as same

    assert same is SampleDecodeError
    return SampleDecodeError


def _check_raises(loader, victim: int, path: str, kind: str = "") -> None:
    error = _sample_decode_error()
    pattern = rf"sample {victim} \(.*{re.escape(path)}\)"
    for _ in range(2):  # the engine recovers after an error: the loader raises again
        with pytest.raises(error, match=pattern) as info:
            for _ in loader:
                pass
        assert isinstance(info.value, error)  # a damaged cache item: SampleCorruptError
        assert [f[0] for f in info.value.failures] == [victim]
        sample_id, description, message = info.value.failures[0]
        assert path in description and isinstance(message, str) and kind in message


@every_engine
@pytest.mark.parametrize("pipelines", ["uint8-train", "multi-view"])
def test_on_error_raise_names_sample_and_path(
    engine, pipelines, bogus_huffman_dataset, short_yuv_item_dataset
):
    dataset, victim = _damaged(engine, bogus_huffman_dataset, short_yuv_item_dataset)
    path = dataset.cache.string("path", victim)
    for options in ({}, {"on_error": "raise"}):  # the default is "raise"
        loader = make_loader(dataset, engine, 16, PIPELINES[pipelines], shuffle=False, **options)
        kind = "Huffman" if _format(engine) == "jpeg" else "YUV420 item is"
        _check_raises(loader, victim, path, kind)


@pytest.mark.parametrize("engine", engine_params(["native-jpeg", "dali-cpu-jpeg"]))
def test_on_error_raise_on_bytes_that_are_not_a_jpeg(engine, corrupt_dataset):
    """Damage after the build (the item's first bytes overwritten): the same error."""
    dataset, victim = corrupt_dataset
    loader = make_loader(dataset, engine, 16, UINT8_TRAIN, shuffle=False)
    _check_raises(loader, victim, dataset.cache.string("path", victim))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@every_engine
@pytest.mark.parametrize("pipelines", ["uint8-train", "float-train", "multi-view"])
def test_on_error_skip_fills_masks_logs_and_continues(
    engine, pipelines, bogus_huffman_dataset, short_yuv_item_dataset, photo_dataset, yuv_dataset
):
    dataset, victim = _damaged(engine, bogus_huffman_dataset, short_yuv_item_dataset)
    clean = photo_dataset if _format(engine) == "jpeg" else yuv_dataset
    path = dataset.cache.string("path", victim)
    pipes = PIPELINES[pipelines]
    records = _Records()
    logger = logging.getLogger("slipstream")
    logger.addHandler(records)
    try:
        loader = make_loader(dataset, engine, 16, pipes, seed=3, on_error="skip")
        reference = make_loader(clean, engine, 16, pipes, seed=3)
        epochs, logged = [], []
        for epoch in (0, 1):  # the epoch continues past the sample, and the next one runs
            loader.set_epoch(epoch)
            reference.set_epoch(epoch)
            epochs.append((batches(reference), batches(loader)))
            logged.append([m for m in records.messages if re.search(rf"sample {victim}\b", m)])
    finally:
        logger.removeHandler(records)
    assert len(logged[0]) == 1, records.messages  # once, however many views failed
    assert len(logged[1]) <= 2 and all(path in m for m in logged[1])
    for expected, got in epochs:
        assert len(got) == len(expected)
        failed = 0
        for a, b in zip(expected, got, strict=True):
            assert b.keys() == a.keys() | {"valid"}
            valid = b["valid"]
            assert valid.dtype == torch.bool and valid.shape == b["index"].shape
            assert torch.equal(a["index"], b["index"])
            assert torch.equal(valid, b["index"] != victim)
            for name, pipe in pipes.items():
                assert b[name].dtype == a[name].dtype and b[name].shape == a[name].shape
                assert torch.equal(b[name][valid], a[name][valid]), name
                for row in torch.nonzero(~valid).flatten().tolist():
                    torch.testing.assert_close(
                        b[name][row], _fill(pipe, b[name].shape[2:]), rtol=0, atol=1e-6
                    )
                    failed += 1
            for key in a.keys() - set(pipes):
                assert torch.equal(a[key], b[key]), key
        assert failed == len(pipes)


def _fill(pipe: ImagePipeline, size: torch.Size) -> torch.Tensor:
    """A failed sample's image: pixel value 0 (uint8), or the normalization of 0."""
    if pipe.normalize is None:
        return torch.zeros(3, *size, dtype=getattr(torch, pipe.dtype))
    fill = -torch.tensor(pipe.normalize.mean) / torch.tensor(pipe.normalize.std)
    return fill.view(3, 1, 1).expand(3, *size).to(getattr(torch, pipe.dtype))


def test_on_error_rejects_an_unknown_policy(dataset):
    with pytest.raises(ValueError, match="on_error"):
        make_loader(dataset, "native-jpeg", 8, UINT8_TRAIN, on_error="ignore")
