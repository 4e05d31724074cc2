"""The registry of decode engines: which engine serves which arguments, decided in one place.

| engine         | backend    | decode_device      | image formats  | output device |
| -------------- | ---------- | ------------------ | -------------- | ------------- |
| ``native``     | ``native`` | ``cpu``            | jpeg, yuv420   | any           |
| ``torch-yuv420`` | ``native`` | ``torch``, ``cuda`` | yuv420       | any (``cuda``: CUDA) |
| ``dali-cpu``   | ``dali``   | ``cpu``            | jpeg, yuv420   | any           |
| ``dali-mixed`` | ``dali``   | ``mixed``          | jpeg           | CUDA          |
| ``hybrid``     | ``dali``   | ``hybrid``         | jpeg           | CUDA          |
| ``hybrid-cpu`` | ``dali``   | ``hybrid``         | jpeg           | any           |

``decode_device=None`` picks the first engine of the backend, in the order above with
``dali-mixed`` first, that serves the format and device: nvJPEG for JPEG on a GPU,
slipstream's CPU operator otherwise. ``hybrid`` (the C++ kernel and nvJPEG splitting each
batch, :mod:`slipstream.decode.hybrid`) is only used when asked for: it is not measured
faster on a GPU yet; on a CPU device ``decode_device="hybrid"`` pairs the C++ kernel with
the DALI CPU operator (``hybrid-cpu``, bit-exact). Every other combination is rejected by
:func:`select_engine` with one message listing what is possible.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from slipstream.decode.errors import NoDecodeEngineError

if TYPE_CHECKING:
    from slipstream.decode.stage import DecodeStage, EngineOptions

__all__ = [
    "BACKENDS",
    "DECODE_DEVICES",
    "ENGINES",
    "EngineSpec",
    "default_backend",
    "select_engine",
]

BACKENDS = ("native", "dali")
DECODE_DEVICES = ("cpu", "mixed", "cuda", "torch", "hybrid")
DALI_EXTRA_HINT = "pip install 'slipstream[dali]'"


@dataclass(frozen=True)
class EngineSpec:
    """One decode engine: what it serves and where its class lives.

    Attributes:
        name: Registry name (``loader.engine``).
        backend: The ``backend=`` value that selects it.
        decode_devices: The ``decode_device=`` values that select it.
        formats: Image formats it reads.
        needs_cuda: Whether the output device must be a CUDA device (for ``decode_device``
            values in ``cuda_decode_devices``, or for any when that is empty).
        cuda_decode_devices: The decode devices of this engine that need CUDA.
        factory: ``"module:Class"`` of the engine, imported when selected.
    """

    name: str
    backend: str
    decode_devices: tuple[str, ...]
    formats: tuple[str, ...]
    cuda_decode_devices: tuple[str, ...]
    factory: str

    def serves(self, decode_device: str, image_format: str, device: torch.device) -> bool:
        """Whether this engine decodes ``image_format`` on ``decode_device`` for ``device``."""
        if decode_device not in self.decode_devices or image_format not in self.formats:
            return False
        return decode_device not in self.cuda_decode_devices or device.type == "cuda"

    def engine_class(self) -> Callable[[EngineOptions], DecodeStage]:
        """The engine's class (imports its module; DALI's only when a DALI engine is used).

        For engines other than ``native`` this is a factory that builds the native engine
        instead when an output is full-resolution (``DecodeOnly``, ``DecodeYUVFullRes``,
        ``DecodeYUVPlanes``): their per-sample sizes only go through the C++ kernel's
        own path (:mod:`slipstream.decode.full_resolution`), whatever the backend.
        """
        module, name = self.factory.split(":")
        try:
            engine = getattr(importlib.import_module(module), name)
        except ImportError as exc:
            if self.backend == "dali":
                raise ImportError(
                    f"backend='dali' needs NVIDIA DALI ({exc}); install it with `{DALI_EXTRA_HINT}`"
                ) from exc
            raise
        return engine if self.factory == _NATIVE else _full_resolution_on_native(engine)

    def describe(self) -> str:
        """One line of the engine table."""
        cuda = f" (CUDA output device for {'/'.join(self.cuda_decode_devices)})"
        return (
            f"{self.name}: backend={self.backend!r}, decode_device in "
            f"{list(self.decode_devices)}, image_format in {list(self.formats)}"
            + (cuda if self.cuda_decode_devices else "")
        )


def _full_resolution_on_native(engine: type) -> Callable[[EngineOptions], DecodeStage]:
    """``engine``, or the native engine when an output keeps full resolution."""

    def build(options: EngineOptions) -> DecodeStage:
        from slipstream.decode.full_resolution import ragged_form
        from slipstream.decode.native import NativeEngine

        if any(ragged_form(p) for p in options.pipelines.values()):
            return NativeEngine(options)
        return engine(options)

    build.__name__ = build.__qualname__ = engine.__name__
    return build


_DALI = "slipstream.dali.engine:DaliEngine"
_NATIVE = "slipstream.decode.native:NativeEngine"
_TORCH = "slipstream.decode.torch_engine:TorchYuv420Engine"
_HYBRID = "slipstream.decode.hybrid:HybridEngine"
ENGINES: tuple[EngineSpec, ...] = (
    EngineSpec("dali-mixed", "dali", ("mixed",), ("jpeg",), ("mixed",), _DALI),
    EngineSpec("dali-cpu", "dali", ("cpu",), ("jpeg", "yuv420"), (), _DALI),
    EngineSpec("native", "native", ("cpu",), ("jpeg", "yuv420"), (), _NATIVE),
    EngineSpec("torch-yuv420", "native", ("torch", "cuda"), ("yuv420",), ("cuda",), _TORCH),
    EngineSpec("hybrid", "dali", ("hybrid",), ("jpeg",), ("hybrid",), _HYBRID),
    EngineSpec("hybrid-cpu", "dali", ("hybrid",), ("jpeg",), (), _HYBRID),
)
"""Every engine, in the order ``decode_device=None`` prefers them."""
_ASKED_FOR_ONLY = ("torch-yuv420", "hybrid", "hybrid-cpu")


def default_backend() -> str:
    """``"dali"`` where NVIDIA DALI is installed, else ``"native"`` (checked without importing)."""
    try:
        found = importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        found = False
    return "dali" if found else "native"


def select_engine(
    backend: str | None, decode_device: str | None, image_format: str, device: torch.device
) -> tuple[EngineSpec, str]:
    """The engine for these arguments, and the decode device it runs with.

    Args:
        backend: ``"native"``, ``"dali"``, or None for :func:`default_backend`.
        decode_device: One of :data:`DECODE_DEVICES`, or None for the backend's default.
        image_format: What the decoders read (``"jpeg"``, ``"yuv420"``).
        device: The loader's output device.

    Returns:
        ``(engine, decode_device)``.

    Raises:
        NoDecodeEngineError: No engine serves the combination; the message lists them all.
    """
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise NoDecodeEngineError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if decode_device is not None and decode_device not in DECODE_DEVICES:
        raise NoDecodeEngineError(
            f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}"
        )
    for spec in ENGINES:
        if spec.backend != backend:
            continue
        candidates = spec.decode_devices if decode_device is None else (decode_device,)
        if decode_device is None and spec.cuda_decode_devices == spec.decode_devices:
            if device.type != "cuda":
                continue
        if decode_device is None and spec.name in _ASKED_FOR_ONLY:
            continue  # the torch decode and the (unmeasured) hybrid are asked for by name
        for candidate in candidates:
            if spec.serves(candidate, image_format, device):
                return spec, candidate
    table = "\n  ".join(spec.describe() for spec in ENGINES)
    raise NoDecodeEngineError(
        f"no decode engine for backend={backend!r}, decode_device={decode_device!r}, "
        f"image_format={image_format!r}, device={str(device)!r}. Engines:\n  {table}"
    )
