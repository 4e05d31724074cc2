"""The native decode stage: fills a batch slot's pixels with the C++ thread pool."""

from __future__ import annotations

from collections.abc import Callable

from slipstream.native.decode import DecodeError, NativeDecoder
from slipstream.prefetch.slots import BatchSlot


class SampleDecodeError(RuntimeError):
    """A sample of a batch could not be decoded; the message names it.

    Attributes:
        failures: ``(sample_id, description, message)`` for every failed sample.
    """

    def __init__(self, field: str, failures: list[tuple[int, str, str]]) -> None:
        """Build the message from the failures."""
        lines = [f"sample {sid} ({desc}): {msg}" for sid, desc, msg in failures]
        super().__init__(f"could not decode field {field!r}: " + "; ".join(lines))
        self.failures = failures


class NativeBackend:
    """Decodes every image output of a slot with :class:`NativeDecoder`.

    Args:
        num_threads: Decoder threads (the pool is owned by the decoder).
        fields: Output name -> dataset image field, for error messages.
        describe: ``sample_id -> str`` naming a sample (its source path when known).
    """

    def __init__(
        self,
        num_threads: int,
        fields: dict[str, str],
        describe: Callable[[int], str],
    ) -> None:
        """Create the decoder pool."""
        self._decoder = NativeDecoder(num_threads)
        self._fields = fields
        self._describe = describe

    def decode(self, slot: BatchSlot) -> BatchSlot:
        """Decode the slot's encoded bytes into its pixel buffers, in place."""
        slot.wait_until_reusable()
        n = slot.count
        for name, image in slot.images.items():
            try:
                self._decoder.decode_crop_batch(
                    image.encoded,
                    image.offsets[:n],
                    image.sizes[:n],
                    image.windows[:n],
                    image.flips[:n],
                    image.pixels_np[:n],
                )
            except DecodeError as error:
                failures = []
                for position, message in error.failures:
                    sample_id = int(slot.sample_ids[position])
                    failures.append((sample_id, self._describe(sample_id), message))
                raise SampleDecodeError(self._fields[name], failures) from error
        return slot
