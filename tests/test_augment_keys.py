"""Keyed params of slipstream.augment: independence, replay, batch-composition invariance.

Oracles: a sample's params are a pure function of (seed, epoch, sample id, view, stream),
so permuting or subsetting a batch (with its ids) permutes or subsets the params exactly
and the outputs up to float rounding of batched kernels (1e-6); replaying params gives
bit-identical output; p=0 is the identity; p=1 applies to every sample.
"""

from __future__ import annotations

import pickle

import pytest
import torch

import slipstream.augment as A

B, H, W = 16, 32, 32


def random_transforms() -> dict[str, A.BatchTransform]:
    """Every random transform with p=1 (where it has a p)."""
    return {
        "flip": A.RandomHorizontalFlip(p=1.0),
        "grayscale": A.RandomGrayscale(p=1.0),
        "brightness": A.RandomBrightness(p=1.0),
        "contrast": A.RandomContrast(p=1.0),
        "color_jitter": A.RandomColorJitter(
            p=1.0, hue=0.1, saturation=0.2, value=0.4, contrast=0.4
        ),
        "color_jitter_yiq": A.RandomColorJitterYIQ(
            p=1.0, hue=36, saturation=0.2, value=0.2, brightness=0.4, contrast=0.4
        ),
        "blur": A.RandomGaussianBlur(p=1.0, kernel_size=9, sigma_range=(0.5, 2.0)),
        "solarize": A.RandomSolarization(p=1.0),
        "rotate": A.RandomRotate(p=1.0, x=(0.3, 0.7), y=(0.3, 0.7)),
        "zoom": A.RandomZoom(p=1.0, x=(0.0, 1.0), y=(0.0, 1.0)),
        "rotate_object": A.RandomRotateObject(p=1.0, ctr_x=(0.3, 0.7), ctr_y=(0.3, 0.7)),
        "embed": A.RandomEmbed(
            48,
            (0, 1),
            (0, 1),
            background="power_law",
            alpha_range=(0.5, 2.5),
            fade_radius=(0.3, 0.5),
            p_fade=0.5,
        ),
        "background_blend": A.RandomBackgroundBlend(p=1.0),
        "patch_shuffle": A.RandomPatchShuffle(p=1.0),
        "erasing": A.RandomErasing(p=1.0, value="random"),
    }


WITH_P = [name for name in random_transforms() if name != "embed"]


def make(name: str, **kwargs) -> A.BatchTransform:
    transform = random_transforms()[name]
    for field, value in kwargs.items():
        setattr(transform, field, value)
    return transform


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(1))


def key_for(ids, seed: int = 5, epoch: int = 2, view: int = 0) -> A.BatchKey:
    return A.BatchKey(seed=seed, epoch=epoch, sample_ids=torch.as_tensor(ids), view=view)


IDS = list(range(1000, 1000 + B))


def flat_params(params: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in params.items() if k != "apply"}


@pytest.mark.parametrize("name", list(random_transforms()))
def test_replay_is_bit_identical(images, name):
    transform = make(name)
    out, params = transform(images, key_for(IDS), return_params=True)
    assert torch.equal(transform.apply(images, params), out)
    assert torch.equal(transform.apply(images.clone(), params), out)


@pytest.mark.parametrize("name", list(random_transforms()))
def test_params_differ_within_batch(images, name):
    params = make(name).make_params(images, key_for(IDS))
    for field, value in flat_params(params).items():
        rows = value.reshape(B, -1).double()
        assert not torch.all(rows == rows[0]), f"{name}.{field} is the same for every sample"


