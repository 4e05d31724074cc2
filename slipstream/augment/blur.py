"""Per-sample Gaussian blur: separable grouped convolutions, one sigma per sample."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from slipstream.augment.base import Params, RandomTransform, check_range
from slipstream.augment.keys import AugmentStream

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
        kernels: ``[B, K]`` (one kernel per sample) or ``[1, K]`` (one for all), K odd.
        padding: ``"reflect"`` or ``"zeros"``.

    Returns:
        The filtered batch, same shape.
    """
    b, c, h, w = batch.shape
    k = kernels.shape[1]
    half = k // 2
    weight = kernels.to(batch.dtype).expand(b, k).repeat_interleave(c, dim=0)
    x = batch.reshape(1, b * c, h, w)
    if padding == "reflect":
        x = F.pad(x, (half, half, half, half), mode="reflect")
        pad = 0
    elif padding == "zeros":
        pad = half
    else:
        raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
    x = F.conv2d(x, weight.view(b * c, 1, 1, k), groups=b * c, padding=(0, pad))
    x = F.conv2d(x, weight.view(b * c, 1, k, 1), groups=b * c, padding=(pad, 0))
    return x.view(b, c, h, w)


class RandomGaussianBlur(RandomTransform):
    """Gaussian blur with a per-sample sigma (torchvision ``gaussian_blur``, reflect padding).

    Params: ``apply`` bool ``[B]``, ``sigma`` ``[B]``.

    Args:
        p: Probability per sample.
        kernel_size: Odd kernel size (smaller than twice the image side).
        sigma_range: ``(low, high)`` of the uniform sigma in pixels.
    """

    stream = AugmentStream.BLUR
    uniform_params = ("sigma",)

    def __init__(
        self, p: float = 0.5, kernel_size: int = 23, sigma_range: Sequence[float] = (0.1, 2.0)
    ) -> None:
        """Store the kernel size and sigma range."""
        super().__init__(p)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.sigma_range = check_range("sigma_range", sigma_range, positive=True)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Blur every sample."""
        kernels = gaussian_kernels(params["sigma"].float(), self.kernel_size)
        return separable_filter(batch, kernels, "reflect")
