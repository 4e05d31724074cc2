"""slipstream.augment against torchvision.transforms.v2.functional, sample by sample.

Each transform runs with p=1 on a batch; its params are read back and every sample is
recomputed by torchvision with that sample's parameter. Tolerances (max abs difference,
images in 0..1): exact ops (flip, solarize, erase) bit-equal; arithmetic ops 1e-5
(grayscale, brightness, contrast, saturation, hue, blur: the same formulas, other
operation order); bilinear warps 1e-4 (rotate, zoom: the same sampling grid, computed
differently).
"""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

import slipstream.augment as A

B, H, W = 8, 24, 32
BILINEAR = TF.InterpolationMode.BILINEAR


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.rand(B, 3, H, W, generator=g)


@pytest.fixture
def key() -> A.BatchKey:
    return A.BatchKey(seed=3, epoch=1, sample_ids=torch.arange(100, 100 + B))


def per_sample(fn, images, values):
    return torch.stack([fn(images[i], float(values[i])) for i in range(images.shape[0])])


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_flip_exact(images, key):
    out, p = A.RandomHorizontalFlip(p=1.0)(images, key, return_params=True)
    assert torch.equal(out, TF.horizontal_flip(images))


def test_grayscale(images, key):
    out = A.RandomGrayscale(p=1.0)(images, key)
    assert max_diff(out, TF.rgb_to_grayscale(images, num_output_channels=3)) < 1e-6


def test_brightness(images, key):
    out, p = A.RandomBrightness(p=1.0, scale_range=(0.3, 1.8))(images, key, return_params=True)
    ref = per_sample(TF.adjust_brightness, images, p["factor"])
    assert max_diff(out, ref) < 1e-5


def test_contrast(images, key):
    out, p = A.RandomContrast(p=1.0, scale_range=(0.3, 1.8))(images, key, return_params=True)
    ref = per_sample(TF.adjust_contrast, images, p["factor"])
    assert max_diff(out, ref) < 1e-5


def test_color_jitter_saturation_and_hue(images, key):
    jitter = A.RandomColorJitter(p=1.0, value=0, contrast=0, saturation=0.8, hue=0.5)
    out, p = jitter(images, key, return_params=True)
    ref = per_sample(TF.adjust_saturation, images, p["saturation"])
    ref = per_sample(TF.adjust_hue, ref, p["hue"])
    assert max_diff(out, ref) < 1e-5


def test_color_jitter_all_components(images, key):
    jitter = A.RandomColorJitter(p=1.0, hue=0.1, saturation=0.2, value=0.4, contrast=0.4)
    out, p = jitter(images, key, return_params=True)
    ref = per_sample(TF.adjust_brightness, images, p["brightness"])
    ref = per_sample(TF.adjust_contrast, ref, p["contrast"])
    ref = per_sample(TF.adjust_saturation, ref, p["saturation"])
    ref = per_sample(TF.adjust_hue, ref, p["hue"])
    assert max_diff(out, ref) < 1e-5


def test_hsv_round_trip(images):
    from slipstream.augment.jitter import hsv_to_rgb, rgb_to_hsv

    assert max_diff(hsv_to_rgb(rgb_to_hsv(images)), images) < 1e-6


def test_gaussian_blur(images, key):
    blur = A.RandomGaussianBlur(p=1.0, kernel_size=9, sigma_range=(0.3, 3.0))
    out, p = blur(images, key, return_params=True)
    ref = torch.stack(
        [TF.gaussian_blur(images[i], [9, 9], [float(p["sigma"][i])] * 2) for i in range(B)]
    )
    assert max_diff(out, ref) < 1e-5


def test_gaussian_blur_against_kornia(images, key):
    kornia = pytest.importorskip("kornia")
    blur = A.RandomGaussianBlur(p=1.0, kernel_size=9, sigma_range=(0.3, 3.0))
    out, p = blur(images, key, return_params=True)
    sigma = p["sigma"].view(-1, 1).expand(-1, 2)
    ref = kornia.filters.gaussian_blur2d(images, (9, 9), sigma, border_type="reflect")
    assert max_diff(out, ref) < 1e-5


def test_solarize_exact(images, key):
    out = A.RandomSolarization(p=1.0, threshold=0.4)(images, key)
    assert torch.equal(out, TF.solarize(images, 0.4))


@pytest.mark.parametrize("value", [0.0, (0.1, 0.5, 0.9)])
def test_erasing_exact(images, key, value):
    erase = A.RandomErasing(p=1.0, value=value)
    out, p = erase(images, key, return_params=True)
    fill = torch.tensor(value if isinstance(value, tuple) else (value,)).view(-1, 1, 1)
    for i in range(B):
        top, left, h, w = (int(v) for v in p["box"][i])
        ref = TF.erase(images[i], top, left, h, w, fill.expand(3, h, w))
        assert torch.equal(out[i], ref)
    assert bool((p["box"][:, 2] > 0).all())


def test_rotate(images, key):
    rotate = A.RandomRotate(p=1.0, max_deg=170)
    out, p = rotate(images, key, return_params=True)
    ref = torch.stack(
        [TF.rotate(images[i], float(p["degrees"][i]), interpolation=BILINEAR) for i in range(B)]
    )
    assert max_diff(out, ref) < 1e-4


def torchvision_affine(images, degrees_clockwise, scales):
    return torch.stack(
        [
            TF.affine(
                images[i],
                angle=float(degrees_clockwise[i]),
                translate=[0, 0],
                scale=float(scales[i]),
                shear=[0.0, 0.0],
                interpolation=BILINEAR,
            )
            for i in range(images.shape[0])
        ]
    )


def test_zoom_about_center(images, key):
    zoom = A.RandomZoom(p=1.0, zoom=(0.5, 2.0), x=0.5, y=0.5)
    out, p = zoom(images, key, return_params=True)
    ref = torchvision_affine(images, torch.zeros(B), p["scale"])
    assert max_diff(out, ref) < 1e-4


def test_rotate_object_matches_torchvision_affine(images, key):
    # Object at the image center, left there: a rotation + scale about the center
    # (torchvision's affine angle is clockwise, rotate's counter-clockwise).
    rotate = A.RandomRotateObject(p=1.0, scale=(0.7, 1.6), dest_x=0.5, dest_y=0.5, pad_mode="zeros")
    out, p = rotate(images, key, return_params=True)
    ref = torchvision_affine(images, -p["degrees"], p["scale"])
    assert max_diff(out, ref) < 1e-4
