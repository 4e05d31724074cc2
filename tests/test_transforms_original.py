"""The original slipstream's transform names, checked against independent computations.

Oracles and tolerances (max abs difference, images in 0..1):

* ``ToGrayscale``: bit-equal to ``torchvision.transforms.v2.functional.rgb_to_grayscale``
  (the same operation order), float and uint8; against the v1
  ``torchvision.transforms.functional.rgb_to_grayscale`` (other operation order) within
  1e-6 for float and at most 1 level for uint8 (both truncate; a sum one ulp either side of
  an integer truncates to neighbours).
* ``ColorJitter``: per sample against torchvision's ``adjust_brightness``,
  ``adjust_contrast``, ``adjust_saturation`` and ``adjust_hue`` with the drawn factors, in
  that fixed order, within 1e-5; against kornia's ``ColorJitter`` (``order=[0, 1, 2, 3]``,
  our factors as its params) within 1e-4 (measured 7e-5: its hue is in radians, through its
  own HSV).
* ``RGBToMagno``: against a float64 numpy computation of the original's definition
  (piecewise sRGB linearization, sRGB -> XYZ -> CAT02 LMS as two matrices, 2-D Gaussians of
  odd size ``int(6 sigma) + 1``, each convolved with zero padding, center minus surround,
  ReLU on / off) within 1e-6 (measured 2e-7: float32 FFT against float64 sums).
* Conversions: exact (shapes, dtypes, devices, memory formats, values).
* Mixup with ``switch_prob``: the CutMix fraction within a 5-sigma binomial bound over
  4,096 keyed samples; boxes and ``lam`` equal to a standalone ``CutMix``'s; exact replay.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF1
import torchvision.transforms.v2.functional as TF

import slipstream.augment as A
import slipstream.transforms as T

B, H, W = 8, 16, 20


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(11))


@pytest.fixture
def key() -> A.BatchKey:
    return A.BatchKey(seed=5, epoch=2, sample_ids=np.arange(300, 300 + B))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def per_sample(fn, images: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(images[i], float(values[i])) for i in range(images.shape[0])])


# --- ToGrayscale ---------------------------------------------------------------------


def test_grayscale_float_against_torchvision(images):
    for channels in (1, 3):
        out = T.ToGrayscale(channels)(images)
        assert out.shape == (B, channels, H, W) and out.dtype == images.dtype
        assert torch.equal(out, TF.rgb_to_grayscale(images, num_output_channels=channels))
        ref_v1 = TF1.rgb_to_grayscale(images, num_output_channels=channels)
        assert max_diff(out, ref_v1) < 1e-6
    single = T.ToGrayscale()(images[0])  # one [3, H, W] image
    assert torch.equal(single, TF.rgb_to_grayscale(images[0]))


def test_grayscale_uint8_against_torchvision():
    pixels = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8)
    out = T.ToGrayscale()(pixels)
    assert out.dtype == torch.uint8 and out.shape == (B, 1, H, W)
    assert torch.equal(out, TF.rgb_to_grayscale(pixels))
    assert max_diff(out, TF1.rgb_to_grayscale(pixels)) <= 1
    # Truncation, not rounding: below the float luma by less than one level.
    luma = (0.2989 * pixels[:, 0] + 0.587 * pixels[:, 1] + 0.114 * pixels[:, 2]).double()
    gap = luma.unsqueeze(1) - out.double()
    assert float(gap.min()) > -1e-3 and float(gap.max()) < 1.0 + 1e-3


def test_grayscale_is_fixed_and_checks_channels(images):
    state = torch.get_rng_state()
    T.ToGrayscale()(images)
    assert torch.equal(torch.get_rng_state(), state)  # no key drawn
    with pytest.raises(ValueError):
        T.ToGrayscale(2)
    with pytest.raises(ValueError):
        T.ToGrayscale()(torch.rand(2, 4, 5, 5))


# --- ColorJitter (batch-level coin, per-sample factors) -------------------------------


def jitter() -> T.ColorJitter:
    return T.ColorJitter(p=1.0, hue=0.3, saturation=0.6, value=0.5, contrast=0.5)


def test_color_jitter_against_torchvision(images, key):
    out, params = jitter()(images, key, return_params=True)
    assert bool(params["apply"].all())
    ref = per_sample(TF.adjust_brightness, images, params["brightness"])
    ref = per_sample(TF.adjust_contrast, ref, params["contrast"])
    ref = per_sample(TF.adjust_saturation, ref, params["saturation"])
    ref = per_sample(TF.adjust_hue, ref, params["hue"])
    assert max_diff(out, ref) < 1e-5
    # The factors spread over their ranges, one per sample.
    assert len(set(params["hue"].tolist())) == B
    assert float(params["hue"].abs().max()) <= 0.3
    assert 0.5 <= float(params["brightness"].min()) and float(params["brightness"].max()) <= 1.5


def test_color_jitter_against_kornia(images, key):
    kornia = pytest.importorskip("kornia")
    out, params = jitter()(images, key, return_params=True)
    reference = kornia.augmentation.ColorJitter(0.5, 0.5, 0.6, 0.3, p=1.0, order=[0, 1, 2, 3])
    kparams = reference.forward_parameters(images.shape)
    for name in ("brightness", "contrast", "saturation", "hue"):
        kparams[f"{name}_factor"] = params[name].float()
    assert max_diff(out, reference(images, params=kparams)) < 1e-4


def test_color_jitter_components_left_out(images, key):
    # Only saturation: the other components are not applied at all.
    only = T.ColorJitter(saturation=0.5)
    out, params = only(images, key, return_params=True)
    assert max_diff(out, per_sample(TF.adjust_saturation, images, params["saturation"])) < 1e-6
    assert torch.equal(T.ColorJitter()(images, key), images)  # all zero: identity


def test_color_jitter_replay_and_keying(images, key):
    cj = jitter()
    out, params = cj(images, key, return_params=True)
    assert torch.equal(cj(images, key), out)  # same key, same output
    assert torch.equal(cj.apply(images, params), out)  # replay from params
    other_epoch = cj.make_params(images, A.BatchKey(5, 3, key.sample_ids))
    assert not torch.equal(other_epoch["hue"], params["hue"])
    # Sample 303 in another batch (other neighbours, other position, other size) gets the
    # same factors and the same output.
    ids = np.array([303, 9, 77])
    batch = torch.stack([images[3], torch.rand(3, H, W), torch.rand(3, H, W)])
    out2, params2 = cj(batch, A.BatchKey(5, 2, ids), return_params=True)
    for name in ("brightness", "contrast", "saturation", "hue"):
        assert float(params2[name][0]) == float(params[name][3])
    assert torch.equal(out2[0], out[3])


def test_color_jitter_batch_coin():
    cj = T.ColorJitter(p=0.3, saturation=0.5)
    x = torch.rand(4, 3, 4, 4)
    applied = []
    for batch in range(2000):
        ids = np.arange(4 * batch, 4 * batch + 4)
        mask = cj.make_params(x, A.BatchKey(1, 0, ids))["apply"]
        assert bool(mask.all()) or not bool(mask.any())  # all or none
        applied.append(bool(mask[0]))
        # The coin is the smallest id's: the order inside the batch does not matter.
        shuffled = cj.make_params(x, A.BatchKey(1, 0, ids[::-1].copy()))["apply"]
        assert bool(shuffled[0]) == applied[-1]
    n, p = len(applied), 0.3
    assert abs(sum(applied) / n - p) < 5 * math.sqrt(p * (1 - p) / n)
    # A batch that is not applied passes unchanged.
    ids = next(np.arange(4 * b, 4 * b + 4) for b in range(2000) if not applied[b])
    assert torch.equal(cj(x, A.BatchKey(1, 0, ids)), x)


# --- RGBToMagno ----------------------------------------------------------------------


def _gaussian(sigma: float) -> np.ndarray:
    size = int(6 * sigma) + 1
    size = size if size % 2 else size + 1
    coords = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(coords[None, :] ** 2 + coords[:, None] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _convolve_zero_padded(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    half = kernel.shape[0] // 2
    padded = np.pad(plane, half)
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel)


def magno_numpy(rgb: np.ndarray, sigma_c: float, sigma_s: float) -> np.ndarray:
    """The original slipstream's RGBToMagno in float64 numpy, one image ``[3, H, W]``."""
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    to_xyz = np.array(
        [
            [0.412453, 0.357580, 0.180423],
            [0.212671, 0.715160, 0.072169],
            [0.019334, 0.119193, 0.950227],
        ]
    )
    to_lms = np.array(
        [[0.7328, 0.4296, -0.1624], [-0.7036, 1.6975, 0.0061], [0.003, 0.0136, 0.9834]]
    )
    lms = np.einsum("oc,chw->ohw", to_lms, np.einsum("oc,chw->ohw", to_xyz, linear))
    lum = lms[0] + lms[1]
    response = _convolve_zero_padded(lum, _gaussian(sigma_c)) - _convolve_zero_padded(
        lum, _gaussian(sigma_s)
    )
    return np.stack([np.maximum(response, 0), np.maximum(-response, 0)])


