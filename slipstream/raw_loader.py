"""``PrefetchingDataLoader``: batches of stored image bytes, for users who decode them.

The original slipstream's raw loader, on slipstream's :class:`~slipstream.prefetch.Prefetcher`
(the same order, shards, indices, resume states and checksum checks as
:class:`~slipstream.SlipstreamLoader`), with no decode engine: each batch is the gathered
slot itself, exposed as numpy views::

    batch = {
        "data":    uint8  [total bytes]   the batch's items back to back
        "offsets": uint64 [n]             item i = data[offsets[i] : offsets[i] + sizes[i]]
        "sizes":   uint64 [n]
        "heights": uint32 [n]             stored image height and width
        "widths":  uint32 [n]
        "indices": int64  [n]             sample ids
        <field>:   numpy [n] per numeric field (list of str per requested string field)
        "valid":   bool   [n]             only with on_error="skip"
    }

The views point into a ring of buffers reused by the gather thread: a batch is valid until
the next one is drawn (copy what you keep), as in FFCV. Unlike the original's padded
``data[B, max_size]``, items are packed: :meth:`PrefetchingDataLoader.items` slices them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from slipstream.arguments import check_bool, check_choice, check_int
from slipstream.cache.format import NUMBER_DTYPES
from slipstream.dataset import SlipstreamDataset
from slipstream.decode.policy import FailurePolicy
from slipstream.errors import FieldNotFoundError
from slipstream.prefetch import EncodedBatch, Prefetcher, resolve_world
from slipstream.prefetch.iteration import EpochCursor, LiveIteration, LoaderIteration
from slipstream.prefetch.read_ahead import ReadAhead
from slipstream.prefetch.world import default_num_workers
from slipstream.sampling import resolve_order
from slipstream.sampling.quasi_random import QUASI_RANDOM_BLOCK
from slipstream.transforms.output import FieldOutput

__all__ = ["PrefetchingDataLoader"]


class PrefetchingDataLoader:
    """Streams batches of stored (encoded) image bytes with their sizes and fields.

    A Numba ``nogil`` thread gathers each batch's items into a reused buffer while the
    caller works on the previous one; the items are checked against their stored checksums
    on the way (a damaged item raises :class:`~slipstream.decode.SampleCorruptError`).

    Args:
        dataset: The dataset to read.
        batch_size: Samples per batch.
        shuffle: Shuffle the order each epoch (keyed by ``seed`` and the epoch); False is
            the sequential order. Default: False (as the original's), unless ``order`` says.
        drop_last: Drop the last partial batch (and, distributed, the uneven tail).
        batches_ahead: Batches gathered ahead of the consumer.
        seed: Seed of the order.
        order: ``"random"``, ``"sequential"`` or ``"quasi_random"`` (FFCV's ``OrderOption``
            names; default: from ``shuffle``). ``"quasi_random"`` reads shuffled blocks of
            neighbouring samples a window at a time (:mod:`slipstream.sampling.quasi_random`).
        indices: Only draw these sample ids.
        distributed: Shard each epoch across ranks like ``DistributedSampler``, with
            :class:`~slipstream.SlipstreamLoader`'s rules: ``"auto"`` (default) shards
            across an initialized process group of more than one rank, or by ``rank`` /
            ``world_size`` where given; ``True`` also by ``$RANK`` / ``$WORLD_SIZE``.
        rank: This process's rank (default: ``torch.distributed`` or ``$RANK``).
        world_size: Number of ranks (default: ``torch.distributed`` or ``$WORLD_SIZE``).
        image_field: The image field to read (default: the dataset's first image field).
        fields: Other fields to return (default: every numeric field).
        on_error: A damaged item (checksum mismatch): ``"raise"`` a
            :class:`~slipstream.decode.SampleCorruptError` naming it, or ``"skip"``: log it
            once and mark it False in the batch's bool ``"valid"`` array.
        read_ahead: Hint the kernel (``madvise(MADV_WILLNEED)``) about the bytes of the
            batches after those being gathered, for data read cold from disk: each item, or
            with ``order="quasi_random"`` each block of neighbouring samples as a whole
            (:mod:`slipstream.prefetch.read_ahead`).
        num_workers: Threads copying and checksumming each batch's items (default: the
            usable cores divided by the ranks on this node, as the decoding loader).

    Example:
        >>> loader = PrefetchingDataLoader(ds, 256, shuffle=True)  # doctest: +SKIP
        >>> for batch in loader:  # doctest: +SKIP
        ...     jpegs = PrefetchingDataLoader.items(batch)
    """

    def __init__(
        self,
        dataset: SlipstreamDataset,
        batch_size: int = 256,
        shuffle: bool | None = None,
        drop_last: bool = False,
        batches_ahead: int = 3,
        *,
        seed: int = 0,
        order: str | None = None,
        indices: np.ndarray | list[int] | None = None,
        distributed: bool | str = "auto",
        rank: int | None = None,
        world_size: int | None = None,
        image_field: str | None = None,
        fields: list[str] | None = None,
        on_error: str = "raise",
        read_ahead: bool = False,
        num_workers: int | None = None,
    ) -> None:
        """Validate the arguments and open the image field's store."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        batches_ahead = check_int("batches_ahead", batches_ahead, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        num_workers = check_int("num_workers", num_workers, minimum=1, optional=True)
        rank = check_int("rank", rank, minimum=0, optional=True)
        world_size = check_int("world_size", world_size, minimum=1, optional=True)
        if shuffle is None:
            shuffle = order is not None and resolve_order(order) != "sequential"
        shuffle, drop_last = check_bool("shuffle", shuffle), check_bool("drop_last", drop_last)
        check_choice("on_error", on_error, ("raise", "skip"))
        if not isinstance(dataset, SlipstreamDataset):
            raise TypeError(f"dataset must be a SlipstreamDataset, got {type(dataset).__name__}")
        self.dataset, self.cache = dataset, dataset.cache
        if image_field is None:
            if not self.cache.image_fields:
                raise FieldNotFoundError(f"{self.cache.path} has no image field")
            image_field = self.cache.image_fields[0]
        self.image_field = image_field
        self._fields = FieldOutput(self.cache, fields, torch.device("cpu"), NUMBER_DTYPES)
        self.fields = [name for name in self._fields.fields if name != image_field]
        self._policy = FailurePolicy(on_error, self._fields.describe)
        self.on_error = on_error
        self.read_ahead = check_bool("read_ahead", read_ahead)
        self._hints: ReadAhead | None = None
        self.rank, self.world_size = resolve_world(distributed, rank, world_size)
        self.batch_size, self.seed, self.batches_ahead = batch_size, seed, batches_ahead
        self.prefetcher = Prefetcher(
            self.cache,
            {},
            batch_size=batch_size,
            seed=seed,
            shuffle=shuffle,
            drop_last=drop_last,
            indices=indices,
            rank=self.rank,
            world_size=self.world_size,
            prefetch=batches_ahead,
            order=order,
            raw_fields=(image_field,),
            gather_threads=num_workers or default_num_workers(),
        )
        self.num_workers = self.prefetcher.gather_threads
        self.prefetcher.reserve(1)  # the batch the caller holds
        self.order, self.shuffle, self.drop_last = (
            self.prefetcher.order,
            self.prefetcher.shuffle,
            drop_last,
        )
        self.indices = self.prefetcher.indices
        self._cursor = EpochCursor()
        self._live = LiveIteration()

    def __repr__(self) -> str:
        """What this loader streams: source, field, samples, batch size, order, shard."""
        samples = len(self.indices) if self.indices is not None else len(self.cache)
        return (
            f"PrefetchingDataLoader(source={self.dataset.source!r}, "
            f"image_field={self.image_field!r}, samples={samples}, "
            f"batch_size={self.batch_size}, batches={len(self)}, fields={self.fields}, "
            f"order={self.order!r}, seed={self.seed}, epoch={self.epoch}, "
            f"rank={self.rank}/{self.world_size})"
        )

    @staticmethod
    def items(batch: dict[str, Any]) -> list[np.ndarray]:
        """The batch's items as uint8 views of ``batch["data"]`` (valid as long as it is)."""
        data, ends = batch["data"], (batch["offsets"] + batch["sizes"]).tolist()
        return [data[s:e] for s, e in zip(batch["offsets"].tolist(), ends, strict=True)]

    def samples_per_epoch(self) -> int:
        """Samples this rank sees per epoch (padded or trimmed to split evenly across ranks)."""
        return self.prefetcher.samples_per_epoch()

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self.prefetcher)

    @property
    def epoch(self) -> int:
        """The epoch of the pass in progress (or last left early), else of the next pass."""
        return self._cursor.epoch

    def set_epoch(self, epoch: int) -> None:
        """Run ``epoch`` next, from its start (its order depends on it).

        The rules are :class:`~slipstream.SlipstreamLoader`'s (``docs/epochs.md``): with
        the epoch of a state given to :meth:`load_state_dict` the resume point is kept.
        """
        self._cursor.set_epoch(check_int("epoch", epoch, minimum=0))

    def state_dict(self) -> dict[str, Any]:
        """Position to resume from, and what it is valid for (as ``SlipstreamLoader``'s)."""
        return self._cursor.state_dict(self.prefetcher, self.batch_size, self.seed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration yields exactly the samples the saved run had left.

        Raises:
            ResumeStateError: The state is malformed, or was saved for another dataset,
                seed or order.
        """
        self._cursor.load_state_dict(state, self.prefetcher, self.batch_size, self.seed)

    def close(self) -> None:
        """Stop the live iteration and drop the batch buffers (reallocated on next use)."""
        live = getattr(self, "_live", None)  # absent when __init__ failed
        if live is not None:
            live.close()
        prefetcher = getattr(self, "prefetcher", None)
        if prefetcher is not None:
            prefetcher.release_slots()

    def __enter__(self) -> PrefetchingDataLoader:
        """The loader itself; :meth:`close` runs on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the loader."""
        self.close()

    def __iter__(self) -> LoaderIteration:
        """Yield the batches of the current epoch, then advance the epoch.

        One iteration is live at a time: a new ``iter(loader)`` closes the previous one.
        """
        return self._live.start(self._batches())

    def _batches(self) -> Generator[dict[str, Any], None, None]:
        token, epoch, start, _ = self._cursor.begin()
        hint = self._hinter(epoch, start)
        stream = self.prefetcher.start(epoch, start)
        try:
            for gathered in stream:
                hint()
                batch = self._to_batch(
                    gathered, stream.corrupt_items(gathered.sample_ids[: gathered.count])
                )
                self._cursor.advance(token, gathered.count)
                yield batch
                stream.release(gathered)
            self._cursor.finish(token)
        finally:
            stream.close()

    def _hinter(self, epoch: int, start: int) -> Callable[[], None]:
        """A call per batch that hints the batch ``batches_ahead + 2`` ahead (no-op if off)."""
        if not self.read_ahead:
            return lambda: None
        if self._hints is None:
            meta = self.cache.meta(self.image_field)
            ids = np.arange(len(self.cache)) if self.indices is None else np.sort(self.indices)
            block = QUASI_RANDOM_BLOCK if self.order == "quasi_random" else None
            self._hints = ReadAhead(
                self.cache.data(self.image_field), meta["data_ptr"], meta["data_size"], ids, block
            )
        hints, size = self._hints, self.batch_size
        hints.new_epoch()
        ids = self.prefetcher.epoch_ids(epoch)[start:]
        depth = self.batches_ahead + 2
        for k in range(depth):
            hints.advise(ids[k * size : (k + 1) * size])
        batches = iter(range(depth, -(-len(ids) // size)))

        def hint() -> None:
            k = next(batches, None)
            if k is not None:
                hints.advise(ids[k * size : (k + 1) * size])

        return hint

    def _to_batch(
        self, gathered: EncodedBatch, corrupt: list[tuple[int, str, str]]
    ) -> dict[str, Any]:
        n = gathered.count
        ids = gathered.sample_ids[:n]
        valid = self._policy.valid(ids, self._policy.merge([], corrupt))
        images = gathered.images[self.image_field]
        end = int(images.offsets[n - 1] + images.sizes[n - 1]) if n else 0
        batch: dict[str, Any] = {
            "data": images.data[:end],
            "offsets": images.offsets[:n],
            "sizes": images.sizes[:n],
            "heights": images.shapes[:n, 0].view(np.uint32),
            "widths": images.shapes[:n, 1].view(np.uint32),
            "indices": ids,
        }
        for name in self.fields:
            if self.cache.field_types[name] == "str":
                batch[name] = [self.cache.string(name, int(i)) for i in ids]
            else:
                batch[name] = np.asarray(self.cache.numbers(name)[ids])
        if valid is not None:
            batch["valid"] = valid
        return batch
