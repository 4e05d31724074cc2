"""``on_error``: what the loader does with the samples an engine could not decode."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slipstream.decode.errors import CORRUPT_STATUS, SampleCorruptError, SampleDecodeError
from slipstream.decode.stage import SampleFailure
from slipstream.native.decode import STATUS_JPEG_WARNING

__all__ = ["ON_ERROR", "EpochStats", "FailurePolicy"]

ON_ERROR = ("raise", "skip")
logger = logging.getLogger("slipstream")


@dataclass
class EpochStats:
    """What one epoch's decode met (``SlipstreamLoader.stats[epoch]``).

    Attributes:
        jpeg_warnings: Samples whose JPEG decoded while libjpeg warned about corrupt data
            ("Corrupt JPEG data: bad Huffman code", "premature end of data segment", ...):
            their pixels are likely garbage. Counted on the CPU engines (native, DALI CPU)
            whether or not ``strict`` made them failures.
        failed: Samples that failed (decode errors, checksum failures, and the warned
            samples under ``strict=True``), skipped under ``on_error="skip"``.
    """

    jpeg_warnings: int = 0
    failed: int = 0


class FailurePolicy:
    """Applies ``on_error`` and ``strict`` to each batch's :class:`SampleFailure` list.

    ``"raise"``: a :class:`SampleDecodeError` naming every failed sample by id and source.
    ``"skip"``: each failed sample is logged once (logger ``slipstream``, WARNING) and
    masked out of the batch's ``valid`` array; its pixels are the engines' fill (zero).

    A sample that decoded while libjpeg warned about corrupt data (status
    :data:`~slipstream.native.decode.STATUS_JPEG_WARNING`) is counted in
    :attr:`EpochStats.jpeg_warnings`; with ``strict=True`` it is a failure as well (raised
    or skipped as above), else it is kept as decoded.

    Args:
        on_error: ``"raise"`` or ``"skip"``.
        describe: ``sample_id -> str`` naming a sample's source (its path when known).
        strict: libjpeg's corrupt-data warnings fail the sample.
    """

    def __init__(self, on_error: str, describe: Callable[[int], str], strict: bool = False) -> None:
        """Check the policy."""
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.strict = bool(strict)
        self._describe = describe
        self._logged: set[int] = set()

    def error(self, ids: np.ndarray, failures: list[SampleFailure]) -> SampleDecodeError:
        """The error naming each failed sample (``ids``: the batch's sample ids)."""
        fields = " and ".join(sorted({f.field for f in failures}))
        named = [(int(ids[f.position]), self._describe(int(ids[f.position])), f.message)
                 for f in failures]  # fmt: skip
        if any(f.code == CORRUPT_STATUS for f in failures):
            return SampleCorruptError(fields, named)
        return SampleDecodeError(fields, named)

    @staticmethod
    def merge(
        failures: list[SampleFailure], corrupt: list[tuple[int, str, str]]
    ) -> list[SampleFailure]:
        """An engine's failures plus the batch's checksum failures (which take precedence).

        Args:
            failures: What the engine reported.
            corrupt: ``(position, field, message)`` of items that failed their checksum (the
                engine reports them as undecodable too: their bytes were zeroed).
        """
        if not corrupt:
            return failures
        marked = {(position, field) for position, field, _ in corrupt}
        kept = [f for f in failures if (f.position, f.field) not in marked]
        merged = kept + [SampleFailure(p, f, CORRUPT_STATUS, m) for p, f, m in corrupt]
        return sorted(merged, key=lambda f: (f.position, f.field))

    def apply_strict(self, failures: list[SampleFailure], stats: EpochStats) -> list[SampleFailure]:
        """Count the warned samples in ``stats``; the failures ``strict`` leaves.

        Without ``strict`` the warned samples are dropped from the list (they decoded);
        with it their message says that ``strict=True`` made them fail.
        """
        warned = {f.position for f in failures if f.code == STATUS_JPEG_WARNING}
        stats.jpeg_warnings += len(warned)
        if not warned:
            return failures
        if not self.strict:
            return [f for f in failures if f.code != STATUS_JPEG_WARNING]
        return [
            SampleFailure(f.position, f.field, f.code, f"{f.message} (strict=True)")
            if f.code == STATUS_JPEG_WARNING
            else f
            for f in failures
        ]

    def valid(self, ids: np.ndarray, failures: list[SampleFailure]) -> np.ndarray | None:
        """Raise or log the failures; the bool ``[n]`` mask of decoded samples for "skip".

        Raises:
            SampleDecodeError: A sample failed and the policy is "raise".
        """
        if failures and self.on_error == "raise":
            raise self.error(ids, failures)
        if self.on_error != "skip":
            return None
        for failure in failures:
            sample_id = int(ids[failure.position])
            if sample_id not in self._logged:
                self._logged.add(sample_id)
                where = self._describe(sample_id)
                logger.warning("skipping sample %d (%s): %s", sample_id, where, failure.message)
        valid = np.ones(len(ids), dtype=bool)
        valid[[f.position for f in failures]] = False
        return valid