@pytest.mark.parametrize("sigmas", [(2.5, 5.0), (1.0, 3.0)])
def test_rgb_to_magno_against_numpy(images, sigmas):
    out = T.RGBToMagno(*sigmas)(images)
    assert out.shape == (B, 2, H, W) and out.dtype == images.dtype
    ref = np.stack([magno_numpy(img, *sigmas) for img in images.double().numpy()])
    assert float(np.abs(out.double().numpy() - ref).max()) < 1e-6
    assert float(out.amax()) > 1e-3  # not trivially zero
    chained = A.Compose([T.RGBToMagno()]).output_stand_in(images)
    assert chained.shape == (B, 2, H, W)


# --- conversions ---------------------------------------------------------------------


def test_to_torch_image_layouts_and_types():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8)
    expected = torch.from_numpy(hwc).permute(0, 3, 1, 2).double() / 255
    for source in (hwc, torch.from_numpy(hwc)):
        out = T.ToTorchImage("cpu")(source)
        assert out.shape == (2, 3, H, W) and out.dtype == torch.float32
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert max_diff(out, expected) < 1e-7
    chw = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))
    assert torch.equal(T.ToTorchImage("cpu")(chw), T.ToTorchImage("cpu")(hwc))
    single = T.ToTorchImage("cpu")(hwc[0])  # one HWC image
    assert single.shape == (3, H, W) and torch.equal(single, T.ToTorchImage("cpu")(hwc)[0])
    half = T.ToTorchImage("cpu", dtype="float16")(hwc)
    assert half.dtype == torch.float16 and torch.equal(half, (expected.float()).half())
    int16 = T.ToTorchImage("cpu")(np.full((1, 3, 2, 2), 32767, dtype=np.int16))
    assert torch.equal(int16, torch.ones(1, 3, 2, 2))
    readonly = hwc.copy()
    readonly.flags.writeable = False
    assert torch.equal(T.ToTorchImage("cpu")(readonly), T.ToTorchImage("cpu")(hwc))
    meta = T.ToTorchImage("meta")(hwc)
    assert meta.device.type == "meta" and meta.shape == (2, 3, H, W)
    with pytest.raises(ValueError):
        T.ToTorchImage("cpu", dtype="uint8")
    with pytest.raises(ValueError):
        T.ToTorchImage("cpu", dtype="float_of_mystery")


