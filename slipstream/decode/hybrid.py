"""Hybrid decode: two engines decode the two parts of every batch, merged into one batch.

::

    EpochStream ──> splitter: batch j, n rows ──> rows [0, k)  ──> first engine  ──┐
                    k = n * r1 / (r1 + r2)    └─> rows [k, n)  ──> second engine ──┤
                                                                                   v
                        merge: one output batch, first part in rows [0, k), second in [k, n)
                               (per-sample failures of both parts, positions remapped)

:class:`SplitEngine` is generic: each part is a zero-copy view of the batch
(:func:`~slipstream.prefetch.batch.sub_batch`) fed to an ordinary engine through its own
sub-stream, so any two engines that decode the same windows and flips bit for bit give the
same batches as either alone (tested with native + native and native + the DALI CPU
operator). A batch goes back to the Prefetcher once both parts are released; if either
engine abandons its part, the batch is abandoned.

:class:`HybridEngine` is the registry's ``hybrid`` engine: on a CUDA device the C++ kernel on
CPU threads (pinned host buffers, one non-blocking copy into the output's first ``k``
rows) and nvJPEG (DALI's mixed graph, uint8, its rows copied on the device); on the CPU the
C++ kernel and the DALI CPU operator (bit-exact, the CPU-testable pair).

The split follows the parts' measured rates (:class:`SplitRatio`). The two engines run
concurrently and ahead of the consumer, so the rate of the part that was waited on (the
bottleneck) is its rows over the batch interval; the other part is at least that fast and
its estimate is raised by a small probe step until it becomes the bottleneck in turn. Both
estimates are exponential moving averages over the last few batches.

Not measured on a GPU yet: whether ``hybrid`` beats ``dali-mixed`` and native alone
(target: >= 0.85x their sum), the thread split between the two, and the probe step. So
``decode_device=None`` never picks it: ask for ``decode_device="hybrid"``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from slipstream.decode.errors import BatchDecodeError
from slipstream.decode.stage import DecodedBatch, DecodeStage, EngineOptions, SampleFailure
from slipstream.prefetch.batch import sub_batch
from slipstream.prefetch.stages import StageStopped

if TYPE_CHECKING:
    from slipstream.prefetch.batch import EncodedBatch
    from slipstream.prefetch.prefetcher import EpochStream

__all__ = ["HybridEngine", "SplitController", "SplitEngine", "SplitRatio", "SubStream"]


class SplitController(Protocol):
    """Decides each batch's split and learns from how long each part took."""

    def split(self, n: int) -> int:
        """Rows of an ``n``-row batch that go to the first engine."""
        ...

    def update(self, counts: tuple[int, int], waits: tuple[float, float], interval: float) -> None:
        """Learn from one merged batch (see :meth:`SplitRatio.update`)."""
        ...


class SplitRatio:
    """The split of each batch, in proportion to the two parts' measured rates.

    Args:
        ratio: Share of the first engine until a rate is measured (0 < ratio < 1).
        window: Batches the moving averages span (smoothing ``2 / (window + 1)``).
        probe: Relative step by which the part that was not waited on is assumed faster
            (doubling, up to 16x, while the same part stays the faster one).
        warmup: Batches of each epoch not measured (pipeline builds, resets, cold caches).

    Attributes:
        rates: Estimated img/s of each part (None until the first measurement).
        history: ``(n, k)`` of every split, in order.
    """

    BOTTLENECK_SHARE = 0.05
    """A part is the bottleneck when the merge waited on it for this share of the interval."""

    def __init__(
        self, ratio: float = 0.5, window: int = 4, probe: float = 0.05, warmup: int = 2
    ) -> None:
        """Start from ``ratio``."""
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        self.ratio = float(ratio)
        self.alpha = 2.0 / (window + 1)
        self.probe = float(probe)
        self.warmup = int(warmup)
        self.rates: list[float] | None = None
        self.history: list[tuple[int, int]] = []
        self._seen = 0
        self._fast, self._streak = -1, 0

    def share(self) -> float:
        """The first engine's share of the next batch."""
        if self.rates is None:
            return self.ratio
        return self.rates[0] / (self.rates[0] + self.rates[1])

    def split(self, n: int) -> int:
        """Rows for the first engine: its share of ``n``, at least one row for each part."""
        k = round(n * self.share())
        k = min(max(k, 1), n - 1) if n >= 2 else k
        self.history.append((n, k))
        return k

    def start_epoch(self) -> None:
        """The next ``warmup`` batches are not measured."""
        self._seen = 0

    def update(self, counts: tuple[int, int], waits: tuple[float, float], interval: float) -> None:
        """Learn from one merged batch.

        Args:
            counts: Rows each part decoded.
            waits: Seconds the merge blocked waiting for each part.
            interval: Seconds since the previous batch was merged.
        """
        self._seen += 1
        if self._seen <= self.warmup or interval <= 0 or min(counts) == 0:
            return
        slow = 0 if waits[0] >= waits[1] else 1
        if waits[slow] < self.BOTTLENECK_SHARE * interval:
            return  # the consumer sets the pace: neither part's rate shows
        fast = 1 - slow
        measured = counts[slow] / interval  # it worked the whole interval
        at_least = counts[fast] / interval * (1.0 + self.probe)
        if self.rates is None:
            rates = [0.0, 0.0]
            rates[slow], rates[fast] = measured, at_least
            self.rates = rates
            self._fast, self._streak = fast, 0
            return
        rates = self.rates
        rates[slow] += self.alpha * (measured - rates[slow])
        # The part not waited on: raised by a step that doubles while it stays the faster
        # one (far from balance the split moves fast; near it, by ``probe``).
        self._streak = self._streak + 1 if self._fast == fast else 0
        self._fast = fast
        step = self.probe * 2 ** min(self._streak, 4)
        rates[fast] = max(rates[fast], at_least) * (1.0 + step)


