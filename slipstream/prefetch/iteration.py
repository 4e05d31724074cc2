"""One live iteration per loader, and which epoch each iteration runs.

A newer ``iter(loader)`` closes the older one (:class:`LoaderIteration`); an
:class:`EpochCursor` decides the epoch and first sample of each pass.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Iterator
from typing import Any

from slipstream.errors import SlipstreamError
from slipstream.prefetch.position import dataset_identity, read_state, state_batches

__all__ = ["EpochCursor", "LoaderIteration", "LoaderIterationClosed"]


class LoaderIterationClosed(SlipstreamError, RuntimeError):
    """This iteration of a loader was closed by a newer ``iter(loader)``."""


class LoaderIteration(Iterator[dict[str, Any]]):
    """One live pass over a loader's epoch (what ``iter(loader)`` returns).

    A newer ``iter(loader)`` supersedes it: its stream and engine iteration are closed at
    once, and its next use raises :class:`LoaderIterationClosed` instead of handing out
    another iteration's batches.
    """

    def __init__(self, batches: Generator[dict[str, Any], None, None]) -> None:
        """Wrap the loader's batch generator."""
        self._batches = batches
        self._superseded = False

    def __iter__(self) -> LoaderIteration:
        """Itself."""
        return self

    def __next__(self) -> dict[str, Any]:
        """The next batch.

        Raises:
            LoaderIterationClosed: A newer ``iter(loader)`` closed this iteration.
        """
        if self._superseded:
            raise LoaderIterationClosed(
                "this loader iteration was closed because a newer iter(loader) started; "
                "a loader runs one iteration at a time"
            )
        return next(self._batches)

    def close(self) -> None:
        """End the iteration early (releases its batches and stops its threads)."""
        self._batches.close()

    def supersede(self) -> None:
        """Close it for a newer iteration; its next use raises."""
        self._superseded = True
        self._batches.close()


class EpochCursor:
    """Which epoch (and sample) the next iteration of a loader runs; where the last one is.

    The rules, as FFCV users expect them (the table in ``docs/epochs.md``):

    * a pass that ends runs the next epoch next;
    * a pass left early (``break``, an error, a newer ``iter(loader)``) also runs the next
      epoch next, from its start;
    * :meth:`load` makes the next pass resume the saved epoch at the saved sample;
    * :meth:`set_epoch` makes the next pass run that epoch from its start; with the epoch of
      a loaded state it keeps the resume point.

    The position (:attr:`epoch`, :attr:`samples`, :attr:`batches`) is that of the pass in
    progress or last left (what a state saves), else where the next pass starts. A pass
    counts only while it is current: :meth:`set_epoch` or :meth:`load` during a pass detach
    it, so it no longer moves the position.
    """

    def __init__(self) -> None:
        """Epoch 0, sample 0."""
        self.epoch = self.samples = self.batches = 0
        self._resume: tuple[int, int] | None = None
        self._left_early = False
        self._pass = 0

    @property
    def resume_pending(self) -> bool:
        """Whether the next pass resumes a loaded state (not from an epoch's start)."""
        return self._resume is not None

    def set_epoch(self, epoch: int) -> bool:
        """Run ``epoch`` next, from its start, or from a loaded state's sample if it is its epoch.

        Returns:
            True where a loaded resume point of another epoch was dropped.
        """
        keep = self._resume is not None and epoch == self.epoch
        dropped = self._resume is not None and not keep
        if not keep:
            self._resume, self.samples, self.batches = None, 0, 0
        self.epoch, self._left_early = epoch, False
        self._pass += 1
        return dropped

    def load(self, epoch: int, samples: int, batches: int) -> None:
        """Resume ``epoch`` after ``samples`` consumed samples (``batches`` batches) next."""
        self.epoch, self.samples, self.batches = epoch, samples, batches
        self._resume, self._left_early = (samples, batches), False
        self._pass += 1

    def begin(self) -> tuple[int, int, int, int]:
        """Start a pass: ``(pass token, epoch, first sample, batches before it)``."""
        if self._left_early:
            self.epoch += 1
        self.samples, self.batches = self._resume or (0, 0)
        self._resume, self._left_early = None, True
        self._pass += 1
        return self._pass, self.epoch, self.samples, self.batches

    def advance(self, token: int, samples: int) -> None:
        """The pass ``token`` handed out one batch of ``samples`` samples."""
        if token == self._pass:
            self.samples += samples
            self.batches += 1

    def finish(self, token: int) -> None:
        """The pass ``token`` ran to its end: the next pass runs the next epoch."""
        if token == self._pass:
            self.epoch, self.samples, self.batches = self.epoch + 1, 0, 0
            self._left_early = False

    def state_dict(self, prefetcher: Any, batch_size: int, seed: int) -> dict[str, Any]:
        """A loader's resume state: this position, and what it is valid for.

        Args:
            prefetcher: The loader's :class:`~slipstream.prefetch.Prefetcher` (its cache
                names the dataset, its order state the order).
            batch_size: The loader's batch size.
            seed: The loader's seed.

        Returns:
            ``version``, ``epoch``, ``samples`` (consumed in that epoch on this rank),
            ``batch`` (batches yielded), ``batch_size``, ``seed``, ``dataset`` (the
            content name of the dataset) and ``order``: plain JSON-serializable values.
        """
        return {
            "version": 2,
            "epoch": self.epoch,
            "samples": self.samples,
            "batch": self.batches,
            "batch_size": batch_size,
            "seed": seed,
            "dataset": dataset_identity(prefetcher.cache),
            "order": prefetcher.order_state(),
        }

    def load_state_dict(
        self, state: dict[str, Any], prefetcher: Any, batch_size: int, seed: int
    ) -> None:
        """Resume at a state from :meth:`state_dict`, checked against this loader.

        Raises:
            ResumeStateError: The state is malformed, out of range, or was saved for
                another dataset, seed or order: the message names the mismatch.
        """
        position = read_state(
            state,
            seed=seed,
            batch_size=batch_size,
            identity=dataset_identity(prefetcher.cache),
            order=prefetcher.order_state(),
            samples_per_epoch=prefetcher.samples_per_epoch(),
        )
        self.load(*position, state_batches(state))


class LiveIteration:
    """A loader's one live :class:`LoaderIteration` (held weakly: dropping it ends it)."""

    def __init__(self) -> None:
        """No iteration yet."""
        self._ref: weakref.ref[LoaderIteration] | None = None

    def start(self, batches: Generator[Any, None, None]) -> LoaderIteration:
        """A new iteration over ``batches``; the previous one, if live, is superseded."""
        self.supersede()
        iteration = LoaderIteration(batches)
        self._ref = weakref.ref(iteration)
        return iteration

    def supersede(self) -> None:
        """Close the live iteration so that its next use raises :class:`LoaderIterationClosed`."""
        live = self._ref() if self._ref is not None else None
        if live is not None:
            live.supersede()

    def close(self) -> None:
        """Close the live iteration (its threads stop); idempotent."""
        live = self._ref() if self._ref is not None else None
        self._ref = None
        if live is not None:
            live.close()