def test_channels_first_and_last_are_views():
    bhwc = torch.rand(2, H, W, 3)
    first = T.ToChannelsFirst()(bhwc)
    assert first.shape == (2, 3, H, W) and first.data_ptr() == bhwc.data_ptr()
    assert first.is_contiguous(memory_format=torch.channels_last)
    last = T.ToChannelsLast()(first)
    assert torch.equal(last, bhwc) and last.is_contiguous()
    assert T.ToChannelsFirst()(bhwc[0]).shape == (3, H, W)
    assert T.ToChannelsLast()(first[0]).shape == (H, W, 3)
    with pytest.raises(ValueError):
        T.ToChannelsLast()(torch.rand(3, 4))
    assert A.Compose([T.ToChannelsFirst()]).output_stand_in(bhwc).shape == (2, 3, H, W)


def test_float_div_float_device_numpy():
    pixels = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    as_float = T.ToFloat()(pixels)
    assert as_float.dtype == torch.float32 and torch.equal(as_float, pixels.float())
    assert T.ToFloat(255)(pixels).max() > 1  # the original's ToFloat does not scale
    divided = T.ToFloatDiv(255)(pixels)
    assert divided.dtype == torch.float32 and torch.equal(divided, pixels.float() / 255)
    half = T.ToFloatDiv(255, torch.float16)(pixels)
    assert half.dtype == torch.float16 and torch.equal(half, (pixels.float() / 255).half())
    double = T.ToFloatDiv(255, "float64")(pixels)
    assert torch.equal(double, pixels.double() / 255)
    both = T.ToFloatDiv(2.0)([pixels, pixels[:1]])
    assert isinstance(both, list) and torch.equal(both[1], pixels[:1].float() / 2)
    channels_last = pixels.contiguous(memory_format=torch.channels_last)
    kept = T.ToFloatDiv(255)(channels_last)
    assert kept.is_contiguous(memory_format=torch.channels_last)  # layout preserved
    moved = T.ToDevice("meta")([pixels, divided])
    assert [m.device.type for m in moved] == ["meta", "meta"]
    assert moved[1].dtype == torch.float32 and moved[1].shape == divided.shape
    assert T.ToDevice("cpu")(pixels) is pixels  # already there: no copy
    array = T.ToNumpy()(divided.requires_grad_())
    assert isinstance(array, np.ndarray) and array.dtype == np.float32
    assert np.array_equal(array, divided.detach().numpy())
    with pytest.raises(TypeError):
        T.ToDevice("cpu")("not a tensor")
    with pytest.raises(ValueError):
        T.ToFloatDiv(0)


