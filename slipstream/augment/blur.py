"""Per-sample Gaussian blur: separable grouped convolutions, one sigma per sample."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from slipstream.augment.base import Params, RandomTransform, check_range, per_sample
from slipstream.augment.keys import AugmentStream, BatchKey

__all__ = ["RandomGaussianBlur", "gaussian_kernels", "separable_filter"]


def gaussian_kernels(sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalized 1-D Gaussian kernels, ``[N, kernel_size]``, one per sigma (``[N]``).

    Taps at ``-(k-1)/2 .. (k-1)/2``, as torchvision's ``gaussian_blur``.
    """
    half = (kernel_size - 1) * 0.5
    taps = torch.linspace(-half, half, kernel_size, dtype=sigmas.dtype, device=sigmas.device)
    weights = torch.exp(-0.5 * (taps.view(1, -1) / sigmas.view(-1, 1)) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def separable_filter(batch: torch.Tensor, kernels: torch.Tensor, padding: str) -> torch.Tensor:
    """Filter rows then columns with a per-sample 1-D kernel (grouped convolutions).

    Args:
        batch: ``[B, C, H, W]``.
        kernels: ``[B, K]`` (one kernel per sample) or ``[1, K]`` (one for all). An even
            ``K`` pads ``K // 2 - 1`` before and ``K // 2`` after (the output keeps its size).
        padding: ``"reflect"`` or ``"zeros"``.

    Returns:
        The filtered batch, same shape.
    """
    b, c, h, w = batch.shape
    k = kernels.shape[1]
    before, after = (k - 1) // 2, k // 2
    weight = kernels.to(batch.dtype).expand(b, k).repeat_interleave(c, dim=0)
    x = batch.reshape(1, b * c, h, w)
    if padding not in ("reflect", "zeros"):
        raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
    mode = "reflect" if padding == "reflect" else "constant"
    x = F.pad(x, (before, after, before, after), mode=mode)
    x = F.conv2d(x, weight.view(b * c, 1, 1, k), groups=b * c)
    x = F.conv2d(x, weight.view(b * c, 1, k, 1), groups=b * c)
    return x.view(b, c, h, w)


class RandomGaussianBlur(RandomTransform):
    """Gaussian blur with a per-sample sigma (torchvision ``gaussian_blur``, reflect padding).

    Params: ``apply`` bool ``[B]``, ``sigma`` ``[B]``.

    Args:
        p: Probability per sample.
        kernel_size: Kernel size (smaller than twice the image side); odd sizes are
            centered as torchvision's, even ones (the original's default 6) reach one
            pixel further after than before.
        sigma_range: ``(low, high)`` of the sigma in pixels.
        num_sigmas: Sigma is one of ``num_sigmas`` evenly spaced values over
            ``sigma_range``, uniformly chosen (the original's kernel bank); None draws it
            uniformly from the continuous range.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
    """

    stream = AugmentStream.BLUR
    uniform_params = ("sigma",)

    def __init__(
        self,
        p: float = 0.5,
        kernel_size: int = 6,
        sigma_range: Sequence[float] = (0.1, 2.0),
        num_sigmas: int | None = 10,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the kernel size and sigma range."""
        super().__init__(p, seed, device)
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive integer, got {kernel_size}")
        if num_sigmas is not None and num_sigmas < 1:
            raise ValueError(f"num_sigmas must be a positive integer or None, got {num_sigmas}")
        self.kernel_size = int(kernel_size)
        self.sigma_range = check_range("sigma_range", sigma_range, positive=True)
        self.num_sigmas = None if num_sigmas is None else int(num_sigmas)

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Sigma per sample: from the bank of ``num_sigmas`` values, or continuous."""
        low, high = self.sigma_range
        if self.num_sigmas is None:
            sigma = low + (high - low) * draws[:, 0]
        else:
            bank = torch.linspace(low, high, self.num_sigmas, dtype=torch.float64)
            index = (draws[:, 0] * self.num_sigmas).long().clamp_(max=self.num_sigmas - 1)
            sigma = bank[index]
        return {"sigma": per_sample(sigma, batch)}

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Blur every sample."""
        kernels = gaussian_kernels(params["sigma"].float(), self.kernel_size)
        return separable_filter(batch, kernels, "reflect")
