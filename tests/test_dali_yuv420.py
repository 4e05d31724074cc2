"""What only the DALI engine does with YUV420: odd sides, decode_crop graphs, PrefetchedBatches.

The loader contract on ``dali-cpu-yuv420`` (bit-exact against the native engine, multi-view,
on_error on a too-short item) is in ``test_loader_contract.py``; the shared ``yuv_dataset``
(the photo cache with its companion, built once per run) comes from ``conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip(
    "nvidia.dali", reason="nvidia-dali is not installed (pip install 'slipstream[dali]')"
)

from loader_engines import MULTI_VIEW, assert_same, batches, make_loader  # noqa: E402

from slipstream import SlipstreamDataset, SlipstreamLoader  # noqa: E402
from slipstream.cache.yuv420 import build_yuv420  # noqa: E402
from slipstream.decode import NoDecodeEngineError, select_engine  # noqa: E402
from slipstream.native import decode_full  # noqa: E402
from slipstream.native.yuv420 import decode_crop_views_yuv420  # noqa: E402
from slipstream.pipelines import (  # noqa: E402
    DecodeCenterCrop,
    ImagePipeline,
    supervised_train,
)

pytestmark = pytest.mark.dali

UINT8_TRAIN = supervised_train(64, normalize=False, dtype="uint8")
UINT8_CENTER = {"image": ImagePipeline(DecodeCenterCrop(56), dtype="uint8")}


@pytest.fixture(scope="module")
def odd_dataset(photo_dataset, tmp_path_factory: pytest.TempPathFactory) -> SlipstreamDataset:
    """48 JPEGs with odd sides (some 4:4:4) cut from the photos, as a slip cache."""
    root = tmp_path_factory.mktemp("odd-photos")
    rng = np.random.default_rng(3)
    for i in range(48):
        photo = decode_full(photo_dataset.cache.item_bytes("image", i))
        h = min(int(rng.integers(9, 60)) * 2 + 1, photo.shape[0])
        w = min(int(rng.integers(9, 60)) * 2 + 1, photo.shape[1])
        h, w = (h, w - 1 + w % 2) if i % 3 == 0 else (h - 1 + h % 2, w)  # one or both odd
        folder = root / f"class_{i % 4}"
        folder.mkdir(exist_ok=True)
        tile = Image.fromarray(np.ascontiguousarray(photo[:h, :w]))
        tile.save(folder / f"{i:03d}.jpg", quality=95, subsampling=2 if i % 4 else 0)
    dataset = SlipstreamDataset(
        root, cache_dir=tmp_path_factory.mktemp("odd-caches"), progress=False
    )
    meta = dataset.cache.meta("image")
    assert (meta["height"] % 2).any() and (meta["width"] % 2).any()
    build_yuv420(dataset.cache, "image", progress=False)
    return dataset


def test_yuv420_is_not_the_jpeg_decode(yuv_dataset):
    """The operator reads the companion's items as YUV420: not the JPEG path's pixels."""
    jpeg = batches(make_loader(yuv_dataset, "dali-cpu-jpeg", 64, UINT8_TRAIN, seed=2))
    yuv = batches(make_loader(yuv_dataset, "dali-cpu-yuv420", 64, UINT8_TRAIN, seed=2))
    assert len(jpeg) == len(yuv)
    for a, b in zip(jpeg, yuv, strict=True):
        assert torch.equal(a["index"], b["index"])
        assert not torch.equal(a["image"], b["image"])
        diff = (a["image"].float() - b["image"].float()).abs()
        assert diff.mean() < 3.0  # the same photos, decoded another way


@pytest.mark.parametrize("pipelines", [UINT8_TRAIN, UINT8_CENTER, MULTI_VIEW])
def test_odd_sizes_identical_to_native(odd_dataset, pipelines):
    native = make_loader(odd_dataset, "native-yuv420", 20, pipelines, seed=7)
    dali = make_loader(odd_dataset, "dali-cpu-yuv420", 20, pipelines, seed=7)
    for epoch in (0, 1):
        native.set_epoch(epoch)
        dali.set_epoch(epoch)
        assert_same(batches(native), batches(dali))


def test_mixed_decode_rejects_yuv420(yuv_dataset):
    with pytest.raises(ValueError, match="yuv420"):
        make_loader(yuv_dataset, "dali-cpu-yuv420", 8, UINT8_TRAIN, decode_device="mixed")
    with pytest.raises(NoDecodeEngineError, match="yuv420"):
        select_engine("dali", "mixed", "yuv420", torch.device("cuda"))


def test_default_decode_device_is_the_cpu_operator(yuv_dataset):
    options = {"backend": "dali", "image_format": "yuv420", "device": "cpu"}
    loader = SlipstreamLoader(yuv_dataset, 8, UINT8_TRAIN, **options)
    assert loader.decode_device == "cpu"
    # on a GPU as well: nvJPEG, the DALI default there, cannot read YUV420
    assert select_engine("dali", None, "yuv420", torch.device("cuda"))[1] == "cpu"


def _graph(items, windows, sizes, **decode_kwargs):
    """A one-batch DALI pipeline: ``decode_crop(items, windows, ...)`` on the CPU."""
    from nvidia.dali import fn, pipeline_def

    import slipstream.dali as sdali

    node = decode_kwargs.get("image_size") == "node"  # sizes as a per-sample DataNode
    arrays = (items, windows, sizes) if node else (items, windows)

    @pipeline_def(batch_size=len(items), num_threads=2, device_id=None)
    def pipe():
        nodes = fn.external_source(source=lambda: arrays, num_outputs=len(arrays), batch=True)
        if node:
            decode_kwargs["image_size"] = nodes[2]
        return sdali.decode_crop(nodes[0], nodes[1], **decode_kwargs)

    pipeline = pipe()
    pipeline.build()
    return pipeline


def _items(companion, ids):
    meta = companion.meta[ids]
    items = [
        np.asarray(companion.data[int(p) : int(p) + int(s)])
        for p, s in zip(meta["data_ptr"], meta["data_size"], strict=True)
    ]
    sizes = np.stack([meta["height"], meta["width"]], axis=1).astype(np.int32)
    return items, sizes


def test_decode_crop_graph_matches_native_kernel(yuv_dataset):
    """``sdali.decode_crop(format="yuv420")`` in a user graph: [4] and [K, 4] windows."""
    companion = build_yuv420(yuv_dataset.cache, "image", progress=False)
    ids = np.arange(6)
    items, sizes = _items(companion, ids)
    windows = [[[0, 0, h, w], [h // 4, w // 3, h // 2, w // 2]] for h, w in sizes]
    windows = np.asarray(windows, dtype=np.int32)
    multi = _graph(items, windows, sizes, size=(40, 30), format="yuv420", image_size="node")
    single = _graph(
        items, np.ascontiguousarray(windows[:, 1]), sizes, size=40, flip=1,
        format="yuv420", image_size="node",
    )  # fmt: skip
    (views,) = multi.run()
    (flipped,) = single.run()
    for i in range(len(ids)):
        ref = decode_crop_views_yuv420(items[i], *sizes[i], windows[i], (40, 30))
        np.testing.assert_array_equal(np.asarray(views[i]), ref)
        ref = decode_crop_views_yuv420(items[i], *sizes[i], windows[i, 1:], (40, 40), [True])
        np.testing.assert_array_equal(np.asarray(flipped[i]), ref[0])
    # one constant (height, width) for a batch of one image
    h, w = (int(v) for v in sizes[2])
    constant = _graph(items[2:3], windows[2:3, 1], sizes[2:3], size=40, format="yuv420",
                      image_size=(h, w))  # fmt: skip
    (out,) = constant.run()
    ref = decode_crop_views_yuv420(items[2], h, w, windows[2, 1:], (40, 40))
    np.testing.assert_array_equal(np.asarray(out[0]), ref[0])


def test_decode_crop_checks_format_arguments(yuv_dataset):
    companion = build_yuv420(yuv_dataset.cache, "image", progress=False)
    items, sizes = _items(companion, np.arange(2))
    windows = np.array([[0, 0, 8, 8]] * 2, dtype=np.int32)
    with pytest.raises(ValueError, match="needs image_size"):
        _graph(items, windows, sizes, size=8, format="yuv420")
    with pytest.raises(ValueError, match="image_size is for format='yuv420'"):
        _graph(items, windows, sizes, size=8, image_size="node")
    with pytest.raises(ValueError, match="format must be one of"):
        _graph(items, windows, sizes, size=8, format="png")
    with pytest.raises(ValueError, match="nvJPEG"):
        _graph(items, windows, sizes, size=8, format="yuv420", image_size="node", device="mixed")


def test_prefetched_batches_in_a_user_pipeline(yuv_dataset):
    """PrefetchedBatches(image_format="yuv420") + decode_crop(format="yuv420") = the loader."""
    from nvidia.dali import pipeline_def
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    import slipstream.dali as sdali

    source = sdali.PrefetchedBatches(yuv_dataset, 48, UINT8_TRAIN, seed=6, image_format="yuv420")
    assert source.output_names == [
        "yuv420/image", "sizes/image", "windows/image", "flips/image", "label"
    ]  # fmt: skip

    @pipeline_def(batch_size=48, num_threads=2, device_id=None)
    def pipe():
        items, sizes, windows, flips, labels = sdali.external_source(source)
        images = sdali.decode_crop(
            items, windows, size=64, flip=flips, format="yuv420", image_size=sizes
        )
        return images, labels

    pipeline = pipe()
    pipeline.build()
    iterator = DALIGenericIterator(
        pipeline, ["image", "label"], auto_reset=True, last_batch_policy=LastBatchPolicy.PARTIAL
    )
    native = make_loader(yuv_dataset, "native-yuv420", 48, UINT8_TRAIN, seed=6)
    for _ in range(2):
        expected = batches(native)
        got = [b for (b,) in iterator]
        assert len(got) == len(expected) == len(source)
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a["image"].permute(0, 2, 3, 1), b["image"])
            assert torch.equal(a["label"], b["label"].flatten())
