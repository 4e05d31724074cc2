"""Mixup and CutMix on a whole batch: images and labels.

Each sample ``b`` is mixed with a partner, the sample at the mirrored batch position
``B - 1 - b`` (timm's convention), with its own keyed ``lam ~ Beta(alpha, alpha)``. The
partner depends on the batch composition (that is what mixing is); ``lam`` and, for
CutMix, the box do not. Targets are ``lam * onehot(y) + (1 - lam) * onehot(y[partner])``
after optional label smoothing.

:class:`Mixup` with ``cutmix_alpha > 0`` chooses per sample between the two (the
original slipstream's and timm's ``switch_prob``): the choice is a keyed draw of its own
stream, and a sample that switches to CutMix gets the box and ``lam`` a
``CutMix(cutmix_alpha)`` would give it under the same key.

Call: ``images, targets = mix(images, labels, key)`` (integer labels ``[B]`` on the
images' device); replay with ``mix.apply(images, labels, params)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slipstream.augment.base import check_probability, to_batch_device
from slipstream.augment.keys import AugmentStream, BatchKey
from slipstream.augment.masks import box_masks
from slipstream.renamed import renamed_argument

__all__ = ["CutMix", "Mixup", "cutmix_boxes", "keyed_beta", "mixup_target", "one_hot"]

_GAMMA_ATTEMPTS = 8
_DRAWS_PER_GAMMA = 3 * _GAMMA_ATTEMPTS + 1


def _keyed_gamma(u: torch.Tensor, shape: float) -> torch.Tensor:
    """Gamma(shape, 1) from uniforms ``[B, 3 * 8 + 1]`` (Marsaglia-Tsang, first accepted).

    Eight candidates per sample are evaluated at once; the chance that all are rejected
    is below 1e-9, and such a sample gets the mean.
    """
    boost = shape < 1.0
    a = shape + 1.0 if boost else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    cand = u[:, : 3 * _GAMMA_ATTEMPTS].view(-1, _GAMMA_ATTEMPTS, 3)
    u1 = 1.0 - cand[..., 0]  # (0, 1]
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * cand[..., 1])
    v = (1.0 + c * z) ** 3
    accept_u = 1.0 - cand[..., 2]
    ok = (v > 0) & (
        torch.log(accept_u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300))
    )
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)
    value = (d * v).gather(1, first).squeeze(1)
    value = torch.where(ok.any(dim=1), value, torch.full_like(value, a))
    if boost:
        value = value * (1.0 - u[:, -1]) ** (1.0 / shape)
    return value


def keyed_beta(draws: torch.Tensor, alpha: float) -> torch.Tensor:
    """Beta(alpha, alpha) per sample from ``[B, 2 * 25]`` uniforms (float64, host)."""
    g1 = _keyed_gamma(draws[:, :_DRAWS_PER_GAMMA], alpha)
    g2 = _keyed_gamma(draws[:, _DRAWS_PER_GAMMA : 2 * _DRAWS_PER_GAMMA], alpha)
    return g1 / (g1 + g2)


def cutmix_boxes(
    lam: torch.Tensor, centers: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix boxes from ``lam`` and center draws, and the ``lam`` the clipped boxes give.

    The box has sides ``floor(side * sqrt(1 - lam) / 2)`` either side of a center
    ``floor(u * side)``, clipped to the image (timm's ``rand_bbox``).

    Args:
        lam: Drawn ``lam`` per sample, float64 ``[B]`` (host).
        centers: Uniforms ``[B, 2]`` for the center row and column.
        height: Image height.
        width: Image width.

    Returns:
        ``(boxes, lam)``: int64 ``[B, 4]`` = ``(top, left, height, width)`` and float64
        ``[B]`` = 1 - the box's area fraction.
    """
    cut = torch.sqrt(1.0 - lam)
    cy, cx = torch.floor(centers[:, 0] * height), torch.floor(centers[:, 1] * width)
    half_h, half_w = torch.floor(height * cut / 2), torch.floor(width * cut / 2)
    top, bottom = (cy - half_h).clamp(0, height), (cy + half_h).clamp(0, height)
    left, right = (cx - half_w).clamp(0, width), (cx + half_w).clamp(0, width)
    boxes = torch.stack((top, left, bottom - top, right - left), dim=1).long()
    return boxes, 1.0 - (boxes[:, 2] * boxes[:, 3]).double() / (height * width)


