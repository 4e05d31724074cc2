"""One live iteration per loader: a newer ``iter(loader)`` closes the older one."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from slipstream.errors import SlipstreamError

__all__ = ["LoaderIteration", "LoaderIterationClosed"]


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
