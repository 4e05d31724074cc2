"""Color-space transforms of a model of the early visual system: sRGB -> LMS -> LGN.

* :class:`SRGBToLMS`: linearize sRGB (IEC 61966-2-1), then CIE XYZ, then CAT02 LMS.
* :class:`LMSToParvo`, :class:`LMSToMagno`, :class:`LMSToKonio`: opponent channels from
  LMS through difference-of-Gaussians (center minus surround, zero padding, kernel size
  the odd number at or above ``6 * sigma + 1``) and a ReLU, as the original slipstream:
  parvo ``[relu(L - M), relu(M - L)]`` (2 channels), magno ``[relu(L + M), relu(-(L + M))]``
  (2), konio ``relu(S - (L + M))`` (1), each term DoG-filtered.
* :class:`RGBToMagno`: the two magno channels from sRGB (the original's ``RGBToMagno``).
* :class:`RGBToLGN`: all five channels from sRGB; :class:`NormalizeLGN` normalizes them.

None of these is random: their params are empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from slipstream.augment.base import (
    BatchTransform,
    FixedTransform,
    Params,
    stand_in,
    to_batch_device,
)
from slipstream.augment.blur import gaussian_kernels
from slipstream.augment.convert import Normalize
from slipstream.renamed import renamed_argument

__all__ = [
    "LMSToKonio",
    "LMSToMagno",
    "LMSToParvo",
    "NormalizeLGN",
    "RGBToLGN",
    "RGBToMagno",
    "SRGBToLMS",
    "srgb_to_lms",
]

_LINEAR_RGB_TO_XYZ = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_XYZ_TO_CAT02_LMS = torch.tensor(
    [[0.7328, 0.4296, -0.1624], [-0.7036, 1.6975, 0.0061], [0.0030, 0.0136, 0.9834]],
    dtype=torch.float64,
)
_LINEAR_RGB_TO_LMS = _XYZ_TO_CAT02_LMS @ _LINEAR_RGB_TO_XYZ


def srgb_to_lms(batch: torch.Tensor) -> torch.Tensor:
    """Convert sRGB ``[B, 3, H, W]`` in ``0..1`` to CAT02 LMS."""
    linear = torch.where(batch > 0.04045, ((batch + 0.055) / 1.055) ** 2.4, batch / 12.92)
    matrix = to_batch_device(_LINEAR_RGB_TO_LMS, batch, batch.dtype)
    return torch.einsum("oc,bchw->bohw", matrix, linear)


def _dog_kernel_size(sigma: float) -> int:
    size = int(6 * sigma) + 1
    return size if size % 2 == 1 else size + 1


def dog_kernel(sigma_center: float, sigma_surround: float) -> torch.Tensor:
    """The 2-D difference-of-Gaussians kernel ``[K, K]`` (float64, K odd), center minus surround.

    Each Gaussian is normalized over its own support (``_dog_kernel_size``), as the
    original slipstream's 2-D kernels.
    """
    gaussians = []
    for sigma in (sigma_center, sigma_surround):
        taps = gaussian_kernels(torch.tensor([sigma], dtype=torch.float64), _dog_kernel_size(sigma))
        gaussians.append(taps[0])
    size = max(g.numel() for g in gaussians)
    planes = []
    for g in gaussians:
        margin = (size - g.numel()) // 2
        plane = torch.zeros(size, size, dtype=torch.float64)
        plane[margin : margin + g.numel(), margin : margin + g.numel()] = torch.outer(g, g)
        planes.append(plane)
    return planes[0] - planes[1]


def filter_zero_padded(channels: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter ``[B, C, H, W]`` with a symmetric ``[K, K]`` kernel, zero padding, via FFT.

    The input is zero-padded by ``K - 1`` so the circular FFT product is the linear
    convolution; the centered ``H x W`` window is returned.
    """
    _, _, h, w = channels.shape
    k = kernel.shape[0]
    half = k // 2
    size = (h + k - 1, w + k - 1)
    padded_kernel = torch.zeros(size, dtype=torch.float32)
    padded_kernel[:k, :k] = kernel
    spectrum = torch.fft.rfft2(to_batch_device(padded_kernel, channels))
    response = torch.fft.irfft2(torch.fft.rfft2(channels.float(), s=size) * spectrum, s=size)
    return response[..., half : half + h, half : half + w].to(channels.dtype)