def one_hot(
    target: torch.Tensor, num_classes: int, on_value: float = 1.0, off_value: float = 0.0
) -> torch.Tensor:
    """Integer labels ``[B]`` to float32 ``[B, num_classes]`` with ``on_value``/``off_value``."""
    onehot = F.one_hot(target.long().view(-1), num_classes).to(torch.float32)
    return onehot * (on_value - off_value) + off_value


def mixup_target(
    target: torch.Tensor, num_classes: int, lam: torch.Tensor | float, smoothing: float = 0.0
) -> torch.Tensor:
    """Targets mixed with the reversed batch's (the original slipstream's / timm's helper).

    ``lam * onehot(y) + (1 - lam) * onehot(y.flip(0))``, smoothed with
    ``on = 1 - smoothing + smoothing / num_classes`` and ``off = smoothing / num_classes``.

    Args:
        target: Integer labels ``[B]``.
        num_classes: Number of classes.
        lam: Per-sample ``lam`` ``[B]`` (or one float).
        smoothing: Label smoothing in ``[0, 1)``.

    Returns:
        float32 ``[B, num_classes]``; each row sums to 1.
    """
    off = smoothing / num_classes
    y1 = one_hot(target, num_classes, 1.0 - smoothing + off, off)
    y2 = one_hot(target.flip(0), num_classes, 1.0 - smoothing + off, off)
    lam = torch.as_tensor(lam, dtype=torch.float32, device=y1.device).reshape(-1, 1)
    return y1 * lam + y2 * (1.0 - lam)


