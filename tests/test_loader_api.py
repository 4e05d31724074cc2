"""The SlipstreamLoader arguments users of the original slipstream and FFCV know.

``crop_size`` / ``crop_mode``, ``pipelines`` as a list of stages or one stage,
``num_workers`` / ``batches_ahead`` (old names warn), ``as_tuple``,
``after_batch_transforms``, ``exclude_fields``, ``image_field``, and the original's
arguments that live elsewhere here (a TypeError naming where). Oracles: numpy
normalization of the uint8 output, torch flips, Mixup called by hand with the same key.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from loader_engines import MULTI_VIEW

from slipstream import SlipstreamLoader
from slipstream.augment import BatchKey, Mixup, RandomHorizontalFlip
from slipstream.pipelines import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DecodeCenterCrop,
    DecodeRandomResizedCrop,
    ImagePipeline,
    Normalize,
    supervised_train,
    supervised_val,
)

CPU = {"device": "cpu", "backend": "native", "num_workers": 2, "shuffle": False}
SUBSET = np.arange(32)


def _loader(dataset, *args, **kwargs):
    options = {**CPU, "indices": SUBSET, **kwargs}
    return SlipstreamLoader(dataset, *args, **options)


def _first(loader):
    return next(iter(loader))


# ------------------------------------------------------------------ crop_size / crop_mode
def test_crop_size_is_the_supervised_presets(photo_dataset):
    train = _loader(photo_dataset, batch_size=16, crop_size=32, crop_mode="random")
    assert train.pipelines == supervised_train(32)
    assert _loader(photo_dataset, 16, crop_size=32).pipelines == supervised_train(32)
    val = _loader(photo_dataset, batch_size=16, crop_size=32, crop_mode="center")
    assert val.pipelines == supervised_val(32)
    batch = _first(val)
    assert batch["image"].shape == (16, 3, 32, 32) and batch["image"].dtype == torch.float32
    reference = _first(_loader(photo_dataset, 16, supervised_val(32)))
    assert torch.equal(batch["image"], reference["image"])


def test_crop_arguments_that_do_not_fit(photo_dataset):
    with pytest.raises(ValueError, match="pipelines= .* or crop_size="):
        _loader(photo_dataset, 16)
    with pytest.raises(ValueError, match="not both"):
        _loader(photo_dataset, 16, supervised_train(32), crop_size=32)
    with pytest.raises(ValueError, match="crop_mode must be one of"):
        _loader(photo_dataset, 16, crop_size=32, crop_mode="centre")
    with pytest.raises(ValueError, match="not both"):
        _loader(photo_dataset, 16, supervised_train(32), crop_mode="center")
    with pytest.raises(ValueError, match="image_field"):
        _loader(photo_dataset, 16, supervised_train(32), image_field="image")


# ------------------------------------------------------------------ pipeline forms
def test_a_list_of_stages_normalizes_like_numpy(photo_dataset):
    raw = _first(_loader(photo_dataset, 16, {"image": [DecodeCenterCrop(32)]}))["image"]
    assert raw.dtype == torch.uint8
    norm = _first(_loader(photo_dataset, 16, {"image": [DecodeCenterCrop(32), Normalize()]}))
    expected = (raw.numpy() / 255.0 - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(
        IMAGENET_STD
    )[:, None, None]
    np.testing.assert_allclose(norm["image"].numpy(), expected, atol=1e-5)


def test_one_stage_without_a_dict_is_the_image_pipeline(photo_dataset):
    crop = DecodeRandomResizedCrop(32)
    as_dict = _first(_loader(photo_dataset, 16, {"image": ImagePipeline(crop, dtype="uint8")}))
    lone = _loader(photo_dataset, batch_size=16, pipelines=crop)
    assert list(lone.pipelines) == ["image"]
    assert torch.equal(_first(lone)["image"], as_dict["image"])
    listed = _first(_loader(photo_dataset, 16, [crop]))
    assert torch.equal(listed["image"], as_dict["image"])


def test_a_batch_transform_in_the_list_runs_on_the_decoded_batch(photo_dataset):
    raw = _first(_loader(photo_dataset, 16, [DecodeCenterCrop(32)]))["image"]
    flipped = _first(_loader(photo_dataset, 16, [DecodeCenterCrop(32), RandomHorizontalFlip(1.0)]))
    torch.testing.assert_close(flipped["image"], raw.float().div(255).flip(-1))


def test_a_stage_that_is_not_one_names_the_output(photo_dataset):
    with pytest.raises(TypeError, match="'image'.*after_batch_transforms"):
        _loader(photo_dataset, 16, {"image": [DecodeCenterCrop(32), lambda x: x]})
    with pytest.raises(TypeError, match="'image'"):
        _loader(photo_dataset, 16, {"image": "random"})


# ------------------------------------------------------------------ names
def test_num_workers_and_batches_ahead(photo_dataset):
    loader = _loader(photo_dataset, 16, crop_size=32, num_workers=3, batches_ahead=2)
    assert (loader.num_workers, loader.batches_ahead) == (3, 2)
    assert len(_first(loader)["label"]) == 16


def test_the_old_names_warn_and_still_apply(photo_dataset):
    options = {**CPU, "indices": SUBSET}
    del options["num_workers"]
    with pytest.warns(FutureWarning, match="num_workers"):
        loader = SlipstreamLoader(photo_dataset, 16, crop_size=32, num_threads=3, **options)
    assert loader.num_workers == 3
    with pytest.warns(FutureWarning, match="batches_ahead"):
        loader = SlipstreamLoader(photo_dataset, 16, crop_size=32, prefetch=5, **options)
    assert loader.batches_ahead == 5
    with pytest.raises(TypeError, match="num_threads was renamed to num_workers"):
        SlipstreamLoader(photo_dataset, 16, crop_size=32, num_threads=3, num_workers=2)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("force_rebuild", "SlipstreamDataset"),
        ("presync_s3", "s5cmd"),
        ("use_threading", "num_workers=1"),
        ("bogus", "unexpected keyword argument 'bogus'"),
    ],
)
def test_arguments_that_live_elsewhere_are_never_ignored(photo_dataset, name, where):
    with pytest.raises(TypeError, match=where):
        _loader(photo_dataset, 16, crop_size=32, **{name: True})


# ------------------------------------------------------------------ batch forms
def test_as_tuple_yields_images_then_labels(photo_dataset):
    plain = _first(_loader(photo_dataset, 16, crop_size=32))
    images, labels = _first(_loader(photo_dataset, 16, crop_size=32, as_tuple=True))
    assert torch.equal(images, plain["image"]) and torch.equal(labels, plain["label"])
    views = _first(_loader(photo_dataset, 8, MULTI_VIEW, as_tuple=True))
    reference = _first(_loader(photo_dataset, 8, MULTI_VIEW))
    assert len(views) == len(MULTI_VIEW) + 1
    for got, name in zip(views, [*MULTI_VIEW, "label"], strict=True):
        assert torch.equal(got, reference[name])
    with pytest.raises(ValueError, match="as_tuple"):
        _loader(photo_dataset, 16, crop_size=32, as_tuple=True, on_error="skip")
    with pytest.raises(ValueError, match="'label'"):
        _loader(photo_dataset, 16, crop_size=32, as_tuple=True, fields=["index"])


def test_after_batch_transforms_receive_and_return_the_batch(photo_dataset):
    def count(batch):
        return {**batch, "count": len(batch["label"])}

    def double(batch):
        batch["image"] = batch["image"] * 2
        return batch

    plain = _first(_loader(photo_dataset, 16, crop_size=32))
    batch = _first(_loader(photo_dataset, 16, crop_size=32, after_batch_transforms=[count, double]))
    assert batch["count"] == 16
    assert torch.equal(batch["image"], plain["image"] * 2)
    with pytest.raises(TypeError, match=r"after_batch_transforms\[0\].*return the batch dict"):
        _first(_loader(photo_dataset, 16, crop_size=32, after_batch_transforms=[print]))
    with pytest.raises(TypeError, match="callable"):
        _loader(photo_dataset, 16, crop_size=32, after_batch_transforms=["mixup"])


def test_mixup_as_an_after_batch_transform_is_keyed_by_the_samples(photo_dataset):
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=10)
    loader = _loader(photo_dataset, 16, crop_size=32, seed=3, after_batch_transforms=[mixup])
    loader.set_epoch(2)
    mixed = _first(loader)
    plain = _loader(photo_dataset, 16, crop_size=32, seed=3)
    plain.set_epoch(2)
    batch = _first(plain)
    key = BatchKey(3, 2, batch["index"].numpy())
    images, targets = mixup(batch["image"], batch["label"], key)
    assert torch.equal(mixed["image"], images) and torch.equal(mixed["label"], targets)
    assert mixed["label"].shape == (16, 10)


def test_exclude_fields(photo_dataset):
    every = _loader(photo_dataset, 16, crop_size=32).fields
    assert "label" in every
    loader = _loader(photo_dataset, 16, crop_size=32, exclude_fields=["label"])
    assert loader.fields == [f for f in every if f != "label"]
    assert "label" not in _first(loader)
    with pytest.raises(ValueError, match="not both"):
        _loader(photo_dataset, 16, crop_size=32, fields=["label"], exclude_fields=["label"])
    with pytest.raises(KeyError, match="nope"):
        _loader(photo_dataset, 16, crop_size=32, exclude_fields=["nope"])


def test_image_field_names_the_field_of_the_shortcut(photo_dataset):
    loader = _loader(photo_dataset, 16, crop_size=32, image_field="image")
    assert loader.pipelines == supervised_train(32, field="image")
    with pytest.raises(KeyError, match="photo"):
        _loader(photo_dataset, 16, crop_size=32, image_field="photo")