class _DifferenceOfGaussians(BatchTransform):
    """Center-surround filtering with fixed sigmas (zero padding).

    Args:
        sigma_c: Center Gaussian sigma in pixels (default: the class's).
        sigma_s: Surround Gaussian sigma in pixels (default: the class's).
        nonlin: The rectifying nonlinearity (default ``torch.relu``).
        device: Accepted for the original's signature (kernels follow the batch).
        sigma_center: Old name of ``sigma_c`` (FutureWarning).
        sigma_surround: Old name of ``sigma_s`` (FutureWarning).
    """

    out_channels = 1
    default_sigmas = (1.0, 5.0)

    def __init__(
        self,
        sigma_c: float | None = None,
        sigma_s: float | None = None,
        nonlin: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
        *,
        sigma_center: float | None = None,
        sigma_surround: float | None = None,
    ) -> None:
        sigma_c = renamed_argument("sigma_center", "sigma_c", sigma_center, sigma_c)
        sigma_s = renamed_argument("sigma_surround", "sigma_s", sigma_surround, sigma_s)
        sigma_c = self.default_sigmas[0] if sigma_c is None else sigma_c
        sigma_s = self.default_sigmas[1] if sigma_s is None else sigma_s
        if sigma_c <= 0 or sigma_s <= 0:
            raise ValueError(f"sigmas must be positive, got {sigma_c}, {sigma_s}")
        self.sigma_center = float(sigma_c)
        self.sigma_surround = float(sigma_s)
        self.nonlin = torch.relu if nonlin is None else nonlin
        self.set_seed_and_device(None, device)

    def dog(self, channels: torch.Tensor) -> torch.Tensor:
        """Center minus surround response of ``[B, C, H, W]`` (one FFT filter)."""
        return filter_zero_padded(channels, dog_kernel(self.sigma_center, self.sigma_surround))

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Stand-in with this transform's channel count."""
        shape = (batch.shape[0], self.out_channels, *batch.shape[2:])
        return stand_in(shape, batch.dtype, batch.device)