def test_compose_of_conversions_and_jitter_replays(key):
    pixels = np.random.default_rng(1).integers(0, 256, (B, H, W, 3), dtype=np.uint8)
    pipeline = T.Compose(
        [T.ToTorchImage("cpu"), T.ColorJitter(saturation=0.5, hue=0.2), T.ToGrayscale(3)]
    )
    out, params = pipeline(pixels, key, return_params=True)
    assert out.shape == (B, 3, H, W)
    assert torch.equal(pipeline.apply(pixels, params), out)
    assert torch.equal(pipeline(pixels, key), out)


# --- Mixup with switch_prob -----------------------------------------------------------


def mix(switch_prob: float = 0.5, p: float = 1.0) -> T.Mixup:
    return T.Mixup(
        mixup_alpha=0.8, num_classes=10, prob=p, cutmix_alpha=1.0, switch_prob=switch_prob,
        label_smoothing=0.1,
    )  # fmt: skip


def test_mixup_switch_fraction_matches_switch_prob():
    x = torch.zeros(64, 3, 8, 8)
    for switch_prob, p in ((0.5, 1.0), (0.2, 0.7)):
        cut = mixed = 0
        for batch in range(64):  # 4,096 keyed samples
            key = A.BatchKey(0, 0, np.arange(64 * batch, 64 * batch + 64))
            params = mix(switch_prob, p).make_params(x, key)
            assert not bool((params["cutmix"] & ~params["apply"]).any())
            cut += int(params["cutmix"].sum())
            mixed += int(params["apply"].sum())
        n = 64 * 64
        assert abs(mixed / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
        q = switch_prob
        assert abs(cut / mixed - q) < 5 * math.sqrt(q * (1 - q) / mixed)


def test_mixup_switch_images_targets_and_replay(images, key):
    labels = torch.arange(B) % 10
    mixer = mix()
    out, targets, params = mixer(images, labels, key, return_params=True)
    cut = params["cutmix"]
    assert 0 < int(cut.sum()) < B  # both kinds in this batch (fixed key)
    assert torch.allclose(targets.sum(1), torch.ones(B), atol=1e-6)
    partner = params["partner"]
    lam = params["lam"]
    for i in range(B):
        top, left, h, w = (int(v) for v in params["box"][i])
        if cut[i]:
            inside = torch.zeros(H, W, dtype=torch.bool)
            inside[top : top + h, left : left + w] = True
            assert torch.equal(out[i][:, inside], images[partner[i]][:, inside])
            assert torch.equal(out[i][:, ~inside], images[i][:, ~inside])
            assert abs(float(lam[i]) - (1 - h * w / (H * W))) < 1e-6
        else:
            assert h * w == 0
            blend = lam[i] * images[i] + (1 - lam[i]) * images[partner[i]]
            assert max_diff(out[i], blend) < 1e-6
    # Targets are the original's mixup_target with these lam values.
    assert max_diff(targets, T.mixup_target(labels, 10, lam, smoothing=0.1)) < 1e-6
    # Replay: same key, and from params.
    again = mixer(images, labels, key)
    assert torch.equal(again[0], out) and torch.equal(again[1], targets)
    replay = mixer.apply(images, labels, params)
    assert torch.equal(replay[0], out) and torch.equal(replay[1], targets)


def test_mixup_switch_draws_match_plain_mixup_and_cutmix(images, key):
    labels = torch.arange(B)
    params = mix().make_params(images, key)
    plain_mixup = T.Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=10).make_params(
        images, key
    )
    plain_cutmix = T.CutMix(alpha=1.0, num_classes=10).make_params(images, key)
    cut = params["cutmix"]
    assert torch.equal(params["lam"][~cut], plain_mixup["lam"][~cut])
    assert torch.equal(params["lam"][cut], plain_cutmix["lam"][cut])
    assert torch.equal(params["box"][cut], plain_cutmix["box"][cut])
    # switch_prob 0: exactly plain mixup; 1: every sample uses CutMix.
    never = mix(switch_prob=0.0)(images, labels, key)
    plain = T.Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=10, label_smoothing=0.1)
    assert torch.equal(never[0], plain(images, labels, key)[0])
    assert bool(mix(switch_prob=1.0).make_params(images, key)["cutmix"].all())
    # Without cutmix_alpha the params are the plain ones (no cutmix keys).
    assert "cutmix" not in plain_mixup
    with pytest.raises(ValueError):
        T.Mixup(mixup_alpha=0.8, num_classes=10, cutmix_alpha=1.0, switch_prob=1.5)


