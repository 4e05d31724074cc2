"""A background thread that runs one stage of the loader and can be stopped."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_POLL_SECONDS = 0.05


class StageStopped(Exception):
    """Raised inside a stage when the loader asked it to stop."""


class _EndOfStream:
    pass


END_OF_STREAM = _EndOfStream()


class StageError:
    """An exception raised in a stage thread, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        """Wrap ``error``."""
        self.error = error


def put_until_stopped(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Put ``item`` on a bounded queue, giving up when ``stop`` is set."""
    while True:
        if stop.is_set():
            raise StageStopped
        try:
            q.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue


def get_until_stopped(q: queue.Queue, stop: threading.Event) -> Any:
    """Get from a queue, giving up when ``stop`` is set."""
    while True:
        if stop.is_set():
            raise StageStopped
        try:
            return q.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue


def take(q: queue.Queue, stop: threading.Event) -> Any:
    """Next item of a stage's output queue: re-raises a forwarded error, may be END_OF_STREAM."""
    item = get_until_stopped(q, stop)
    if isinstance(item, StageError):
        raise item.error
    return item


class StageThread(threading.Thread):
    """Pull items from ``source`` (an iterator or a queue), apply ``work``, push to ``sink``.

    The stream ends with ``END_OF_STREAM``; an exception in ``work`` is forwarded
    as a :class:`StageError` so the consumer re-raises it in the caller's thread.
    """

    def __init__(
        self,
        name: str,
        source: Iterator[Any] | queue.Queue,
        work: Callable[[Any], Any],
        sink: queue.Queue,
        stop: threading.Event,
    ) -> None:
        """Create (not start) the stage."""
        super().__init__(name=name, daemon=True)
        self._source = source
        self._work = work
        self._sink = sink
        self._stop_event = stop

    def _items(self) -> Iterator[Any]:
        if isinstance(self._source, queue.Queue):
            while True:
                item = get_until_stopped(self._source, self._stop_event)
                if item is END_OF_STREAM or isinstance(item, StageError):
                    put_until_stopped(self._sink, item, self._stop_event)
                    return
                yield item
        else:
            for item in self._source:
                if self._stop_event.is_set():
                    raise StageStopped
                yield item
            put_until_stopped(self._sink, END_OF_STREAM, self._stop_event)

    def run(self) -> None:
        """Thread body."""
        try:
            for item in self._items():
                put_until_stopped(self._sink, self._work(item), self._stop_event)
        except StageStopped:
            return
        except BaseException as error:  # noqa: BLE001 - forwarded to the consumer
            try:
                put_until_stopped(self._sink, StageError(error), self._stop_event)
            except StageStopped:
                return