@dataclass
class _Plan:
    """One batch as split: its ids (a copy), the first part's rows, all rows."""

    ids: np.ndarray
    k: int
    n: int


class _Splitter:
    """Reads the parent stream once, hands each side its parts, settles the parents."""

    def __init__(self, stream: EpochStream, controller: SplitController) -> None:
        self.stream = stream
        self._source = iter(stream)
        self._controller = controller
        self._pull_lock = threading.Lock()
        self._lock = threading.Lock()
        self.parts: tuple[deque, deque] = (deque(), deque())
        self.plans: deque[_Plan] = deque()
        self.ended = False
        self._owner: dict[int, list] = {}  # id(part) -> [parent, parts left, abandoned]

    def _pull(self) -> bool:
        """Split the next parent batch (caller holds the pull lock); False at the end."""
        if self.ended:
            return False
        try:
            parent = next(self._source, None)
        except StageStopped:
            parent = None
        if parent is None:
            self.ended = True
            return False
        n = parent.count
        k = self._controller.split(n)
        parts = [(side, sub_batch(parent, a, b)) for side, (a, b) in enumerate(((0, k), (k, n)))]
        parts = [(side, part) for side, part in parts if part.count > 0]
        record = [parent, len(parts), False]
        with self._lock:
            for side, part in parts:
                self._owner[id(part)] = record
                self.parts[side].append(part)
        self.plans.append(_Plan(parent.ids(), k, n))
        if not parts:  # an empty batch: nothing will read it
            self.stream.release(parent)
        return True

    def next_part(self, side: int, stop: threading.Event) -> EncodedBatch | None:
        """The side's next part (splitting a parent when none waits), None at the end."""
        queue = self.parts[side]
        while not stop.is_set():
            try:
                return queue.popleft()
            except IndexError:
                pass
            with self._pull_lock:
                if queue:
                    continue
                if not self._pull():
                    return None
        return None

    def next_plan(self) -> _Plan | None:
        """The next batch to merge (splitting it if no side did yet), None at the end."""
        while True:
            try:
                return self.plans.popleft()
            except IndexError:
                pass
            with self._pull_lock:
                if self.plans:
                    continue
                if not self._pull():
                    return None

    def settle(self, part: EncodedBatch, abandoned: bool) -> None:
        """One part is done with: its parent goes back once both are."""
        with self._lock:
            record = self._owner.pop(id(part), None)
            if record is None:
                return
            record[1] -= 1
            record[2] = record[2] or abandoned
            if record[1] > 0:
                return
        parent, _, lost = record
        if lost:
            self.stream.abandon(parent)
        else:
            self.stream.release(parent)

    def settle_rest(self) -> None:
        """After both engines closed: parts never handed out are released, others abandoned."""
        for queue in self.parts:
            while queue:
                self.settle(queue.popleft(), abandoned=False)
        with self._lock:
            unsettled = list(self._owner.items())
        for _, record in unsettled:  # taken by an engine that neither released nor abandoned it
            record[1] = 1
            record[2] = True
        for key, record in unsettled:
            with self._lock:
                self._owner.pop(key, None)
            self.stream.abandon(record[0])