def test_mixup_switch_keyed_per_sample(images, key):
    params = mix().make_params(images, key)
    ids = np.array([key.sample_ids[2], 5000, 5001, key.sample_ids[6]])
    sub = mix().make_params(images[:4], A.BatchKey(key.seed, key.epoch, ids))
    for here, there in ((0, 2), (3, 6)):
        assert bool(sub["cutmix"][here]) == bool(params["cutmix"][there])
        assert float(sub["lam"][here]) == float(params["lam"][there])


def test_one_hot_and_mixup_target():
    labels = torch.tensor([0, 2, 1, 2])
    assert torch.equal(T.one_hot(labels, 3), torch.eye(3)[labels])
    smoothed = T.one_hot(labels, 3, on_value=0.9, off_value=0.05)
    assert torch.allclose(smoothed.sum(1), torch.full((4,), 1.0))
    target = T.mixup_target(labels, 3, torch.tensor([1.0, 0.25, 0.5, 0.0]))
    expected = torch.tensor([[1, 0, 0], [0, 0.75, 0.25], [0, 0.5, 0.5], [1, 0, 0]])
    assert torch.allclose(target, expected)


# --- exports -----------------------------------------------------------------------------


def test_original_import_paths_name_one_class_each():
    import slipstream

    for name in T.__all__:
        assert getattr(T, name) is not None
    for name in ("Compose", "Normalize", "ToDevice", "ToTorchImage", "IMAGENET_MEAN"):
        assert getattr(slipstream, name) is getattr(T, name) is getattr(A, name)
    assert slipstream.RandomEmbed is A.RandomEmbed
    assert T.ToGrayscaleTorch is T.ToGrayscale and T.RandomColorJitterHSV is A.RandomColorJitter