class _Mix:
    """Shared parts of Mixup and CutMix: lam draws, partners, targets."""

    stream: int = 0
    extra_draws = 0

    def __init__(
        self, alpha: float, num_classes: int, p: float = 1.0, label_smoothing: float = 0.0
    ) -> None:
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)
        self.p = check_probability(p)
        self.label_smoothing = float(label_smoothing)

    def _draws(self, images: torch.Tensor, key: BatchKey) -> tuple[torch.Tensor, dict[str, Any]]:
        draws = key.uniform(self.stream, 1 + 2 * _DRAWS_PER_GAMMA + self.extra_draws)
        apply = draws[:, 0] < self.p
        lam = torch.where(apply, keyed_beta(draws[:, 1:], self.alpha), torch.ones(()).double())
        b = images.shape[0]
        params = {
            "apply": to_batch_device(apply, images),
            "lam": lam,
            "partner": torch.arange(b - 1, -1, -1, device=images.device),
        }
        return draws[:, 1 + 2 * _DRAWS_PER_GAMMA :], params

    def targets(
        self, labels: torch.Tensor, params: dict[str, Any], dtype: torch.dtype
    ) -> torch.Tensor:
        """Mixed (and smoothed) one-hot targets ``[B, num_classes]``."""
        off = self.label_smoothing / self.num_classes
        onehot = F.one_hot(labels.long(), self.num_classes).to(dtype)
        onehot = onehot * (1.0 - self.label_smoothing) + off
        lam = params["lam"].view(-1, 1)
        return lam * onehot + (1.0 - lam) * onehot[params["partner"]]

    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        key: BatchKey | None = None,
        *,
        return_params: bool = False,
    ) -> Any:
        """Draw params and mix: returns ``(images, targets)`` (and params)."""
        if key is None:
            key = BatchKey.from_torch_rng(images.shape[0])
        params = self.make_params(images, key)
        out = self.apply(images, labels, params)
        return (*out, params) if return_params else out

    def make_params(self, images: torch.Tensor, key: BatchKey) -> dict[str, Any]:
        """Draw per-sample params (see the subclasses)."""
        raise NotImplementedError

    def apply(
        self, images: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix with given params (see the subclasses)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Mixup(_Mix):
    """Per-sample Mixup / CutMix, with the original slipstream's (and timm's) arguments.

    Each sample of a batch is mixed with probability ``prob`` with its partner in the
    reversed batch: by mixup (``x = lam * x + (1 - lam) * x[partner]``, ``lam ~
    Beta(mixup_alpha, mixup_alpha)``) or, with probability ``switch_prob`` when both are
    on, by CutMix (a box of the partner pasted in, ``lam ~ Beta(cutmix_alpha,
    cutmix_alpha)``, then the area the clipped box keeps). Every draw is keyed by ``(seed,
    epoch, sample id)`` (:class:`~slipstream.augment.BatchKey`).

    Two ways to call it:

    * ``mixup(images, labels, key)`` -> ``(images, targets)``;
    * ``mixup(batch)`` on a batch dict, as the original (e.g. in
      ``SlipstreamLoader(after_batch_transforms=[Mixup(...)])``): mixes
      ``batch[image_key]`` and replaces ``batch[label_key]`` with the soft targets
      ``[B, num_classes]``. Called this way outside the loader, the draws are keyed by
      ``seed`` and a call counter (torch's RNG when ``seed`` is None); the loader keys
      them by its seed, the epoch and ``batch["index"]``.

    Params: ``apply`` bool ``[B]``, ``lam`` ``[B]`` (1 where not applied), ``partner``
    int64 ``[B]``; with CutMix also ``cutmix`` bool ``[B]`` (the samples that use it) and
    ``box`` int64 ``[B, 4]`` = ``(top, left, height, width)`` (empty for the others).

    Args:
        mixup_alpha: Beta parameter of mixup; 0 turns mixup off (CutMix only).
        cutmix_alpha: Beta parameter of CutMix; 0 turns CutMix off (mixup only).
        cutmix_minmax: Not supported (the original's box-size bounds): must be None.
        prob: Probability per sample that it is mixed at all.
        switch_prob: Probability per mixed sample of CutMix instead of mixup (when both
            are on).
        correct_lam: CutMix's ``lam`` is the area the clipped box keeps (always True
            here; False is an error).
        label_smoothing: Label smoothing of the targets.
        num_classes: Number of classes of the integer labels.
        image_key: The batch dict's image entry (dict calls).
        label_key: The batch dict's integer label entry (dict calls).
        seed: Seed of the draws (replaces the loader's); None: the loader's seed.
        alpha: This package's earlier name of ``mixup_alpha`` (warns).
        p: This package's earlier name of ``prob`` (warns).
    """

    stream = AugmentStream.MIXUP

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        cutmix_minmax: tuple[float, float] | None = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        correct_lam: bool = True,
        label_smoothing: float = 0.0,
        num_classes: int = 1000,
        image_key: str = "image",
        label_key: str = "label",
        seed: int | None = None,
        *,
        alpha: float | None = None,
        p: float | None = None,
    ) -> None:
        """Store the parameters."""
        if alpha is not None:
            mixup_alpha = renamed_argument("alpha", "mixup_alpha", alpha)
        if p is not None:
            prob = renamed_argument("p", "prob", p)
        if cutmix_minmax is not None:
            raise ValueError(
                "Mixup(cutmix_minmax=...) is not supported: give cutmix_alpha (box sizes "
                "from Beta(cutmix_alpha, cutmix_alpha), as timm without minmax)"
            )
        if not correct_lam:
            raise ValueError(
                "Mixup(correct_lam=False) is not supported: CutMix's lam is always the area "
                "the clipped box keeps"
            )
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha}, {cutmix_alpha}"
            )
        if mixup_alpha == 0 and cutmix_alpha == 0:
            raise ValueError("Mixup needs mixup_alpha > 0 or cutmix_alpha > 0")
        # Mixup off: every mixed sample takes CutMix (lam drawn, then replaced by the box's).
        super().__init__(mixup_alpha or 1.0, num_classes, prob, label_smoothing)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.switch_prob = check_probability(switch_prob) if mixup_alpha > 0 else 1.0
        self.prob, self.correct_lam = self.p, True
        self.image_key, self.label_key = image_key, label_key
        self.seed = None if seed is None else int(seed)
        self._calls = 0

    def __call__(
        self,
        images: torch.Tensor | dict[str, Any],
        labels: torch.Tensor | None = None,
        key: BatchKey | None = None,
        *,
        return_params: bool = False,
    ) -> Any:
        """Mix ``(images, labels)`` -> ``(images, targets)``, or a batch dict -> the dict."""
        if isinstance(images, dict):
            batch = images
            x, y = batch[self.image_key], batch[self.label_key]
            if key is None:
                key = self._call_key(x.shape[0])
            batch[self.image_key], batch[self.label_key] = super().__call__(x, y, key)
            return batch
        if labels is None:
            raise TypeError("Mixup needs (images, labels[, key]) or a batch dict")
        if key is None and self.seed is not None:
            key = self._call_key(images.shape[0])
        elif key is not None and self.seed is not None:
            key = BatchKey(self.seed, key.epoch, key.sample_ids, key.view, key.path)
        return super().__call__(images, labels, key, return_params=return_params)

    def _call_key(self, batch_size: int) -> BatchKey:
        """A key for a call without one: ``seed`` and the call count, else torch's RNG."""
        if self.seed is None:
            return BatchKey.from_torch_rng(batch_size)
        self._calls += 1
        return BatchKey(self.seed, self._calls - 1, np.arange(batch_size, dtype=np.int64))

    def make_params(self, images: torch.Tensor, key: BatchKey) -> dict[str, Any]:
        """Draw ``lam`` per sample (and, with CutMix, the switch and the boxes)."""
        _, params = self._draws(images, key)
        if self.cutmix_alpha > 0:
            self._draw_cutmix(images, key, params)
        params["lam"] = to_batch_device(params["lam"], images, images.dtype)
        return params

    def _draw_cutmix(self, images: torch.Tensor, key: BatchKey, params: dict[str, Any]) -> None:
        """Choose CutMix samples and their boxes; ``params["lam"]`` is still on the host."""
        applied = key.uniform(self.stream, 1)[:, 0] < self.p  # params["apply"], on the host
        use_cutmix = applied & (key.uniform(AugmentStream.MIX_SWITCH, 1)[:, 0] < self.switch_prob)
        draws = key.uniform(AugmentStream.CUTMIX, 1 + 2 * _DRAWS_PER_GAMMA + 2)
        cut_lam = keyed_beta(draws[:, 1 : 1 + 2 * _DRAWS_PER_GAMMA], self.cutmix_alpha)
        _, _, h, w = images.shape
        boxes, cut_lam = cutmix_boxes(cut_lam, draws[:, 1 + 2 * _DRAWS_PER_GAMMA :], h, w)
        boxes = torch.where(use_cutmix.view(-1, 1), boxes, torch.zeros_like(boxes))
        params["lam"] = torch.where(use_cutmix, cut_lam, params["lam"])
        params["cutmix"] = to_batch_device(use_cutmix, images)
        params["box"] = to_batch_device(boxes, images)

    def apply(
        self, images: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix images and targets."""
        partner = images[params["partner"]]
        lam = params["lam"].view(-1, 1, 1, 1)
        if "cutmix" not in params:
            mixed = images * lam + partner * (1.0 - lam)
            return mixed, self.targets(labels, params, images.dtype)
        # CutMix samples blend with weight 1 (their own pixels exactly), then get the box.
        lam = torch.where(params["cutmix"].view(-1, 1, 1, 1), torch.ones_like(lam), lam)
        blended = images * lam + partner * (1.0 - lam)
        _, _, h, w = images.shape
        mixed = torch.where(box_masks(params["box"], h, w), partner, blended)
        return mixed, self.targets(labels, params, images.dtype)


class CutMix(_Mix):
    """Paste a box of the partner image; ``lam`` = the area fraction kept.

    The box has area fraction ``1 - lam`` (``lam ~ Beta(alpha, alpha)``), a uniform
    center, and is clipped to the image; ``lam`` is then recomputed from the clipped box.
    Params: ``apply``, ``lam`` ``[B]``, ``partner`` ``[B]``, ``box`` int64 ``[B, 4]`` =
    ``(top, left, height, width)``. Arguments as :class:`Mixup`.
    """

    stream = AugmentStream.CUTMIX
    extra_draws = 2

    def make_params(self, images: torch.Tensor, key: BatchKey) -> dict[str, Any]:
        """Draw ``lam`` and a box per sample."""
        draws, params = self._draws(images, key)
        _, _, h, w = images.shape
        box, lam = cutmix_boxes(params["lam"], draws, h, w)
        params["lam"] = to_batch_device(lam, images, images.dtype)
        params["box"] = to_batch_device(box, images)
        return params

    def apply(
        self, images: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Paste the boxes and mix the targets."""
        _, _, h, w = images.shape
        mask = box_masks(params["box"], h, w)
        mixed = torch.where(mask, images[params["partner"]], images)
        return mixed, self.targets(labels, params, images.dtype)