class SubStream:
    """One side's stream of parts, with the :class:`EpochStream` interface engines use.

    Attributes:
        stop: Ends this side's stream early (engines set it when they finish).
    """

    def __init__(self, splitter: _Splitter, side: int) -> None:
        """The parts of ``side`` (0: rows ``[0, k)``, 1: rows ``[k, n)``)."""
        self.stop = threading.Event()
        self._splitter = splitter
        self._side = side
        # what each image field's items are (engines that build graphs per format read it)
        self.field_formats = dict(getattr(splitter.stream, "field_formats", {}))

    def __iter__(self) -> Iterator[EncodedBatch]:
        """This side's parts, in batch order."""
        while True:
            part = self._splitter.next_part(self._side, self.stop)
            if part is None:
                return
            yield part

    def release(self, batch: EncodedBatch) -> None:
        """The part's bytes are read."""
        self._splitter.settle(batch, abandoned=False)

    def abandon(self, batch: EncodedBatch) -> None:
        """Something may still read the part: its whole batch is never reused."""
        self._splitter.settle(batch, abandoned=True)


class SplitEngine:
    """Decodes rows ``[0, k)`` of each batch with ``first`` and ``[k, n)`` with ``second``.

    Both engines must give the same pixels representation (both uint8, or both normalized
    the same way) and run concurrently, each ahead of the merge by its own depth. The
    merged batch is on ``device``: a CUDA device gets a fresh output batch per step (parts
    copied in with ``non_blocking``; a part's host buffers get the copy's fence); on the
    CPU the output batches come from a ring of two, valid until the next batch is drawn
    (as the native engine's).

    Args:
        first: The engine of the first rows.
        second: The engine of the other rows.
        ratio: The first engine's initial share (when ``controller`` is None).
        device: Where the merged batch lives.
        batch_size: Largest batch.
        controller: Decides the splits (default: :class:`SplitRatio` from ``ratio``).
        lead: Batches the first engine may run ahead of the second (sizes the Prefetcher's
            ring; fewer slots only make it wait).
        name: Registry name.
    """

    def __init__(
        self,
        first: DecodeStage,
        second: DecodeStage,
        ratio: float = 0.5,
        *,
        device: torch.device | str = "cpu",
        batch_size: int,
        controller: SplitController | None = None,
        lead: int = 4,
        name: str = "split",
    ) -> None:
        """Keep the engines (nothing is allocated before the first batch)."""
        self.name = name
        self.engines = (first, second)
        self.controller = controller if controller is not None else SplitRatio(ratio)
        self.device = torch.device(device)
        self.slots_in_flight = first.slots_in_flight + second.slots_in_flight + lead
        self._batch_size = int(batch_size)
        self._rings: dict[str, list[torch.Tensor]] = {}
        self._turn = 0

    def batches(self, stream: EpochStream) -> Iterator[DecodedBatch]:
        """Split each batch, decode both parts concurrently, yield the merged batches."""
        splitter = _Splitter(stream, self.controller)
        subs = (SubStream(splitter, 0), SubStream(splitter, 1))
        gens = [engine.batches(sub) for engine, sub in zip(self.engines, subs, strict=True)]
        start_epoch = getattr(self.controller, "start_epoch", None)
        if start_epoch is not None:
            start_epoch()
        try:
            last = time.perf_counter()
            while True:
                plan = splitter.next_plan()
                if plan is None:
                    for gen in gens:  # both run to their end (the DALI engine then resets)
                        if next(gen, None) is not None:
                            raise RuntimeError("an engine decoded more batches than it was fed")
                    return
                parts, waits = self._decode_parts(plan, gens)
                merged = self._merge(plan, parts)
                now = time.perf_counter()
                counts = (plan.k, plan.n - plan.k)
                self.controller.update(counts, waits, now - last)
                last = now
                yield merged
        finally:
            for sub in subs:
                sub.stop.set()
            for gen in gens:
                gen.close()
            splitter.settle_rest()
            stream.stop.set()

    def _decode_parts(
        self, plan: _Plan, gens: list[Iterator[DecodedBatch]]
    ) -> tuple[list[DecodedBatch | None], tuple[float, float]]:
        parts: list[DecodedBatch | None] = []
        waits = [0.0, 0.0]
        offsets = (0, plan.k)
        for side, count in enumerate((plan.k, plan.n - plan.k)):
            if count == 0:
                parts.append(None)
                continue
            start = time.perf_counter()
            try:
                part = next(gens[side], None)
            except BatchDecodeError as error:
                moved = [_moved(f, offsets[side]) for f in error.failures]
                raise BatchDecodeError(plan.ids, moved, error.reason) from error
            waits[side] = time.perf_counter() - start
            if part is None or len(part.sample_ids) != count:
                raise RuntimeError(
                    f"engine {self.engines[side].name!r} returned "
                    f"{'no batch' if part is None else len(part.sample_ids)} for a part of "
                    f"{count} rows"
                )
            parts.append(part)
        return parts, (waits[0], waits[1])

    def _merge(self, plan: _Plan, parts: list[DecodedBatch | None]) -> DecodedBatch:
        present = [(offset, p) for offset, p in zip((0, plan.k), parts, strict=True) if p]
        normalized = _normalized([p for _, p in present])
        images: dict[str, torch.Tensor] = {}
        for name, pixels in present[0][1].images.items():
            out = self._output(name, plan.n, pixels)
            for offset, part in present:
                rows = part.images[name]
                out[offset : offset + rows.shape[0]].copy_(rows, non_blocking=True)
            images[name] = out
        self._turn += 1
        if self.device.type == "cuda":
            for _, part in present:
                if part.host is not None:  # the part's host buffers wait for the copy
                    part.host.copy_done = torch.cuda.Event()
                    part.host.copy_done.record()
        failures = [_moved(f, offset) for offset, part in present for f in part.failures]
        return DecodedBatch(plan.ids, images, failures, normalized=normalized)

    def _output(self, name: str, n: int, like: torch.Tensor) -> torch.Tensor:
        shape = (n, *like.shape[1:])
        if self.device.type == "cuda":  # stream-ordered: a fresh tensor from torch's cache
            return torch.empty(shape, dtype=like.dtype, device=self.device)
        ring = self._rings.get(name)
        full = (self._batch_size, *like.shape[1:])
        if ring is None or ring[0].shape != full or ring[0].dtype != like.dtype:
            ring = [torch.empty(full, dtype=like.dtype) for _ in range(2)]
            self._rings[name] = ring
        return ring[self._turn % 2][:n]


