"""Gather and stage threads of the prefetcher."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from slipstream.cache.gather import gather_bytes
from slipstream.prefetch import END_OF_STREAM, StageError, StageThread


def test_gather_equals_concatenated_slices():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, 100_000, dtype=np.uint8)
    sizes = rng.integers(0, 3000, 64).astype(np.uint64)
    sizes[5] = 0
    pointers = np.array([rng.integers(0, source.size - int(s) + 1) for s in sizes], np.uint64)
    destination = np.zeros(int(sizes.sum()) + 10, np.uint8)
    offsets = np.zeros(64, np.uint64)
    written = gather_bytes(source, pointers, sizes, destination, offsets)
    expected = np.concatenate(
        [source[int(p) : int(p + s)] for p, s in zip(pointers, sizes, strict=True)]
    )
    assert written == expected.size
    np.testing.assert_array_equal(destination[:written], expected)
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(sizes)[:-1]]))


def test_gather_refuses_out_of_range_items():
    source = np.zeros(1000, np.uint8)
    offsets = np.zeros(2, np.uint64)
    with pytest.raises(ValueError, match="buffer holds 10"):
        gather_bytes(
            source,
            np.array([0, 0], np.uint64),
            np.array([8, 8], np.uint64),
            np.zeros(10, np.uint8),
            offsets,
        )
    with pytest.raises(ValueError, match="item 1 ends at byte 1001"):
        gather_bytes(
            source,
            np.array([0, 991], np.uint64),
            np.array([8, 10], np.uint64),
            np.zeros(100, np.uint8),
            offsets,
        )
    with pytest.raises(ValueError, match="contiguous 1-D uint8"):
        gather_bytes(
            source[::2],
            np.array([0], np.uint64),
            np.array([1], np.uint64),
            np.zeros(100, np.uint8),
            offsets,
        )


def test_stage_thread_forwards_results_errors_and_stops():
    stop = threading.Event()
    sink: queue.Queue = queue.Queue(maxsize=2)
    StageThread("double", iter([1, 2, 3]), lambda x: 2 * x, sink, stop).start()
    assert [sink.get(timeout=5) for _ in range(3)] == [2, 4, 6]
    assert sink.get(timeout=5) is END_OF_STREAM

    def fail(x):
        raise RuntimeError(f"bad {x}")

    errors: queue.Queue = queue.Queue()
    StageThread("fail", iter([7]), fail, errors, stop).start()
    item = errors.get(timeout=5)
    assert isinstance(item, StageError) and str(item.error) == "bad 7"

    blocked: queue.Queue = queue.Queue(maxsize=1)
    thread = StageThread("endless", iter(range(10**9)), lambda x: x, blocked, stop)
    thread.start()
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
