"""Mixup and CutMix on a whole batch: images and labels.

Each sample ``b`` is mixed with a partner, the sample at the mirrored batch position
``B - 1 - b`` (timm's convention), with its own keyed ``lam ~ Beta(alpha, alpha)``. The
partner depends on the batch composition (that is what mixing is); ``lam`` and, for
CutMix, the box do not. Targets are ``lam * onehot(y) + (1 - lam) * onehot(y[partner])``
after optional label smoothing.

Call: ``images, targets = mix(images, labels, key)`` (integer labels ``[B]`` on the
images' device); replay with ``mix.apply(images, labels, params)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from slipstream.augment.base import check_probability, to_batch_device
from slipstream.augment.keys import AugmentStream, BatchKey
from slipstream.augment.masks import box_masks

__all__ = ["CutMix", "Mixup", "keyed_beta"]

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
    """``x = lam * x + (1 - lam) * x[partner]``, per-sample ``lam ~ Beta(alpha, alpha)``.

    Params: ``apply`` bool ``[B]``, ``lam`` ``[B]`` (1 where not applied), ``partner``
    int64 ``[B]``.

    Args:
        alpha: Beta distribution parameter.
        num_classes: Number of classes of the integer labels.
        p: Probability per sample.
        label_smoothing: Label smoothing of the targets.
    """

    stream = AugmentStream.MIXUP

    def make_params(self, images: torch.Tensor, key: BatchKey) -> dict[str, Any]:
        """Draw ``lam`` per sample."""
        _, params = self._draws(images, key)
        params["lam"] = to_batch_device(params["lam"], images, images.dtype)
        return params

    def apply(
        self, images: torch.Tensor, labels: torch.Tensor, params: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix images and targets."""
        lam = params["lam"].view(-1, 1, 1, 1)
        mixed = images * lam + images[params["partner"]] * (1.0 - lam)
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
        cut = torch.sqrt(1.0 - params["lam"])
        cy, cx = torch.floor(draws[:, 0] * h), torch.floor(draws[:, 1] * w)
        half_h, half_w = torch.floor(h * cut / 2), torch.floor(w * cut / 2)
        top, bottom = (cy - half_h).clamp(0, h), (cy + half_h).clamp(0, h)
        left, right = (cx - half_w).clamp(0, w), (cx + half_w).clamp(0, w)
        box = torch.stack((top, left, bottom - top, right - left), dim=1).long()
        lam = 1.0 - (box[:, 2] * box[:, 3]).double() / (h * w)
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
