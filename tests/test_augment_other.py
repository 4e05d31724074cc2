"""slipstream.augment transforms without a torchvision counterpart, checked by their math.

Oracles: float64 numpy formulas (sRGB -> LMS, YIQ matrices), pixel bookkeeping for the
exact ops (embed, patch shuffle, circular mask, CutMix: bit-equal), the moments of
Beta(alpha, alpha) for the keyed mixup draws, and identity parameter values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import slipstream.augment as A
from slipstream.augment.jitter import yiq_color_matrices
from slipstream.augment.mixing import keyed_beta

B, H, W = 8, 24, 32


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def key() -> A.BatchKey:
    return A.BatchKey(seed=1, epoch=0, sample_ids=torch.arange(B) * 7)


def test_to_float_image_from_loader_layouts():
    pixels = torch.randint(0, 256, (B, H, W, 3), dtype=torch.uint8)
    channels_last = pixels.permute(0, 3, 1, 2)  # the loader's [B,3,H,W] channels-last view
    out = A.ToFloatImage()(channels_last)
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert torch.equal(out, channels_last.float() / 255)
    assert torch.equal(A.ToFloatImage(channels_last_input=True)(pixels), out)
    assert A.ToFloatImage(dtype=torch.float16)(channels_last).dtype == torch.float16


def test_normalize(images):
    out = A.Normalize()(images)
    mean = torch.tensor(A.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(A.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(out, (images - mean) / std, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        A.NormalizeLGN()(images)


def test_srgb_to_lms_against_float64_formula(images):
    x = images.double().numpy()
    linear = np.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz_from_rgb = np.array(
        [
            [0.412453, 0.357580, 0.180423],
            [0.212671, 0.715160, 0.072169],
            [0.019334, 0.119193, 0.950227],
        ]
    )
    lms_from_xyz = np.array(
        [[0.7328, 0.4296, -0.1624], [-0.7036, 1.6975, 0.0061], [0.0030, 0.0136, 0.9834]]
    )
    ref = np.einsum("oc,bchw->bohw", lms_from_xyz @ xyz_from_rgb, linear)
    assert np.abs(A.SRGBToLMS()(images).numpy() - ref).max() < 1e-5


def test_lgn_channels(images):
    lgn = A.RGBToLGN()(images)
    assert lgn.shape == (B, 5, H, W) and float(lgn.min()) >= 0.0
    # On/off pairs are never both active.
    assert float((lgn[:, 0] * lgn[:, 1]).abs().max()) == 0.0
    assert float((lgn[:, 2] * lgn[:, 3]).abs().max()) == 0.0
    # A uniform image has no center-surround response away from the (zero-padded) border.
    flat = A.RGBToLGN()(torch.full((1, 3, 64, 64), 0.5))
    assert float(flat[..., 24:40, 24:40].abs().max()) < 1e-5
    lms = A.SRGBToLMS()(images)
    parts = [A.LMSToParvo()(lms), A.LMSToMagno()(lms), A.LMSToKonio()(lms)]
    assert torch.equal(torch.cat(parts, dim=1), lgn)


def test_fft_difference_of_gaussians_matches_separable_convolution():
    from slipstream.augment.blur import gaussian_kernels, separable_filter
    from slipstream.augment.colorspace import dog_kernel, filter_zero_padded

    x = torch.rand(3, 2, 37, 45, generator=torch.Generator().manual_seed(4))
    responses = []
    for sigma, size in ((1.5, 11), (5.0, 31)):
        kernel = gaussian_kernels(torch.tensor([sigma]), size)
        responses.append(separable_filter(x, kernel, "zeros"))
    fft = filter_zero_padded(x, dog_kernel(1.5, 5.0))
    assert float((fft - (responses[0] - responses[1])).abs().max()) < 1e-5


def test_yiq_neutral_params_are_identity(images, key):
    jitter = A.RandomColorJitterYIQ(p=1.0, hue=0, saturation=0, value=0, brightness=0, contrast=0)
    assert float((jitter(images, key) - images).abs().max()) < 1e-5


def test_yiq_matrices_against_float64():
    hue, sat, val, bri, con = (
        torch.tensor([v], dtype=torch.float64) for v in (30, 0.7, 1.1, 0.9, 1.2)
    )
    matrices, offsets = yiq_color_matrices(hue, sat, val, bri, con)
    t = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    yiq = np.array([[1.1, 0, 0], [0, 0.7 * c, 0.7 * s], [0, -0.7 * s, 0.7 * c]])
    ref = 0.9 * 1.2 * np.linalg.inv(t) @ yiq @ t
    assert np.abs(matrices[0].numpy() - ref).max() < 1e-12
    assert abs(float(offsets[0]) - (0.5 - 0.6) * 0.9) < 1e-12


def test_yiq_zero_saturation_gives_gray(images, key):
    jitter = A.RandomColorJitterYIQ(p=1.0, saturation=(0, 0))
    out = jitter(images, key)
    luma = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    # 5e-3: the classic RGB->YIQ coefficients' I and Q rows sum to +-0.001, not 0, so
    # the inverse maps pure luma to a slightly tinted gray.
    assert float((out - luma.clamp(0, 1)).abs().max()) < 5e-3


@pytest.mark.parametrize("background", ["zeros", "constant", "uniform", "power_law"])
def test_embed_pastes_pixels_exactly(images, key, background):
    fill = (0.485, 0.456, 0.406) if background == "constant" else None
    embed = A.RandomEmbed((40, 50), (0.0, 1.0), (0.0, 1.0), background=background, fill=fill)
    out, params = embed(images, key, return_params=True)
    assert out.shape == (B, 3, 40, 50)
    for i in range(B):
        top, left = int(params["top"][i]), int(params["left"][i])
        assert torch.equal(out[i, :, top : top + H, left : left + W], images[i])
        canvas = out[i].clone()
        canvas[:, top : top + H, left : left + W] = -1
        rest = canvas[canvas >= 0]
        assert float(rest.min()) >= 0.0 and float(rest.max()) <= 1.0
        if background == "zeros":
            assert float(rest.abs().max()) == 0.0
    assert int(params["top"].min()) >= 0 and int(params["top"].max()) <= 40 - H
    with pytest.raises(ValueError, match="smaller"):
        A.RandomEmbed(16)(images, key)


def test_power_law_spectrum_slope():
    from slipstream.augment.canvas import noise_background

    seeds = torch.arange(4, dtype=torch.int64)
    noise = noise_background(seeds, torch.tensor([0.0, 0.0, 2.0, 2.0]), (1, 64, 64), "power_law")
    power = torch.fft.rfft2(noise - noise.mean(dim=(2, 3), keepdim=True)).abs() ** 2
    low, high = (
        power[..., 1:4, 1:4].mean(dim=(1, 2, 3)),
        power[..., 20:30, 20:30].mean(dim=(1, 2, 3)),
    )
    assert torch.all(low[2:] / high[2:] > 50) and torch.all(low[:2] / high[:2] < 5)


def test_background_blend(images, key):
    blend = A.RandomBackgroundBlend(p=1.0, background="constant", fill=(0.5, 0.5, 0.5))
    out, params = blend(images, key, return_params=True)
    w = params["weight"].view(-1, 1, 1, 1)
    assert torch.allclose(out, images * (1 - w) + 0.5 * w, atol=1e-6)


def test_patch_shuffle_moves_whole_patches(key):
    images = torch.rand(B, 3, 26, 34)  # 2 rows / 2 columns beyond the 4x4 grid stay put
    shuffle = A.RandomPatchShuffle(p=1.0, grid=4)
    out, params = shuffle(images, key, return_params=True)
    for i in range(B):
        perm = params["permutation"][i]
        assert sorted(perm.tolist()) == list(range(16))
        for dst in range(16):
            src = int(perm[dst])
            dy, dx, sy, sx = dst // 4 * 6, dst % 4 * 8, src // 4 * 6, src % 4 * 8
            assert torch.equal(
                out[i, :, dy : dy + 6, dx : dx + 8], images[i, :, sy : sy + 6, sx : sx + 8]
            )
    assert torch.equal(out[:, :, 24:], images[:, :, 24:])
    assert torch.equal(out[:, :, :, 32:], images[:, :, :, 32:])


def test_circular_mask(images):
    out = A.CircularMask(radius=1.0, fill=0.25)(images)
    assert torch.equal(out[:, :, H // 2, W // 2], images[:, :, H // 2, W // 2])
    assert torch.equal(out[:, :, 0, 0], torch.full((B, 3), 0.25))
    assert torch.equal(out[:, :, H // 2, 0], torch.full((B, 3), 0.25))  # outside: 12 < 15.5


def test_optical_distortion():
    ramp = torch.linspace(0, 1, W).view(1, 1, 1, W).expand(2, 3, H, W).contiguous()
    assert float((A.FixedOpticalDistortion(strength=0.0)(ramp) - ramp).abs().max()) < 1e-5
    barrel = A.FixedOpticalDistortion(strength=0.3)(ramp)
    # The center row's left half samples further left than the identity.
    assert float(barrel[0, 0, H // 2, W // 4]) < float(ramp[0, 0, H // 2, W // 4])


def test_keyed_beta_moments():
    ids = np.arange(20000)
    for alpha in (0.4, 1.0, 2.0):
        draws = A.BatchKey(0, 0, ids).uniform(1234, 50)
        lam = keyed_beta(draws, alpha)
        assert float(lam.min()) >= 0 and float(lam.max()) <= 1
        assert abs(float(lam.mean()) - 0.5) < 0.01
        assert abs(float(lam.var()) - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_mixup(images, key):
    labels = torch.randint(0, 10, (B,))
    mixup = A.Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=10, label_smoothing=0.1)
    mixed, targets, params = mixup(images, labels, key, return_params=True)
    lam = params["lam"].view(-1, 1, 1, 1)
    partner = params["partner"]
    assert torch.equal(partner, torch.arange(B - 1, -1, -1))
    assert torch.allclose(mixed, lam * images + (1 - lam) * images[partner], atol=1e-6)
    assert torch.allclose(targets.sum(1), torch.ones(B), atol=1e-6)
    assert torch.equal(mixup.apply(images, labels, params)[0], mixed)
    none = A.Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=10, prob=0.0)(images, labels, key)
    assert torch.equal(none[0], images) and torch.equal(none[1].argmax(1), labels)


def test_cutmix(images, key):
    labels = torch.arange(B)
    cutmix = A.CutMix(alpha=1.0, num_classes=B)
    mixed, targets, params = cutmix(images, labels, key, return_params=True)
    partner = params["partner"]
    for i in range(B):
        top, left, h, w = (int(v) for v in params["box"][i])
        box = (slice(None), slice(top, top + h), slice(left, left + w))
        assert torch.equal(mixed[i][box], images[partner[i]][box])
        kept = (mixed[i] == images[i]).all(0).double().mean()
        if partner[i] != i:
            assert abs(float(params["lam"][i]) - float(kept)) < 1e-3
        assert abs(float(targets[i, i]) - float(params["lam"][i])) < 1e-6 or partner[i] == i
    assert torch.equal(cutmix.apply(images, labels, params)[0], mixed)


@pytest.mark.parametrize(
    "build",
    [
        lambda: A.RandomRotate(p=1.5),
        lambda: A.RandomZoom(zoom=(0.0, 1.0)),
        lambda: A.RandomBrightness(scale_range=(1.2, 0.8)),
        lambda: A.RandomGaussianBlur(kernel_size=0),
        lambda: A.RandomErasing(value="noise"),
        lambda: A.RandomColorJitter(hue=0.7),
        lambda: A.RandomEmbed(64, background="plaid"),
        lambda: A.Normalize(mean=(0.5,), std=(0.0,)),
        lambda: A.Mixup(mixup_alpha=0.0, cutmix_alpha=0.0, num_classes=10),
    ],
)
def test_invalid_arguments_raise(build):
    with pytest.raises(ValueError):
        build()
