"""The contract every decode engine implements, and what it hands the loader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from slipstream.pipelines.spec import ImagePipeline
    from slipstream.prefetch.prefetcher import EpochStream

__all__ = ["DecodeStage", "DecodedBatch", "EngineOptions", "HostPixels", "SampleFailure"]


@dataclass(frozen=True)
class EngineOptions:
    """What every decode engine is built from (each reads the options it needs).

    Attributes:
        pipelines: Output name -> its pipeline (output size, normalization, dtype).
        batch_size: Largest batch.
        device: The loader's output device.
        num_threads: Decode threads.
        depth: Decoded batches an engine may keep ready ahead of the consumer.
        decode_device: The decode device the registry resolved.
        image_format: What the items are (``"jpeg"``, ``"yuv420"``).
    """

    pipelines: dict[str, ImagePipeline]
    batch_size: int
    device: torch.device
    num_threads: int
    depth: int
    decode_device: str
    image_format: str


@dataclass(frozen=True)
class SampleFailure:
    """One sample an engine could not decode (its outputs hold the fill: zero pixels).

    Attributes:
        position: Row of the batch.
        field: The image field.
        code: The kernel's status code (``slipstream.native`` ``STATUS_*``).
        message: What went wrong, as the kernel says it.
    """

    position: int
    field: str
    code: int
    message: str


class HostPixels(Protocol):
    """Host buffers a batch's images view: the loader fences their reuse after a GPU copy."""

    copy_done: torch.cuda.Event | None


@dataclass
class DecodedBatch:
    """What a decode engine hands the loader for one batch.

    Attributes:
        sample_ids: int64 ``[n]`` sample ids, in batch order (a copy).
        images: Output name -> decoded ``[n, H, W, 3]`` tensor (host or device; uint8, or
            already normalized when ``normalized``).
        failures: Samples that could not be decoded (their pixels are zero).
        normalized: The engine already applied the pipeline's normalization and dtype.
        host: The host buffers ``images`` view (the loader records its GPU copy fence
            there before they are reused), or None when the engine owns the memory.
    """

    sample_ids: np.ndarray
    images: dict[str, torch.Tensor]
    failures: list[SampleFailure] = field(default_factory=list)
    normalized: bool = False
    host: HostPixels | None = None


class DecodeStage(Protocol):
    """A decode engine: turns an epoch's :class:`EncodedBatch` stream into pixels.

    Built as ``Engine(options: EngineOptions)``.

    Attributes:
        name: The engine's registry name.
        slots_in_flight: Batches of the stream it may hold unreleased at once (the
            Prefetcher sizes its ring with it).
    """

    name: str
    slots_in_flight: int

    def batches(self, stream: EpochStream) -> Iterator[DecodedBatch]:
        """Decode the stream's batches, in order, releasing each once its bytes are read.

        Per-sample failures are reported in :attr:`DecodedBatch.failures`, never raised.
        Closing the generator early (a ``break``) must leave every batch of the stream
        released or abandoned.
        """
        ...