def test_new_transforms_pickle(images, key):
    import pickle

    for transform in (jitter(), T.RGBToMagno(1.0, 3.0), T.ToTorchImage("cpu", "float16")):
        clone = pickle.loads(pickle.dumps(transform))
        assert torch.equal(clone(images, key), transform(images, key))
    mixer = pickle.loads(pickle.dumps(mix()))
    assert torch.equal(
        mixer(images, torch.arange(B), key)[0], mix()(images, torch.arange(B), key)[0]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(images, key):
    gpu = images.cuda()
    out, params = jitter()(gpu, key, return_params=True)
    assert max_diff(out.cpu(), jitter()(images, key)) < 1e-5
    assert params["apply"].device.type == "cuda"
    labels = torch.arange(B)
    mixed, targets = mix()(gpu, labels.cuda(), key)
    ref_mixed, ref_targets = mix()(images, labels, key)
    assert max_diff(mixed.cpu(), ref_mixed) < 1e-6 and max_diff(targets.cpu(), ref_targets) < 1e-6
    pixels = torch.randint(0, 256, (2, H, W, 3), dtype=torch.uint8)
    assert torch.equal(T.ToTorchImage("cuda")(pixels).cpu(), T.ToTorchImage("cpu")(pixels))
    assert max_diff(T.RGBToMagno()(gpu).cpu(), T.RGBToMagno()(images)) < 1e-5


@pytest.mark.parametrize(
    "build",
    [
        lambda: T.ColorJitter(hue=0.7),
        lambda: T.ColorJitter(p=1.5),
        lambda: T.ColorJitter(value=-0.1),
        lambda: T.RGBToMagno(magno_sigma_c=0.0),
        lambda: T.Mixup(mixup_alpha=0.8, num_classes=10, cutmix_alpha=-1.0),
    ],
)
def test_invalid_arguments_raise(build):
    with pytest.raises(ValueError):
        build()


def test_mixup_takes_the_originals_arguments_and_batch_dicts():
    """``Mixup(mixup_alpha, cutmix_alpha, prob, ..., seed)`` called on a batch dict."""
    images = torch.rand(8, 3, 16, 16)
    labels = torch.arange(8) % 4
    mixup = T.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=4, seed=5)
    batch = mixup({"image": images.clone(), "label": labels.clone(), "index": torch.arange(8)})
    key = A.BatchKey(5, 0, np.arange(8))  # the first key-less call: seed 5, call 0
    want_images, want_targets = T.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=4)(
        images, labels, key
    )
    assert torch.equal(batch["image"], want_images) and torch.equal(batch["label"], want_targets)
    assert batch["label"].shape == (8, 4)
    torch.testing.assert_close(batch["label"].sum(1), torch.ones(8))
    second = mixup({"image": images.clone(), "label": labels.clone()})
    assert not torch.equal(second["image"], batch["image"])  # the next call draws anew
    with pytest.warns(FutureWarning, match="mixup_alpha"):
        renamed = T.Mixup(alpha=0.8, cutmix_alpha=0.0, num_classes=4)
    assert renamed.mixup_alpha == 0.8
    cutmix_only = T.Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=4)
    params = cutmix_only.make_params(images, key)
    assert bool(params["cutmix"][params["apply"]].all())
    for bad in ({"cutmix_minmax": (0.2, 0.8)}, {"correct_lam": False}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            T.Mixup(num_classes=4, **bad)
