"""``SlipstreamLoader``: a drop-in iterator of training batches for PyTorch loops.

The loader checks the arguments, picks a decode engine once (:mod:`slipstream.decode`),
and assembles each batch; the :class:`~slipstream.prefetch.Prefetcher` owns the order, the
crop windows and the gathered bytes, and the engine owns the decode.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from slipstream.arguments import check_bool, check_choice, check_int
from slipstream.cache.format import NUMBER_DTYPES
from slipstream.dataset import SlipstreamDataset
from slipstream.decode.errors import BatchDecodeError
from slipstream.decode.policy import FailurePolicy
from slipstream.decode.registry import select_engine
from slipstream.decode.stage import DecodedBatch, DecodeStage, EngineOptions
from slipstream.pipelines.spec import ImagePipeline
from slipstream.prefetch import Prefetcher, resolve_world
from slipstream.prefetch.iteration import LoaderIteration
from slipstream.prefetch.position import (
    dataset_identity,
    read_state,
    state_batches,
)
from slipstream.transforms.output import FieldOutput, ImageOutput


class SlipstreamLoader:
    """Streams batches of decoded, cropped images and their fields.

    Each batch is a dict: one tensor ``[B, 3, H, W]`` per pipeline output (uint8 or
    normalized float, channels-last memory order, on ``device``), an int64 tensor per
    numeric field (``label``, ``index``, ...), and a list of str per requested string
    field. Crops and flips are pure functions of ``(seed, epoch, sample id)``, so a
    sample's augmentation does not depend on batch size, world size, shuffle order, or
    resuming mid-epoch. On the CPU, uint8 outputs are views of reused buffers, valid until
    the next batch is drawn (``.clone()`` to keep one), as in FFCV.

    Args:
        dataset: The dataset to read.
        batch_size: Samples per batch.
        pipelines: Output name -> :class:`ImagePipeline` (reading the image field of that
            name, or its ``field``), e.g. ``supervised_train(224)`` or ``dino()``.
        seed: Seed of the shuffle order and of every random crop and flip.
        shuffle: Shuffle the order each epoch (keyed by ``seed`` and the epoch).
        order: ``"random"``, ``"sequential"`` or ``"quasi_random"`` (FFCV's ``OrderOption``
            names; default: ``"random"``, or ``"sequential"`` with ``shuffle=False``).
        drop_last: Drop the last partial batch (and, distributed, the tail that does
            not divide evenly across ranks instead of padding it).
        indices: Only draw these sample ids (e.g. a class subset).
        distributed: Shard each epoch across ranks like ``DistributedSampler``: every
            rank gets ``ceil(N / world_size)`` samples, the shuffled order padded by
            repeating its start.
        rank: This process's rank (default: ``torch.distributed`` or ``$RANK``).
        world_size: Number of ranks (default: ``torch.distributed`` or ``$WORLD_SIZE``).
        device: Output device (default: CUDA when available, else CPU).
        num_threads: Decode threads (default: all usable cores).
        prefetch: Batches prepared ahead of the consumer.
        backend: ``"dali"`` (a DALI pipeline; the default where DALI is installed) or
            ``"native"`` (the C++ kernel on slipstream's own thread pool).
        decode_device: ``"cpu"`` (slipstream's C++ kernel, bit-identical on both
            backends), ``"mixed"`` (DALI's nvJPEG on the GPU; the default for
            ``backend="dali"`` with a CUDA device and JPEG), ``"cuda"`` / ``"torch"`` (the
            torch YUV420 decode, on the CUDA / any output device; ``backend="native"``).
            The engine table is in :mod:`slipstream.decode.registry`.
        fields: Non-image fields to return (default: every numeric field).
        image_format: What the decoders read: ``"jpeg"`` (the image fields) or
            ``"yuv420"`` (each field's YUV420 companion, built on first use).
        on_error: What an undecodable sample does: ``"raise"`` a
            :class:`~slipstream.decode.SampleDecodeError` naming it and its source, or
            ``"skip"`` it: its image is the fill (pixel value 0 before normalization), the
            batch gets a bool ``"valid"`` tensor (False there), it is logged once, and the
            epoch goes on. (The nvJPEG engine reports whole-batch DALI errors only: there
            ``"skip"`` raises too.)

    Example:
        >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
        >>> loader = SlipstreamLoader(ds, 256, supervised_train(224), seed=0)  # doctest: +SKIP
        >>> for epoch in range(3):  # doctest: +SKIP
        ...     loader.set_epoch(epoch)
        ...     for batch in loader:
        ...         images, labels = batch["image"], batch["label"]
    """

    def __init__(
        self,
        dataset: SlipstreamDataset,
        batch_size: int,
        pipelines: dict[str, ImagePipeline],
        *,
        seed: int = 0,
        shuffle: bool = True,
        order: str | None = None,
        drop_last: bool = False,
        indices: np.ndarray | list[int] | None = None,
        distributed: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        prefetch: int = 3,
        backend: str | None = None,
        decode_device: str | None = None,
        fields: list[str] | None = None,
        image_format: str = "jpeg",
        on_error: str = "raise",
    ) -> None:
        """Validate the arguments, pick the decode engine and open the stores."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        prefetch = check_int("prefetch", prefetch, minimum=1)
        num_threads = check_int("num_threads", num_threads, minimum=1, optional=True)
        rank = check_int("rank", rank, minimum=0, optional=True)
        world_size = check_int("world_size", world_size, minimum=1, optional=True)
        shuffle, drop_last = check_bool("shuffle", shuffle), check_bool("drop_last", drop_last)
        distributed = check_bool("distributed", distributed)
        check_choice("on_error", on_error, ("raise", "skip"))
        if not isinstance(dataset, SlipstreamDataset):
            raise TypeError(f"dataset must be a SlipstreamDataset, got {type(dataset).__name__}")
        if not pipelines:
            raise ValueError("pipelines is empty: pass e.g. supervised_train(224)")
        self.dataset, self.cache = dataset, dataset.cache
        self.pipelines = dict(pipelines)
        self.device = torch.device(device) if device is not None else _default_device()
        self._fields = FieldOutput(self.cache, fields, self.device, NUMBER_DTYPES)
        self.fields = self._fields.fields
        self._policy = FailurePolicy(on_error, self._fields.describe)
        spec, self.decode_device = select_engine(backend, decode_device, image_format, self.device)
        self._engine_class = spec.engine_class()  # a missing DALI fails here, naming the extra
        self.backend, self.engine = spec.backend, spec.name
        self.image_format, self.on_error = image_format, on_error
        self.num_threads = num_threads or len(os.sched_getaffinity(0))
        self.rank, self.world_size = resolve_world(distributed, rank, world_size)
        self.batch_size, self.seed, self.prefetch = int(batch_size), int(seed), prefetch
        self.shuffle, self.drop_last = shuffle, drop_last
        self.prefetcher = Prefetcher(
            self.cache,
            self.pipelines,
            batch_size=self.batch_size,
            image_format=image_format,
            seed=self.seed,
            shuffle=shuffle,
            order=order,
            drop_last=drop_last,
            indices=indices,
            rank=self.rank,
            world_size=self.world_size,
            prefetch=prefetch,
        )
        self.indices = self.prefetcher.indices
        self._outputs = {name: ImageOutput(p, self.device) for name, p in self.pipelines.items()}
        self._decoder: DecodeStage | None = None
        self.epoch, self._batches_done, self._resume_batch = 0, 0, 0
        self._samples_done, self._resume_sample = 0, 0
        self._live: weakref.ref[LoaderIteration] | None = None

    def __repr__(self) -> str:
        """What this loader streams and how: source, cache, samples, outputs, engine, device."""
        pipelines = ", ".join(f"{name}={p!r}" for name, p in self.pipelines.items())
        return (
            f"SlipstreamLoader(source={self.dataset.source!r}, cache={str(self.cache.path)!r}, "
            f"samples={len(self.indices) if self.indices is not None else len(self.cache)}, "
            f"batch_size={self.batch_size}, batches={len(self)}, fields={self.fields}, "
            f"pipelines={{{pipelines}}}, engine={self.engine!r}, backend={self.backend!r}, "
            f"decode_device={self.decode_device!r}, image_format={self.image_format!r}, "
            f"device='{self.device}', threads={self.num_threads}, seed={self.seed}, "
            f"epoch={self.epoch}, rank={self.rank}/{self.world_size})"
        )

    def samples_per_epoch(self) -> int:
        """Samples this rank sees per epoch (padded or trimmed to split evenly across ranks)."""
        return self.prefetcher.samples_per_epoch()

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self.prefetcher)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration runs (order, crops and flips depend on it)."""
        self.epoch = int(epoch)
        self._resume_batch = self._resume_sample = 0

    def state_dict(self) -> dict[str, Any]:
        """Position to resume from, and what it is valid for.

        Returns:
            ``epoch``, ``samples`` (consumed in that epoch on this rank), ``batch`` (batches
            yielded), ``batch_size``, ``seed``, ``dataset`` (the content name of the dataset)
            and ``order`` (indices digest, world size, rank, drop_last, shuffle, samples per
            epoch). Plain JSON-serializable values.
        """
        return {
            "version": 2,
            "epoch": self.epoch,
            "samples": self._samples_done,
            "batch": self._batches_done,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "dataset": dataset_identity(self.cache),
            "order": self.prefetcher.order_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration yields exactly the samples the saved run had left.

        The position is in samples, so a state saved at another batch size resumes right
        after the last consumed sample. A state of the original form ``{"epoch", "batch",
        "seed"}`` resumes at ``batch * batch_size`` samples.

        Raises:
            ResumeStateError: The state is malformed, out of range, or was saved for
                another dataset, seed, or order (indices, shard, drop_last, shuffle): the
                message names the mismatch.
        """
        position = read_state(
            state,
            seed=self.seed,
            batch_size=self.batch_size,
            identity=dataset_identity(self.cache),
            order=self.prefetcher.order_state(),
            samples_per_epoch=self.samples_per_epoch(),
        )
        self.epoch, self._resume_sample = position
        self._samples_done = self._resume_sample
        self._resume_batch = self._batches_done = state_batches(state)

    def close(self) -> None:
        """Release the live iteration, the decode engine and the gathered-batch slots.

        Stops the iteration's threads; drops the engine's threads, pixel buffers (pinned
        memory on a GPU machine) and DALI pipeline. Idempotent; iterating again starts
        afresh (a new engine). Called on ``with`` exit and when the loader is collected.
        """
        live = self._live() if getattr(self, "_live", None) is not None else None
        self._live = None
        if live is not None:
            live.close()
        decoder, self._decoder = getattr(self, "_decoder", None), None
        close = getattr(decoder, "close", None)
        if close is not None:
            close()
        prefetcher = getattr(self, "prefetcher", None)
        if prefetcher is not None:
            prefetcher.release_slots()
        if decoder is not None:
            _trim_allocator()

    def __enter__(self) -> SlipstreamLoader:
        """The loader itself; :meth:`close` runs on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the loader."""
        self.close()

    def __del__(self) -> None:
        """Close what is still open (never raises: may run at interpreter exit)."""
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - nothing to report to at finalization
            pass

    def _engine(self) -> DecodeStage:
        if self._decoder is None:
            options = EngineOptions(
                self.pipelines,
                self.batch_size,
                self.device,
                self.num_threads,
                self.prefetch,
                self.decode_device,
                self.image_format,
            )
            self._decoder = self._engine_class(options)
            self.prefetcher.reserve(self._decoder.slots_in_flight)
        return self._decoder

    def _to_batch(
        self, decoded: DecodedBatch, epoch: int, corrupt: list[tuple[int, str, str]] = ()
    ) -> dict[str, Any]:
        ids = decoded.sample_ids
        decoded.failures = self._policy.merge(decoded.failures, list(corrupt))
        valid = self._policy.valid(ids, decoded.failures)
        batch: dict[str, Any] = {}
        for name, pipeline in self.pipelines.items():
            images = self._outputs[name](decoded.images[name], decoded.normalized)
            if pipeline.augment is not None:
                from slipstream.augment.keys import BatchKey

                images = pipeline.augment(images, BatchKey(self.seed, epoch, ids, pipeline.view))
            batch[name] = images
        if self.device.type == "cuda" and decoded.host is not None:
            decoded.host.copy_done = torch.cuda.Event()
            decoded.host.copy_done.record()
        batch.update(self._fields(ids))
        if valid is not None:
            batch["valid"] = torch.from_numpy(valid).to(self.device, non_blocking=True)
        return batch

    def __iter__(self) -> LoaderIteration:
        """Yield the batches of the current epoch, then advance the epoch.

        One iteration is live at a time: a new ``iter(loader)`` closes the previous one
        (its next use raises :class:`LoaderIterationClosed`) and starts the epoch afresh
        (or from the position :meth:`load_state_dict` set).
        """
        live = self._live() if self._live is not None else None
        if live is not None:
            live.supersede()
        iteration = LoaderIteration(self._batches())
        self._live = weakref.ref(iteration)
        return iteration

    def _batches(self) -> Generator[dict[str, Any], None, None]:
        engine = self._engine()
        epoch, start, batch_start = self.epoch, self._resume_sample, self._resume_batch
        self._resume_batch = self._resume_sample = 0
        self._samples_done, self._batches_done = start, batch_start
        stream = self.prefetcher.start(epoch, start)
        decoded = engine.batches(stream)
        try:
            for item in decoded:
                batch = self._to_batch(item, epoch, stream.corrupt_items(item.sample_ids))
                self._batches_done += 1
                self._samples_done += len(item.sample_ids)
                yield batch
            self.epoch, self._batches_done, self._samples_done = epoch + 1, 0, 0
        except BatchDecodeError as error:
            if not error.failures:
                raise
            raise self._policy.error(error.sample_ids, error.failures) from error
        finally:
            decoded.close()
            stream.close()


def _trim_allocator() -> None:
    """Give glibc's free heap back to the OS (the freed buffers stay resident otherwise)."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
