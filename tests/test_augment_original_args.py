"""The original slipstream's constructor arguments on our keyed transforms.

Checks ``seed=`` (replaces the key's seed, draws stay keyed per sample), calls without a
key (keyed by the transform's seed and a call counter), ``apply_last`` replay, the renamed
arguments (old names warn and give the same transform), and the semantics of the
original's arguments where they differ from ours (zoom ratio, rotation center, erasing
modes, embed fade), each against an independent computation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

import slipstream.augment as A
import slipstream.transforms as T

BILINEAR = InterpolationMode.BILINEAR
B, H, W = 6, 32, 40
IDS = np.array([5, 17, 2, 99, 40, 8])


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(1))


def key(seed: int = 0, epoch: int = 0, ids: np.ndarray = IDS) -> A.BatchKey:
    return A.BatchKey(seed=seed, epoch=epoch, sample_ids=ids)


def test_seed_replaces_the_key_seed_and_stays_keyed_per_sample(images):
    zoom = A.RandomZoom(p=1.0, x=(0, 1), y=(0, 1), seed=7)
    own = zoom.draw_params(images, key(seed=0))
    # The transform's seed wins over the loader's; epoch, ids and view still key the draw.
    assert torch.equal(own["scale"], zoom.draw_params(images, key(seed=123))["scale"])
    plain = A.RandomZoom(p=1.0, x=(0, 1), y=(0, 1)).draw_params(images, key(seed=7))
    assert all(torch.equal(own[k], plain[k]) for k in plain)
    assert not torch.equal(own["scale"], zoom.draw_params(images, key(seed=0, epoch=1))["scale"])
    order = np.argsort(IDS)
    shuffled = zoom.draw_params(images[order], key(ids=IDS[order]))
    assert torch.equal(shuffled["scale"], own["scale"][order])


def test_seed_inside_containers(images):
    pipeline = A.Compose([A.RandomGrayscale(p=0.5, seed=3), A.RandomHorizontalFlip()])
    a, params_a = pipeline(images, key(seed=0), return_params=True)
    b, params_b = pipeline(images, key(seed=1), return_params=True)
    assert torch.equal(params_a["0"]["apply"], params_b["0"]["apply"])  # own seed
    assert not torch.equal(params_a["1"]["apply"], params_b["1"]["apply"])  # loader's seed
    assert torch.equal(pipeline.apply(images, params_a), a)


def test_keyless_calls_follow_the_seed_and_a_counter(images):
    first, second = A.RandomRotate(p=1.0, seed=5), A.RandomRotate(p=1.0, seed=5)
    out1, out2 = first(images), first(images)
    assert torch.equal(out1, second(images)) and torch.equal(out2, second(images))
    assert not torch.equal(out1, out2)
    # Call n draws as epoch n with ids 0..B-1.
    keyed = A.RandomRotate(p=1.0, seed=5)(images, key(seed=5, epoch=1, ids=np.arange(B)))
    assert torch.equal(out2, keyed)


def test_keyless_calls_without_seed_follow_torch_rng(images):
    rotate = A.RandomRotate(p=1.0)
    torch.manual_seed(11)
    out = rotate(images)
    torch.manual_seed(11)
    assert torch.equal(out, rotate(images))


def test_apply_last_replays_the_last_call(images):
    blur = T.RandomGaussianBlur(p=0.5, seed=1)
    out = blur(images)
    assert torch.equal(blur.apply_last(images), out)
    assert set(blur.last_params()) == {"apply", "sigma"}
    with pytest.raises(RuntimeError, match="not been called"):
        T.RandomGaussianBlur().apply_last(images)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (lambda: A.RandomZoom(scale_range=(1.0, 2.0)), lambda: A.RandomZoom(zoom=(0.5, 1.0))),
        (lambda: A.RandomZoom(x_range=(0.2, 0.4)), lambda: A.RandomZoom(x=(0.2, 0.4))),
        (lambda: A.RandomRotate(degrees_range=(-10, 10)), lambda: A.RandomRotate(max_deg=10)),
        (lambda: A.RandomRotate(padding_mode="border"), lambda: A.RandomRotate(pad_mode="border")),
        (
            lambda: A.RandomBrightness(factor_range=(0.5, 1)),
            lambda: A.RandomBrightness(scale_range=(0.5, 1)),
        ),
        (lambda: A.RandomColorJitter(brightness=0.3), lambda: A.RandomColorJitter(value=0.3)),
        (lambda: A.RandomColorJitterYIQ(hue_range=(-9, 9)), lambda: A.RandomColorJitterYIQ(hue=9)),
        (lambda: A.RandomErasing(scale=(0.1, 0.2)), lambda: A.RandomErasing(area_range=(0.1, 0.2))),
        (lambda: A.RandomErasing(ratio=(0.5, 2)), lambda: A.RandomErasing(aspect_range=(0.5, 2))),
        (
            lambda: A.RandomEmbed(48, exponent_range=(1, 2)),
            lambda: A.RandomEmbed(48, alpha_range=(1, 2)),
        ),
    ],
)
def test_old_names_warn_and_mean_the_same(images, old, new):
    with pytest.warns(FutureWarning, match="renamed"):
        before = old()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after = new()
    k = key()
    a, b = before.draw_params(images, k), after.draw_params(images, k)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-12)


def test_both_names_is_an_error():
    with pytest.raises(TypeError, match="both"):
        A.RandomZoom(zoom=0.5, scale_range=(1, 2))


def test_zoom_ratio_below_one_magnifies_about_the_center(images):
    # zoom=0.5 at the center shows the central half at twice the size: torchvision's
    # affine with scale 2 about the center.
    out = T.RandomZoom(p=1.0, zoom=0.5, x=0.5, y=0.5)(images, key())
    ref = TF.affine(
        images, angle=0.0, translate=[0, 0], scale=2.0, shear=[0.0, 0.0], interpolation=BILINEAR
    )
    assert float((out - ref).abs().max()) < 1e-4


def test_rotate_about_a_corner_point(images):
    # Rotating about (x, y) = (0.25, 0.25) is torchvision's rotate with that center
    # (pixel coordinates of the point, clockwise angle negated).
    square = images[..., :32]
    rotate = T.RandomRotate(p=1.0, max_deg=30, x=0.25, y=0.25)
    out, params = rotate(square, key(), return_params=True)
    for i in range(B):
        ref = TF.rotate(
            square[i], float(params["degrees"][i]), center=[8.0, 8.0], interpolation=BILINEAR
        )
        inner = (slice(None), slice(2, -2), slice(2, -2))
        assert float((out[i] - ref)[inner].abs().max()) < 1e-3


def test_rotate_angles_are_chosen_from_the_list(images):
    params = A.RandomRotate(p=1.0, angles=[0, 90, 180]).draw_params(images, key())
    assert set(params["degrees"].tolist()) <= {0.0, 90.0, 180.0}


@pytest.mark.parametrize("kernel_size", [6, 7])
def test_blur_bank_and_even_kernels(images, kernel_size):
    blur = A.RandomGaussianBlur(p=1.0, kernel_size=kernel_size, sigma_range=(0.5, 2.0))
    out, params = blur(images, key(), return_params=True)
    bank = torch.linspace(0.5, 2.0, 10, dtype=torch.float64).float()
    assert all(bool(torch.isclose(bank, s).any()) for s in params["sigma"])
    assert out.shape == images.shape
    # An independent reference: numpy 2-D correlation with the separable kernel.
    half = (kernel_size - 1) * 0.5
    taps = np.linspace(-half, half, kernel_size)
    sigma = float(params["sigma"][0])
    k1 = np.exp(-0.5 * (taps / sigma) ** 2)
    k1 /= k1.sum()
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    img = np.pad(images[0].double().numpy(), ((0, 0), (before, after), (before, after)), "reflect")
    ref = np.zeros((3, H, W))
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            ref += k1[dy] * k1[dx] * img[:, dy : dy + H, dx : dx + W]
    assert np.abs(out[0].double().numpy() - ref).max() < 1e-5


def test_brightness_max_value_clamps(images):
    out = A.RandomBrightness(p=1.0, scale_range=(2.0, 2.0), max_value=0.7)(images, key())
    torch.testing.assert_close(out, (images * 2).clamp(0, 0.7))


def test_normalize_device_and_dtype(images):
    norm = T.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD, device="cpu", dtype="float64")
    out = norm(images)
    mean = torch.tensor(T.IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(T.IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, (images.double() - mean) / std)


@pytest.mark.parametrize(
    ("mode", "fill"),
    [("zeros", "randn"), ("random_color_uniform", "uniform"), ("random_color_pixel", "randn")],
)
def test_erasing_modes(images, mode, fill):
    erase = A.RandomErasing(p=1.0, mode=mode, fill=fill, max_value=0.5)
    out, params = erase(images, key(), return_params=True)
    for i in range(B):
        top, left, h, w = (int(v) for v in params["box"][i])
        box = out[i, :, top : top + h, left : left + w]
        rest = out[i].clone()
        rest[:, top : top + h, left : left + w] = images[i, :, top : top + h, left : left + w]
        assert torch.equal(rest, images[i])  # only the box changes
        if mode == "zeros":
            assert float(box.abs().max()) == 0.0
        elif mode == "random_color_uniform":
            assert torch.equal(box, box[:, :1, :1].expand_as(box))
            assert float(box.min()) >= 0.0 and float(box.max()) < 0.5
    if mode == "random_color_pixel":
        noise = torch.cat(
            [
                out[i, :, t : t + h, le : le + w].flatten()
                for i, (t, le, h, w) in enumerate(params["box"].tolist())
            ]
        )
        assert float(noise.min()) < 0.0 and abs(float(noise.std()) - 1.0) < 0.2


def test_embed_fade_blends_with_the_background(images):
    embed = A.RandomEmbed(
        64, background="constant", fill=0.25, fade_radius=(0.2, 0.45), p_fade=1.0, seed=2
    )
    out = embed(images)
    top, left = (64 - H) // 2, (64 - W) // 2
    inner = out[:, :, top : top + H, left : left + W]
    # Opaque at the image center, the background at its corners (beyond the outer radius).
    cy, cx = H // 2, W // 2
    torch.testing.assert_close(inner[:, :, cy, cx], images[:, :, cy, cx])
    torch.testing.assert_close(inner[:, :, 0, 0], torch.full((B, 3), 0.25))
    # In between: alpha from the Gaussian falloff, alpha * x + (1 - alpha) * 0.25.
    side = min(H, W)
    r_in, r_out = 0.2 * side, 0.45 * side
    y, x = cy, cx + int(0.3 * side)
    r = math.hypot(y - (H - 1) / 2, x - (W - 1) / 2)
    alpha = math.exp(-0.5 * ((r - r_in) / ((r_out - r_in) / 3)) ** 2)
    torch.testing.assert_close(inner[:, :, y, x], alpha * images[:, :, y, x] + (1 - alpha) * 0.25)
    assert torch.equal(embed.apply_last(images), out)


def test_embed_coords_and_grayscale_noise(images):
    embed = A.RandomEmbed(64, coords=[(10, 12)], background="power_law", color_noise=False)
    out, params = embed(images, key(), return_params=True)
    assert int(params["left"][0]) == 10 - W // 2 and int(params["top"][0]) == 12 - H // 2
    torch.testing.assert_close(
        out[:, :, 40:, 50:], images.new_zeros(()).expand(B, 3, 24, 14), rtol=1, atol=1
    )
    corner = out[:, :, 50:, 50:]
    assert torch.equal(corner[:, 0], corner[:, 1]) and torch.equal(corner[:, 1], corner[:, 2])
    by_size = A.RandomEmbed(64, coords_dict={(H, W): [(32, 32)]})
    assert int(by_size.draw_params(images, key())["left"][0]) == 32 - W // 2
    with pytest.raises(KeyError, match="no coordinates"):
        A.RandomEmbed(64, coords_dict={(1, 1): [(0, 0)]})(images, key())


def test_multisample_and_random_apply_lists(images):
    copies = T.MultiSample([T.RandomHorizontalFlip(), T.RandomGrayscale()], 3, return_input=True)
    out = copies(images, key())
    assert isinstance(out, tuple) and len(out) == 4 and out[0] is images
    assert not torch.equal(out[1], out[2])
    apply = T.RandomApply([T.RandomHorizontalFlip(p=1.0)], p=1.0, seed=4)
    torch.testing.assert_close(apply(images), images.flip(-1))
    assert T.BatchAugment is A.BatchTransform


def test_lgn_arguments(images):
    lms = A.SRGBToLMS()(images)
    with pytest.warns(FutureWarning, match="sigma_c"):
        old = A.LMSToMagno(sigma_center=2.0)
    assert torch.equal(old(lms), A.LMSToMagno(sigma_c=2.0)(lms))
    lgn = T.RGBToLGN(parvo_sigma_c=1.0, nonlin=torch.abs, device="cpu")
    out = lgn(images)
    parvo = A.LMSToParvo(1.0, 5.0, nonlin=torch.abs)(lms)
    assert out.shape == (B, 5, H, W) and torch.equal(out[:, :2], parvo)
    assert torch.equal(parvo[:, 0], parvo[:, 1])  # abs(d) == abs(-d)
    norm = T.NormalizeLGN(device="cpu")(out)
    torch.testing.assert_close(norm, (out - 0.2) / 0.2)
