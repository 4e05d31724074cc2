"""Resume states: where an epoch resumes, and what the position is valid for.

A state is plain JSON-serializable data::

    {"version": 2, "epoch", "samples" (consumed in that epoch on this rank),
     "batch" (batches yielded), "batch_size", "seed",
     "dataset" (content name of the store), "order" (Prefetcher.order_state())}

The position is in samples, so a state resumes right after the last consumed sample at
any batch size. The original form ``{"epoch", "batch", "seed"}`` resumes at
``batch * batch_size`` samples.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from slipstream.cache.format import BYTES_TYPES
from slipstream.errors import SlipstreamError

__all__ = ["ResumeStateError", "dataset_identity", "read_state", "state_batches"]


class ResumeStateError(SlipstreamError, ValueError):
    """A resume state does not fit this loader (malformed, or another dataset/seed/order)."""


def dataset_identity(cache: Any) -> str:
    """A short content name of a dataset's store: equal for copies of the same data.

    A digest of the sample count, the field types, and per bytes / image field its
    per-item checksums (or, without them, its item table: offsets, sizes and image sizes).

    Args:
        cache: The dataset's store (:class:`~slipstream.cache.SlipCache`, ``FfcvFile``...).
    """
    digest = hashlib.sha256(
        json.dumps([len(cache), sorted(cache.field_types.items())], default=str).encode()
    )
    for name, kind in sorted(cache.field_types.items()):
        if kind not in BYTES_TYPES:
            continue
        checksums = getattr(cache, "checksums", None)
        table = checksums(name) if callable(checksums) else None
        if table is None:
            table = cache.meta(name)
        digest.update(np.ascontiguousarray(table).tobytes())
    return digest.hexdigest()[:32]


def read_state(
    state: dict[str, Any],
    *,
    seed: int,
    batch_size: int,
    identity: str,
    order: dict[str, Any],
    samples_per_epoch: int,
) -> tuple[int, int]:
    """``(epoch, samples consumed)``: where a loader with these settings resumes ``state``.

    Args:
        state: A state from ``SlipstreamLoader.state_dict()`` (or the original form).
        seed: The loader's seed.
        batch_size: The loader's batch size (for states that count batches only).
        identity: The loader's :func:`dataset_identity`.
        order: The loader's ``Prefetcher.order_state()``.
        samples_per_epoch: Samples per epoch on this rank.

    Raises:
        ResumeStateError: The state is malformed, out of range, or was saved for another
            dataset, seed, or order (indices, shard, drop_last, shuffle): the message names
            the mismatch.
    """
    if not isinstance(state, dict):
        raise ResumeStateError(f"state must be a dict, got {type(state).__name__}")
    saved_seed = _state_int(state, "seed", seed)
    if saved_seed != seed:
        raise ResumeStateError(f"state was saved with seed {saved_seed}, this loader has {seed}")
    if "dataset" in state and state["dataset"] != identity:
        raise ResumeStateError(
            f"state was saved for dataset {state['dataset']!r}, this loader reads {identity!r}"
        )
    saved_order = state.get("order")
    if saved_order is not None:
        if not isinstance(saved_order, dict):
            raise ResumeStateError("state 'order' must be a dict")
        wrong = [k for k in order if k in saved_order and saved_order[k] != order[k]]
        if wrong:
            diffs = ", ".join(
                f"{k}: saved {saved_order[k]!r}, this loader {order[k]!r}" for k in wrong
            )
            raise ResumeStateError(f"state was saved for another epoch order ({diffs})")
    epoch = _state_int(state, "epoch", None)
    batch = _state_int(state, "batch", 0)
    samples = _state_int(state, "samples", None) if "samples" in state else batch * batch_size
    if samples > samples_per_epoch:
        raise ResumeStateError(
            f"state has {samples} samples consumed, but an epoch here has {samples_per_epoch}"
        )
    return epoch, samples


def state_batches(state: dict[str, Any]) -> int:
    """The batches a (validated) state had yielded in its epoch."""
    return _state_int(state, "batch", 0)


def _state_int(state: dict[str, Any], key: str, default: int | None) -> int:
    if key not in state:
        if default is None:
            raise ResumeStateError(f"state has no {key!r}")
        return default
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ResumeStateError(f"state {key!r} must be an integer >= 0, got {value!r}")
    return int(value)
