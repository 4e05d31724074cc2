"""Argument checks: each bad value is refused at once, naming the argument and what is accepted."""

from __future__ import annotations

import numpy as np
import pytest

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.arguments import check_bool, check_choice, check_int
from slipstream.pipelines import supervised_train


def test_check_int_accepts_integers_only():
    assert check_int("n", 3, minimum=1) == 3
    assert type(check_int("n", np.int64(7))) is int
    assert check_int("n", None, optional=True) is None
    for bad in (2.5, 2.0, "3", True, None, [1]):
        with pytest.raises(TypeError, match=r"^n must be an integer"):
            check_int("n", bad)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        check_int("n", 0, minimum=1)
    with pytest.raises(ValueError, match=r"in \[0, 9\], got 10$"):
        check_int("n", 10, minimum=0, maximum=9)


def test_check_bool_and_choice():
    assert check_bool("flag", np.bool_(True)) is True
    with pytest.raises(TypeError, match="flag must be True or False, got 1 .int."):
        check_bool("flag", 1)
    assert check_choice("mode", "a", ("a", "b")) == "a"
    assert check_choice("mode", None, ("a",), optional=True) is None
    with pytest.raises(ValueError, match=r"^mode must be one of 'a', 'b', got 'c'$"):
        check_choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match="got \\[1\\]"):
        check_choice("mode", [1], {"a"})  # unhashable


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 2.5}, TypeError, r"batch_size must be an integer >= 1, got 2\.5 \(float\)"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1, got 0"),
        ({"batch_size": "8"}, TypeError, r"batch_size must be an integer >= 1, got '8' \(str\)"),
        ({"seed": -1}, ValueError, r"seed must be an integer >= 0, got -1"),
        ({"batches_ahead": 0}, ValueError, r"batches_ahead must be an integer >= 1, got 0"),
        ({"num_workers": 1.5}, TypeError, r"num_workers must be an integer >= 1 or None"),
        ({"shuffle": "yes"}, TypeError, r"shuffle must be True or False, got 'yes'"),
        ({"drop_last": 1}, TypeError, r"drop_last must be True or False, got 1"),
        ({"on_error": "ignore"}, ValueError, r"on_error must be one of 'raise', 'skip'"),
        ({"world_size": 0}, ValueError, r"world_size must be an integer >= 1 or None, got 0"),
    ],
)
def test_loader_refuses_bad_arguments(photo_dataset, kwargs, error, message):
    args = {"batch_size": 8, **kwargs}
    batch_size = args.pop("batch_size")
    with pytest.raises(error, match=message):
        SlipstreamLoader(photo_dataset, batch_size, supervised_train(64), backend="native", **args)


def test_loader_with_good_numpy_integers_runs(photo_dataset):
    loader = SlipstreamLoader(
        photo_dataset, np.int64(16), supervised_train(64), backend="native", device="cpu"
    )
    assert loader.batch_size == 16 and type(loader.batch_size) is int
    assert len(loader) == 15  # 240 / 16
    assert next(iter(loader))["image"].shape[0] == 16


def test_loader_refuses_a_non_dataset(tmp_path):
    with pytest.raises(TypeError, match="dataset must be a SlipstreamDataset, got str"):
        SlipstreamLoader(str(tmp_path), 8, supervised_train(64))


def test_dataset_refuses_bad_arguments(photo_dataset):
    source = photo_dataset.cache_path
    with pytest.raises(ValueError, match=r"on_error must be one of 'raise', 'skip', got 'drop'"):
        SlipstreamDataset(source, on_error="drop")
    with pytest.raises(TypeError, match=r"progress must be True or False, got 'no'"):
        SlipstreamDataset(source, progress="no")
    with pytest.raises(TypeError, match="source must be a path or an s3:// URL, got int"):
        SlipstreamDataset(3)


def test_repr_of_dataset_and_loader(photo_folder, photo_dataset):
    text = repr(photo_dataset)
    assert text.startswith(f"SlipstreamDataset(source={str(photo_folder)!r}, ")
    assert f"cache={str(photo_dataset.cache_path)!r} (slip cache)" in text
    assert "samples=240" in text and "'image': 'ImageBytes'" in text and "'label'" in text
    loader = SlipstreamLoader(
        photo_dataset, 32, supervised_train(64), backend="native", device="cpu", seed=3
    )
    loader.set_epoch(2)
    text = repr(loader)
    for part in (
        f"source={str(photo_folder)!r}",
        f"cache={str(photo_dataset.cache_path)!r}",
        "samples=240",
        "batch_size=32",
        "batches=8",
        "fields=",
        "pipelines={image=ImagePipeline(",
        "engine='native'",
        "backend='native'",
        "device='cpu'",
        "seed=3",
        "epoch=2",
    ):
        assert part in text, (part, text)


def test_repr_of_an_ffcv_file_read_in_place():
    from pathlib import Path

    beton = Path(__file__).parent / "fixtures" / "ffcv" / "custom.beton"
    text = repr(SlipstreamDataset(beton))
    assert text.startswith(f"SlipstreamDataset(source={str(beton)!r}, cache={str(beton)!r}")
    assert "(read in place), samples=6" in text
