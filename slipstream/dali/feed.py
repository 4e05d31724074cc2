"""The ``external_source`` of the loader's DALI pipeline: gathered slots, handed over as views.

The loader's gather thread fills batch slots (encoded bytes back to back, crop windows,
flips, sample ids). DALI calls this feed (from the thread that asks the
``DALIGenericIterator`` for a batch) up to ``prefetch_queue_depth`` batches ahead; each call
takes the next filled slot and returns views into it, read by DALI without a copy. For
YUV420 items, which carry no header, the feed adds each sample's true ``(height, width)``
from the companion's table, looked up by sample id.

A slot stays untouched while DALI may read it: it is ``pending`` from the moment it is fed
until the iterator returned the outputs of its iteration; then :meth:`SlotFeed.consumed`
hands it back for reuse (with the batch's size array, which the feed keeps alive as long).
Outputs come back in feeding order, so the oldest pending slot is always the one whose
outputs (or decode error) arrive next.
"""

from __future__ import annotations

import queue
import threading
from collections import deque

import numpy as np

from slipstream.prefetch.slots import BatchSlot
from slipstream.prefetch.stages import END_OF_STREAM, take


class SlotFeed:
    """An iterable DALI source over the gathered slots of the current epoch.

    Args:
        groups: The image outputs, grouped as decoded together (see
            :func:`slipstream.pipelines.spec.decode_groups`).
        lead_of: Output name -> the output whose slot buffers hold the bytes of its field
            (outputs missing from it hold their own).
        image_sizes: For YUV420 items: first member of each group -> int32 ``[N, 2]`` table
            of every sample's true ``(height, width)`` (its field's companion meta). None for
            JPEG (a JPEG has its size inside).

    Attributes:
        output_names: Names of the arrays of each batch, in order: per group
            ``jpegs/<first member>`` (then ``sizes/<first member>`` with ``image_sizes``),
            then ``windows/<name>`` and ``flips/<name>`` per member; then ``ids``.
        pending: Slots fed to DALI whose outputs were not returned yet, oldest first.
    """

    def __init__(
        self,
        groups: list[tuple[str, ...]],
        lead_of: dict[str, str],
        image_sizes: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Set up an idle feed (see :meth:`attach`)."""
        self._groups = [tuple(group) for group in groups]
        self._lead_of = dict(lead_of)
        self._image_sizes = None
        if image_sizes is not None:
            self._image_sizes = {
                group[0]: np.ascontiguousarray(image_sizes[group[0]], dtype=np.int32)
                for group in self._groups
            }
        self.output_names = []
        for group in self._groups:
            self.output_names.append(f"jpegs/{group[0]}")
            if self._image_sizes is not None:
                self.output_names.append(f"sizes/{group[0]}")
            for name in group:
                self.output_names += [f"windows/{name}", f"flips/{name}"]
        self.output_names.append("ids")
        self.pending: deque[BatchSlot] = deque()
        self._pending_sizes: deque[list[np.ndarray]] = deque()  # alive while DALI reads them
        self._gathered: queue.Queue | None = None
        self._stop: threading.Event | None = None

    def attach(self, gathered: queue.Queue, stop: threading.Event) -> None:
        """Read this epoch's slots from ``gathered`` (ending with ``END_OF_STREAM``)."""
        self._gathered, self._stop = gathered, stop
        self.clear()

    def clear(self) -> None:
        """Forget the pending slots (their pipeline was shut down and no longer reads them)."""
        self.pending.clear()
        self._pending_sizes.clear()

    def __iter__(self) -> SlotFeed:
        """DALI calls ``iter(source)`` at every epoch start; the feed is its own iterator."""
        return self

    def __next__(self) -> list[object]:
        """The next slot's arrays; StopIteration at the end of the epoch.

        Raises:
            StopIteration: The gather stage finished the epoch (or no epoch is attached).
        """
        if self._gathered is None or self._stop is None:
            raise StopIteration
        slot = take(self._gathered, self._stop)
        if slot is END_OF_STREAM:
            self._gathered = None
            raise StopIteration
        n = slot.count
        ids = slot.sample_ids[:n]
        arrays: list[object] = []
        sizes: list[np.ndarray] = []
        for group in self._groups:
            holder = self._lead_of.get(group[0], group[0])
            arrays.append(slot.images[holder].items(n))
            if self._image_sizes is not None:  # fresh [n, 2] arrays, kept until consumed
                sizes.append(self._image_sizes[group[0]][ids])
                arrays.append(sizes[-1])
            for name in group:
                image = slot.images[name]
                arrays += [image.windows[:n], image.flips[:n]]
        arrays.append(ids)
        self.pending.append(slot)
        self._pending_sizes.append(sizes)
        return arrays

    def consumed(self) -> BatchSlot:
        """The oldest pending slot, whose outputs DALI just returned: free to reuse."""
        self._pending_sizes.popleft()
        return self.pending.popleft()