def _normalized(parts: list[DecodedBatch]) -> bool:
    """Whether the merged pixels are final values (the parts' float values must agree).

    uint8 pixels never are: the loader casts or normalizes them.

    Raises:
        RuntimeError: One part is normalized float and the other is not.
    """
    if all(t.dtype == torch.uint8 for p in parts for t in p.images.values()):
        return False
    flags = {p.normalized for p in parts}
    if len(flags) > 1:
        raise RuntimeError("the two engines of a split return differently normalized pixels")
    return flags.pop()


def _moved(failure: SampleFailure, offset: int) -> SampleFailure:
    return dataclasses.replace(failure, position=failure.position + offset)


class HybridEngine(SplitEngine):
    """The registry's ``hybrid`` engine: the C++ kernel and a DALI engine split each batch.

    On a CUDA device the second engine is nvJPEG (DALI's mixed graph); on the CPU it is the
    DALI CPU operator. Both parts are uint8: the loader normalizes the merged batch once.
    The first engine gets ``num_threads`` minus the DALI engine's threads.

    Args:
        options: The loader's engine options (JPEG; ``decode_device="hybrid"``).
        ratio: The C++ kernel's initial share of each batch.
        nvjpeg: The nvJPEG graph's :class:`~slipstream.dali.ops.NvjpegOptions`.
    """

    DALI_THREAD_SHARE = 0.25
    """Share of ``num_threads`` for the DALI engine on a GPU (its Huffman decode threads)."""

    def __init__(
        self, options: EngineOptions, ratio: float | None = None, nvjpeg: object = None
    ) -> None:
        """Build both engines (DALI's pipeline is built on first use)."""
        from slipstream.dali.engine import DaliEngine
        from slipstream.decode.native import NativeEngine

        cuda = options.device.type == "cuda"
        threads = max(2, options.num_threads)
        share = self.DALI_THREAD_SHARE if cuda else 0.5
        dali_threads = min(threads - 1, max(1, round(threads * share)))
        # Both parts decode to uint8 (on a GPU only uint8 crosses the bus anyway); the loader
        # normalizes the merged batch once, on the output device.
        uint8 = {
            name: dataclasses.replace(p, normalize=None, dtype="uint8")
            for name, p in options.pipelines.items()
        }
        dali_options = dataclasses.replace(
            options,
            pipelines=uint8,
            num_threads=dali_threads,
            decode_device="mixed" if cuda else "cpu",
        )
        native_options = dataclasses.replace(
            options, pipelines=uint8, num_threads=threads - dali_threads, decode_device="cpu"
        )
        if ratio is None:
            ratio = 0.5 if not cuda else 0.4
        super().__init__(
            NativeEngine(native_options),
            DaliEngine(dali_options, nvjpeg),
            ratio,
            device=options.device,
            batch_size=options.batch_size,
            lead=options.depth + 2,
            name="hybrid" if cuda else "hybrid-cpu",
        )
