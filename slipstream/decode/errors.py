"""Errors of the decode stage, shared by every engine."""

from __future__ import annotations

from slipstream.errors import SlipstreamError

__all__ = [
    "CORRUPT_STATUS",
    "BatchDecodeError",
    "NoDecodeEngineError",
    "SampleCorruptError",
    "SampleDecodeError",
    "Yuv420WindowError",
]

CORRUPT_STATUS = -1
"""``SampleFailure.code`` of a sample whose stored bytes failed their checksum."""


class SampleDecodeError(SlipstreamError, RuntimeError):
    """Samples of a batch could not be decoded; the message names each one and its source.

    Attributes:
        failures: ``(sample_id, description, message)`` for every failed sample, where the
            description names its source (the file path when the dataset stores one).
    """

    def __init__(self, field: str, failures: list[tuple[int, str, str]]) -> None:
        """Build the message from the failures."""
        lines = [f"sample {sid} ({desc}): {msg}" for sid, desc, msg in failures]
        super().__init__(f"could not decode field {field!r}: " + "; ".join(lines))
        self.failures = list(failures)

    @property
    def sample_ids(self) -> list[int]:
        """The ids of the samples that failed."""
        return [sid for sid, _, _ in self.failures]


class SampleCorruptError(SampleDecodeError):
    """Stored bytes of samples differ from their checksum (a damaged cache or ``.beton``).

    Raised (under ``on_error="raise"``) like a decode error, naming each sample, its source
    and the damaged file; ``on_error="skip"`` masks them out instead.
    """

    def __init__(self, field: str, failures: list[tuple[int, str, str]]) -> None:
        """Build the message from the failures."""
        super().__init__(field, failures)
        lines = [f"sample {sid} ({desc}): {msg}" for sid, desc, msg in failures]
        self.args = (f"corrupt stored data in field {field!r}: " + "; ".join(lines),)


class NoDecodeEngineError(SlipstreamError, ValueError):
    """No decode engine serves the requested (backend, decode_device, format, device)."""


class BatchDecodeError(SlipstreamError, RuntimeError):
    """An engine failed on a whole batch (no per-sample status: e.g. nvJPEG inside DALI).

    Attributes:
        sample_ids: int64 ``[n]`` the batch's sample ids.
        failures: The samples the C++ kernel cannot decode either
            (:class:`~slipstream.decode.stage.SampleFailure`); empty when it decodes them
            all, and the engine's own ``reason`` is all there is.
        reason: The engine's error message.
    """

    def __init__(self, sample_ids: object, failures: list, reason: str) -> None:
        """Keep the batch and its failures."""
        super().__init__(reason)
        self.sample_ids = sample_ids
        self.failures = list(failures)
        self.reason = reason


class Yuv420WindowError(SlipstreamError, ValueError):
    """A crop window, its image size, or the item holding the image is invalid.

    Attributes:
        position: The offending row of the batch.
    """

    def __init__(self, position: int, message: str) -> None:
        """Keep the row."""
        super().__init__(message)
        self.position = position
