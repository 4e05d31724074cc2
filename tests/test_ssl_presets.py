"""Multi-view presets through the loader: every view is the keyed crop of its own view index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slipstream import SlipstreamLoader
from slipstream.native import decode_crop
from slipstream.pipelines import byol, dino, ipcl, lejepa, simclr
from slipstream.sampling import crops


def test_preset_shapes_and_views():
    d = dino()
    assert list(d) == ["global_0", "global_1"] + [f"local_{k}" for k in range(8)]
    assert [p.view for p in d.values()] == list(range(10))
    assert {p.crop.output_size for p in d.values()} == {(224, 224), (96, 96)}
    assert d["global_0"].crop.scale == (0.4, 1.0) and d["local_3"].crop.scale == (0.05, 0.4)
    assert list(lejepa()) == ["global_0", "global_1", "local_0", "local_1", "local_2", "local_3"]
    assert len(ipcl()) == 5 and ipcl()["crop_4"].crop.scale == (0.2, 1.0)
    assert list(simclr()) == list(byol()) == ["view_0", "view_1"]
    assert all(p.field == "image" for p in dino(field="image").values())


def _uint8(preset):
    return {
        name: type(p)(p.crop, p.flip_probability, None, "uint8", p.field, p.view)
        for name, p in preset.items()
    }


@pytest.mark.parametrize("preset", [simclr, byol, ipcl])
def test_augmented_views_equal_the_chain_on_decoded_crops(photo_dataset, preset):
    """Loader output = the preset's keyed augment chain applied to the uint8 crops."""
    from slipstream.augment.keys import BatchKey

    augmented = preset(32)
    plain = _uint8(preset(32, augment=False))
    kwargs = {"seed": 8, "device": "cpu", "num_workers": 2, "backend": "native"}
    loader = SlipstreamLoader(photo_dataset, 24, augmented, **kwargs)
    reference = SlipstreamLoader(photo_dataset, 24, plain, **kwargs)
    loader.set_epoch(1)
    reference.set_epoch(1)
    got, crops_only = next(iter(loader)), next(iter(reference))
    ids = got["index"].numpy()
    for name, pipeline in augmented.items():
        assert got[name].dtype == torch.float32 and got[name].shape == (24, 3, 32, 32)
        key = BatchKey(8, 1, ids, view=pipeline.view)
        want = pipeline.augment(crops_only[name], key)
        torch.testing.assert_close(got[name], want, rtol=0, atol=0)
    first, second = list(augmented)[:2]
    assert not torch.equal(got[first], got[second])
    with pytest.raises(ValueError, match="augment chain converts"):
        type(augmented[first])(augmented[first].crop, augment=augmented[first].augment)


@pytest.mark.parametrize("backend", ["native", pytest.param("dali", marks=pytest.mark.dali)])
def test_multi_crop_views_equal_their_single_decodes(photo_dataset, backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    pipelines = _uint8(dino(64, 32, num_local=3, augment=False))
    loader = SlipstreamLoader(
        photo_dataset, 40, pipelines, seed=3, device="cpu", num_workers=2, backend=backend
    )
    cache = photo_dataset.cache
    heights, widths = photo_dataset.image_sizes()
    batch = next(iter(loader))
    ids = batch["index"].numpy()
    assert set(batch) >= set(pipelines)
    for name, pipeline in pipelines.items():
        images = batch[name]
        size = pipeline.crop.output_size
        assert images.shape == (40, 3, *size)
        windows = crops.random_resized_crop(
            heights[ids], widths[ids], ids, seed=3, epoch=0, view=pipeline.view,
            scale=pipeline.crop.scale,
        )  # fmt: skip
        flips = crops.flips(ids, seed=3, epoch=0, view=pipeline.view)
        for i in (0, 17, 39):
            want = decode_crop(
                cache.item_bytes("image", int(ids[i])), windows[i], size, flip=bool(flips[i])
            )
            np.testing.assert_array_equal(images[i].permute(1, 2, 0).numpy(), want)
    assert not torch.equal(batch["global_0"], batch["global_1"])  # independent draws
    assert not torch.equal(batch["local_0"], batch["local_1"])


def test_unknown_field_is_named(photo_dataset):
    with pytest.raises(KeyError, match="reads 'nope'"):
        SlipstreamLoader(photo_dataset, 8, simclr(32, field="nope"), device="cpu")