class SRGBToLMS(BatchTransform):
    """sRGB to CAT02 LMS cone responses (3 channels)."""

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Convert."""
        return srgb_to_lms(batch)


class LMSToParvo(_DifferenceOfGaussians):
    """Parvocellular red-green opponent channels from LMS: ``[B, 2, H, W]``.

    Arguments ``sigma_center`` and ``sigma_surround`` (pixels) default to 1.5 and
    5.0.
    """

    out_channels = 2
    default_sigmas = (1.5, 5.0)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """``[relu(DoG(L) - DoG(M)), relu(DoG(M) - DoG(L))]`` (one DoG: it is linear)."""
        difference = self.dog(batch[:, 0:1] - batch[:, 1:2])
        return torch.cat((self.nonlin(difference), self.nonlin(-difference)), dim=1)


class LMSToMagno(_DifferenceOfGaussians):
    """Magnocellular luminance on/off channels from LMS: ``[B, 2, H, W]``.

    Arguments ``sigma_center`` and ``sigma_surround`` (pixels) default to 2.5 and
    5.0.
    """

    out_channels = 2
    default_sigmas = (2.5, 5.0)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """``[relu(DoG(L + M)), relu(-DoG(L + M))]``."""
        response = self.dog(batch[:, 0:1] + batch[:, 1:2])
        return torch.cat((self.nonlin(response), self.nonlin(-response)), dim=1)


class LMSToKonio(_DifferenceOfGaussians):
    """Koniocellular blue-yellow opponent channel from LMS: ``[B, 1, H, W]``.

    Arguments ``sigma_center`` and ``sigma_surround`` (pixels) default to 2.5 and
    6.5.
    """

    out_channels = 1
    default_sigmas = (2.5, 6.5)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """``relu(DoG(S) - DoG(L + M))`` (one DoG: it is linear)."""
        return self.nonlin(self.dog(batch[:, 2:3] - batch[:, 0:1] - batch[:, 1:2]))


class RGBToLGN(BatchTransform):
    """sRGB to the five LGN channels: parvo (2), magno (2), konio (1).

    Args:
        parvo_sigma_c: Parvo center sigma (pixels).
        parvo_sigma_s: Parvo surround sigma.
        magno_sigma_c: Magno center sigma.
        magno_sigma_s: Magno surround sigma.
        konio_sigma_c: Konio center sigma.
        konio_sigma_s: Konio surround sigma.
        nonlin: The rectifying nonlinearity of every stage (default ``torch.relu``).
        device: Accepted for the original's signature (kernels follow the batch).
        parvo: A ready parvocellular stage (replaces the parvo sigmas).
        magno: A ready magnocellular stage.
        konio: A ready koniocellular stage.
    """

    def __init__(
        self,
        parvo_sigma_c: float = 1.5,
        parvo_sigma_s: float = 5.0,
        magno_sigma_c: float = 2.5,
        magno_sigma_s: float = 5.0,
        konio_sigma_c: float = 2.5,
        konio_sigma_s: float = 6.5,
        nonlin: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
        *,
        parvo: LMSToParvo | None = None,
        magno: LMSToMagno | None = None,
        konio: LMSToKonio | None = None,
    ) -> None:
        """Store the stages."""
        self.parvo = parvo or LMSToParvo(parvo_sigma_c, parvo_sigma_s, nonlin, device)
        self.magno = magno or LMSToMagno(magno_sigma_c, magno_sigma_s, nonlin, device)
        self.konio = konio or LMSToKonio(konio_sigma_c, konio_sigma_s, nonlin, device)
        self.set_seed_and_device(None, device)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Five-channel stand-in."""
        return stand_in((batch.shape[0], 5, *batch.shape[2:]), batch.dtype, batch.device)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Convert to LMS once, then run the three stages."""
        lms = srgb_to_lms(batch)
        stages = (self.parvo, self.magno, self.konio)
        return torch.cat([stage.apply(lms, {}) for stage in stages], dim=1)


class RGBToMagno(FixedTransform):
    """sRGB ``[B, 3, H, W]`` in ``0..1`` to the two magno channels ``[B, 2, H, W]``.

    ``srgb_to_lms`` then :class:`LMSToMagno`: ``[relu(DoG(L + M)), relu(-DoG(L + M))]``.

    Args:
        magno_sigma_c: Center Gaussian sigma in pixels.
        magno_sigma_s: Surround Gaussian sigma in pixels.
        nonlin: The rectifying nonlinearity (default ``torch.relu``).
        device: Accepted for the original's signature (kernels follow the batch).
    """

    def __init__(
        self,
        magno_sigma_c: float = 2.5,
        magno_sigma_s: float = 5.0,
        nonlin: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Build the magno stage."""
        self.magno = LMSToMagno(magno_sigma_c, magno_sigma_s, nonlin, device)
        self.set_seed_and_device(None, device)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Two-channel stand-in."""
        return stand_in((batch.shape[0], 2, *batch.shape[2:]), batch.dtype, batch.device)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Convert to LMS, then the magno stage."""
        return self.magno.apply(srgb_to_lms(batch), {})


class NormalizeLGN(Normalize):
    """:class:`~slipstream.augment.convert.Normalize` for the five LGN channels.

    Args:
        mean: Per-channel means (the original slipstream's defaults).
        std: Per-channel standard deviations.
        inplace: As :class:`~slipstream.augment.convert.Normalize`.
        dtype: As :class:`~slipstream.augment.convert.Normalize`.
        device: As :class:`~slipstream.augment.convert.Normalize`.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.2, 0.2, 0.2, 0.2, 0.2),
        std: Sequence[float] = (0.2, 0.2, 0.2, 0.2, 0.2),
        inplace: bool = True,
        dtype: torch.dtype | str = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the statistics."""
        super().__init__(mean, std, inplace, dtype, device)