@pytest.mark.parametrize("name", list(random_transforms()))
def test_same_sample_same_params_whatever_the_batch(images, name):
    transform = make(name)
    out, params = transform(images, key_for(IDS), return_params=True)
    order = torch.randperm(B, generator=torch.Generator().manual_seed(3))
    ids = torch.tensor(IDS)[order]
    out_perm, params_perm = transform(images[order], key_for(ids), return_params=True)
    for field, value in params.items():
        assert torch.equal(params_perm[field], value[order]), field
    assert torch.allclose(out_perm, out[order], atol=1e-6, rtol=0)
    # A smaller batch holding some of the samples.
    sub = order[:5]
    out_sub, params_sub = transform(images[sub], key_for(ids[:5]), return_params=True)
    for field, value in params.items():
        assert torch.equal(params_sub[field], value[sub]), field
    assert torch.allclose(out_sub, out[sub], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", WITH_P)
def test_p_zero_is_identity(images, name):
    transform = make(name, p=0.0)
    out, params = transform(images, key_for(IDS), return_params=True)
    assert not bool(params["apply"].any())
    assert torch.equal(out, images)


@pytest.mark.parametrize("name", WITH_P)
def test_p_one_changes_every_sample(images, name):
    out, params = make(name)(images, key_for(IDS), return_params=True)
    assert bool(params["apply"].all())
    changed = (out - images).abs().reshape(B, -1).amax(dim=1) > 0
    assert bool(changed.all())


@pytest.mark.parametrize("name", WITH_P)
def test_apply_mask_frequency(name):
    transform = make(name, p=0.3)
    stand_in = torch.zeros(4000, 3, 8, 8)
    if name == "patch_shuffle":
        transform.grid = 2
    params = transform.make_params(stand_in, key_for(range(4000)))
    assert abs(float(params["apply"].double().mean()) - 0.3) < 0.03


@pytest.mark.parametrize("name", list(random_transforms()))
def test_pickle_round_trip(images, name):
    transform = make(name)
    clone = pickle.loads(pickle.dumps(transform))
    assert repr(clone) == repr(transform)
    assert torch.equal(clone(images, key_for(IDS)), transform(images, key_for(IDS)))


def test_key_words_change_the_draws(images):
    flip = A.RandomRotate(p=1.0)
    base = flip.make_params(images, key_for(IDS))["degrees"]
    assert torch.equal(flip.make_params(images, key_for(IDS))["degrees"], base)
    for other in (key_for(IDS, seed=6), key_for(IDS, epoch=3), key_for(IDS, view=1)):
        assert not torch.equal(flip.make_params(images, other)["degrees"], base)


def test_transform_streams_are_independent_of_each_other(images):
    key = key_for(IDS)
    brightness = A.RandomBrightness(p=1.0, scale_range=(0, 1)).make_params(images, key)
    contrast = A.RandomContrast(p=1.0, scale_range=(0, 1)).make_params(images, key)
    assert not torch.equal(brightness["factor"], contrast["factor"])


def test_compose_positions_draw_independently(images):
    pipeline = A.Compose([A.RandomRotate(p=1.0), A.RandomRotate(p=1.0)])
    out, params = pipeline(images, key_for(IDS), return_params=True)
    assert not torch.equal(params["0"]["degrees"], params["1"]["degrees"])
    assert torch.equal(pipeline.apply(images, params), out)
    assert torch.equal(
        pipeline.make_params(images, key_for(IDS))["1"]["degrees"], params["1"]["degrees"]
    )


def test_compose_follows_shape_dtype_and_device_changes():
    uint8 = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    pipeline = A.Compose(
        [
            A.ToFloatImage(),
            A.RandomEmbed(40),
            A.RandomErasing(p=1.0),
            A.RGBToLGN(),
            A.NormalizeLGN(),
        ]
    )
    out, params = pipeline(uint8, key_for(IDS), return_params=True)
    assert out.shape == (B, 5, 40, 40) and out.dtype == torch.float32
    assert int(params["2"]["box"][:, 0].max()) > H - 10  # boxes drawn on the 40x40 canvas
    assert torch.equal(pipeline.apply(uint8, params), out)


def test_random_apply(images):
    inner = A.Compose([A.RandomRotate(p=1.0), A.RandomGrayscale(p=1.0)])
    transform = A.RandomApply(inner, p=0.5)
    out, params = transform(images, key_for(IDS), return_params=True)
    mask = params["apply"]
    assert 0 < int(mask.sum()) < B
    assert torch.equal(out[~mask], images[~mask])
    assert torch.equal(out[mask], inner.apply(images, params["inner"])[mask])
    assert torch.equal(transform.apply(images, params), out)
    assert torch.equal(A.RandomApply(inner, p=0.0)(images, key_for(IDS)), images)


def test_multiview_independent_and_shared(images):
    pipeline = A.Compose([A.RandomRotate(p=1.0), A.RandomColorJitter(p=1.0, hue=0.1, value=0.4)])
    views, params = A.MultiView(pipeline, num_views=3)(images, key_for(IDS), return_params=True)
    assert len(views) == 3 and not torch.equal(views[0], views[1])
    # View v is keyed as view v: the same as calling the pipeline with that view.
    assert torch.equal(views[2], pipeline(images, key_for(IDS, view=2)))
    shared, _ = A.MultiView(pipeline, 2, share_params=True)(
        images, key_for(IDS), return_params=True
    )
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[0], views[0])
    replay = A.MultiView(pipeline, 3).apply(images, params)
    assert all(torch.equal(a, b) for a, b in zip(replay, views, strict=True))
    asymmetric = A.MultiView([A.RandomGrayscale(p=1.0), A.RandomSolarization(p=1.0)])
    gray, solar = asymmetric(images, key_for(IDS))
    assert torch.equal(
        solar, A.RandomSolarization(p=1.0).apply(images, {"apply": torch.ones(B, dtype=torch.bool)})
    )


def test_without_key_follows_torch_rng(images):
    rotate = A.RandomRotate(p=1.0)
    torch.manual_seed(0)
    first = rotate(images)
    torch.manual_seed(0)
    assert torch.equal(rotate(images), first)
    assert not torch.equal(rotate(images), first)


def test_key_batch_size_mismatch(images):
    with pytest.raises(ValueError, match="sample ids"):
        A.RandomRotate()(images, key_for(IDS[:3]))


def test_keyed_noise_is_keyed_per_sample():
    from slipstream.augment.keys import keyed_noise

    seeds = torch.tensor([1, 2, 3, 2**61 + 5])
    noise = keyed_noise(seeds, (3, 16, 16))
    assert torch.equal(keyed_noise(seeds[[2]], (3, 16, 16))[0], noise[2])
    assert 0.0 <= float(noise.min()) and float(noise.max()) < 1.0
    assert abs(float(noise.mean()) - 0.5) < 0.02
    assert not torch.equal(noise[0], noise[1])
    big = keyed_noise(seeds[:2], (3, 200, 200)).view(2, -1)
    assert abs(float(torch.corrcoef(torch.stack((big[0, :-1], big[0, 1:])))[0, 1])) < 0.02
    assert abs(float(torch.corrcoef(big)[0, 1])) < 0.02


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(random_transforms()))
def test_cuda_matches_cpu(images, name):
    transform = make(name)
    out, params = transform(images, key_for(IDS), return_params=True)
    out_cuda, params_cuda = transform(images.cuda(), key_for(IDS), return_params=True)
    assert out_cuda.is_cuda
    for field, value in params.items():
        assert torch.allclose(params_cuda[field].cpu().double(), value.double(), atol=1e-6)
    assert torch.allclose(out_cuda.cpu(), out, atol=1e-4, rtol=0)
    assert torch.equal(transform.apply(images.cuda(), params_cuda), out_cuda)


ONE_PASS = {
    "flip": lambda: A.RandomHorizontalFlip(p=0.5),
    "brightness": lambda: A.RandomBrightness(p=0.5),
    "contrast": lambda: A.RandomContrast(p=0.5),
    "erasing": lambda: A.RandomErasing(p=0.5),
    "erasing_noise": lambda: A.RandomErasing(p=0.5, value="random"),
}


def _one_pass_case(name, images, device):
    transform = ONE_PASS[name]()
    batch = images.to(device).contiguous(memory_format=torch.channels_last)
    _, params = transform(batch, key_for(IDS), return_params=True)
    mask = params["apply"]
    assert 0 < int(mask.sum()) < len(IDS)  # a mixed mask: the one-pass path runs
    expected = A.base.select(mask, transform.transform(batch, params), batch)
    return transform.apply(batch, params), expected


@pytest.mark.parametrize("name", list(ONE_PASS))
def test_one_pass_masking_equals_per_sample_selection(images, name):
    """Neutral params / index tricks give exactly transform-then-select, memory format kept."""
    out, expected = _one_pass_case(name, images, "cpu")
    assert torch.equal(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(ONE_PASS))
def test_one_pass_masking_on_cuda(images, name):
    out, expected = _one_pass_case(name, images, "cuda")
    assert torch.equal(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)
