"""``SlipstreamLoader``: a drop-in iterator of training batches for PyTorch loops.

The loader checks the arguments, picks a decode engine once (:mod:`slipstream.decode`),
and assembles each batch; the :class:`~slipstream.prefetch.Prefetcher` owns the order, the
crop windows and the gathered bytes, and the engine owns the decode.
"""

from __future__ import annotations

import atexit
import ctypes
import weakref
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from slipstream.arguments import check_bool, check_choice, check_int
from slipstream.cache.format import NUMBER_DTYPES
from slipstream.dataset import SlipstreamDataset
from slipstream.decode.errors import BatchDecodeError
from slipstream.decode.policy import EpochStats, FailurePolicy
from slipstream.decode.registry import select_engine
from slipstream.decode.stage import DecodedBatch, DecodeStage, EngineOptions
from slipstream.loader_arguments import (
    AfterBatch,
    batch_tuple,
    image_pipelines,
    reject_original_arguments,
    returned_fields,
)
from slipstream.logs import logger
from slipstream.prefetch import Prefetcher
from slipstream.prefetch.iteration import EpochCursor, LiveIteration, LoaderIteration
from slipstream.prefetch.world import (
    check_same_seed,
    default_num_workers,
    resolve_device,
    resolve_world,
)
from slipstream.remote_cache import RemoteCache
from slipstream.renamed import renamed_argument
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

    Which epoch an iteration runs (``docs/epochs.md``), as FFCV users expect:

    | before ``iter(loader)`` | the iteration runs |
    | --- | --- |
    | nothing (a new loader) | epoch 0 |
    | a pass of epoch ``e`` ran to its end | epoch ``e + 1`` |
    | a pass of ``e`` was left early (``break``, an error, a newer ``iter``) | ``e + 1`` |
    | ``load_state_dict(state of e at sample s)`` | the rest of ``e``, from ``s`` |
    | that, then ``set_epoch(e)`` | the rest of ``e`` (the resume point is kept) |
    | that, then ``set_epoch(f)``, ``f != e`` | ``f`` from its start (a warning) |
    | ``set_epoch(e)`` (each epoch, as usual) | epoch ``e`` from its start |

    :meth:`state_dict` describes the pass in progress, or the one left early (so a checkpoint
    written after a ``break`` resumes the rest of that epoch), else where the next one starts.

    Args:
        dataset: The dataset to read.
        batch_size: Samples per batch.
        pipelines: Output name -> pipeline (reading the image field of that name, or its
            ``field``), e.g. ``supervised_train(224)`` or ``dino()``. A pipeline is an
            :class:`ImagePipeline`, a stage such as ``DecodeRandomResizedCrop(224)`` (uint8),
            or a list of stages: a decode stage first, then ``Normalize()`` or
            :mod:`slipstream.augment` transforms
            (:func:`~slipstream.pipelines.compose.to_pipelines`). One pipeline without
            a dict is that of ``image_field``.
        crop_size: Instead of ``pipelines``: the output side of ``supervised_train(crop_size)``
            (``crop_mode="random"``: random resized crop and flip) or
            ``supervised_val(crop_size)`` (``"center"``), ImageNet-normalized float32.
        crop_mode: ``"random"`` (default) or ``"center"``; only with ``crop_size``.
        seed: Seed of the shuffle order and of every random crop and flip.
        shuffle: Shuffle the order each epoch (keyed by ``seed`` and the epoch).
        order: ``"random"``, ``"sequential"`` or ``"quasi_random"`` (FFCV's ``OrderOption``
            names; default: ``"random"``, or ``"sequential"`` with ``shuffle=False``).
        drop_last: Drop the last partial batch (and, distributed, the tail that does
            not divide evenly across ranks instead of padding it).
        indices: Only draw these sample ids (e.g. a class subset).
        distributed: Shard each epoch across ranks like ``DistributedSampler``: every
            rank gets ``ceil(N / world_size)`` samples, the shuffled order padded by
            repeating its start. ``"auto"`` (default): shard across an initialized
            ``torch.distributed`` process group of more than one rank, or by ``rank`` /
            ``world_size`` where given; ``True``: also by ``$RANK`` / ``$WORLD_SIZE``;
            ``False``: every rank reads every sample. Sharded in a process group, the
            first pass checks that every rank has the same ``seed``
            (:func:`~slipstream.prefetch.world.resolve_world`).
        rank: This process's rank (default: the process group's, or ``$RANK``).
        world_size: Number of ranks (default: the process group's, or ``$WORLD_SIZE``).
        device: Output device (default: CUDA when available, else CPU). A bare ``"cuda"``
            (or None) is this rank's GPU, ``cuda:$LOCAL_RANK``, unless the program chose
            one with ``torch.cuda.set_device``; an int ``k`` is ``cuda:k``.
        num_workers: Decode threads (default: the usable cores divided among the ranks on
            this node, :func:`~slipstream.prefetch.world.default_num_workers`). The old
            name ``num_threads=`` still works, with a FutureWarning.
        batches_ahead: Batches prepared ahead of the consumer (default 3). The old name
            ``prefetch=`` still works, with a FutureWarning.
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
        strict: Make libjpeg's corrupt-data warnings ("Corrupt JPEG data: bad Huffman
            code", ...: the JPEG decodes, as garbage) a failure of the sample, handled by
            ``on_error`` (its pixels are not zeroed on the native engine: mask with
            ``"valid"``). Default False: such samples are kept as decoded. Either way
            they are counted per epoch in :attr:`stats` (``jpeg_warnings``; the CPU
            engines, native and DALI CPU, report warnings; nvJPEG does not).
        as_tuple: Yield ``(images, labels)`` tuples instead of dicts: every image output
            in pipeline order, then the ``label`` field (so ``(view_0, view_1, labels)``
            with two outputs).
        after_batch_transforms: Callables applied in order to each batch dict (after the
            pipelines, before ``as_tuple``); each receives and returns the batch dict
            (e.g. Mixup / CutMix on images and labels; :class:`~slipstream.augment.Mixup`
            and :class:`~slipstream.augment.CutMix` also work as they are, keyed by seed,
            epoch and sample ids).
        exclude_fields: Numeric fields not to return (instead of ``fields``).
        image_field: The image field of ``crop_size`` or of a pipeline given without a
            dict (default ``"image"``).
        verbose: Log (at INFO, once per process) the rank and world size taken from the
            process group.
        remote_cache: ``s3://bucket/prefix`` to share the dataset's cache through (the
            original slipstream's argument). Pass it to :class:`SlipstreamDataset` to
            download a shared cache instead of building it; here, a cache that is not
            shared yet is uploaded (by global rank 0) and files other nodes added are
            downloaded, as :meth:`sync_remote_cache` does (a failure is logged).
        remote_cache_endpoint_url: S3-compatible endpoint for ``remote_cache``.
        **renamed: The old names ``num_threads`` and ``prefetch``. The original
            slipstream's ``force_rebuild``, ``presync_s3*`` and ``use_threading`` raise a
            TypeError naming where that lives here.

    Example:
        >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
        >>> loader = SlipstreamLoader(ds, 256, supervised_train(224), seed=0)  # doctest: +SKIP
        >>> val = SlipstreamLoader(ds, crop_size=224, crop_mode="center")  # doctest: +SKIP
        >>> for epoch in range(3):  # doctest: +SKIP
        ...     loader.set_epoch(epoch)
        ...     for batch in loader:
        ...         images, labels = batch["image"], batch["label"]
    """

    def __init__(
        self,
        dataset: SlipstreamDataset,
        batch_size: int = 256,
        pipelines: Any = None,
        *,
        crop_size: int | None = None,
        crop_mode: str | None = None,
        seed: int = 0,
        shuffle: bool = True,
        order: str | None = None,
        drop_last: bool = False,
        indices: np.ndarray | list[int] | None = None,
        distributed: bool | str = "auto",
        rank: int | None = None,
        world_size: int | None = None,
        device: str | int | torch.device | None = None,
        num_workers: int | None = None,
        batches_ahead: int | None = None,
        backend: str | None = None,
        decode_device: str | None = None,
        fields: list[str] | None = None,
        image_format: str = "jpeg",
        on_error: str = "raise",
        strict: bool = False,
        as_tuple: bool = False,
        after_batch_transforms: list[Callable[[dict], dict]] | None = None,
        exclude_fields: list[str] | None = None,
        image_field: str | None = None,
        verbose: bool = True,
        remote_cache: str | None = None,
        remote_cache_endpoint_url: str | None = None,
        **renamed: Any,
    ) -> None:
        """Validate the arguments, pick the decode engine and open the stores."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        old = renamed.pop("num_threads", None)
        num_workers = renamed_argument("num_threads", "num_workers", old, num_workers)
        old = renamed.pop("prefetch", None)
        batches_ahead = renamed_argument("prefetch", "batches_ahead", old, batches_ahead)
        reject_original_arguments(renamed)
        batches_ahead = 3 if batches_ahead is None else batches_ahead
        batches_ahead = check_int("batches_ahead", batches_ahead, minimum=1)
        num_workers = check_int("num_workers", num_workers, minimum=1, optional=True)
        rank = check_int("rank", rank, minimum=0, optional=True)
        world_size = check_int("world_size", world_size, minimum=1, optional=True)
        shuffle, drop_last = check_bool("shuffle", shuffle), check_bool("drop_last", drop_last)
        self.as_tuple, verbose = check_bool("as_tuple", as_tuple), check_bool("verbose", verbose)
        check_choice("on_error", on_error, ("raise", "skip"))
        if not isinstance(dataset, SlipstreamDataset):
            raise TypeError(f"dataset must be a SlipstreamDataset, got {type(dataset).__name__}")
        self.dataset, self.cache = dataset, dataset.cache
        if remote_cache is not None:
            share_dataset_cache(dataset, remote_cache, remote_cache_endpoint_url)
        self.pipelines = image_pipelines(pipelines, crop_size, crop_mode, image_field)
        self.device = resolve_device(device)
        fields = returned_fields(self.cache.field_types, NUMBER_DTYPES, fields, exclude_fields)
        self._fields = FieldOutput(self.cache, fields, self.device, NUMBER_DTYPES)
        self.fields = self._fields.fields
        self._policy = FailurePolicy(on_error, self._fields.describe, check_bool("strict", strict))
        self.stats: dict[int, EpochStats] = {}
        """Epoch -> :class:`~slipstream.decode.policy.EpochStats` (``jpeg_warnings``,
        ``failed``) of the passes run so far (a pass from an epoch's start resets it)."""
        spec, self.decode_device = select_engine(backend, decode_device, image_format, self.device)
        self._engine_class = spec.engine_class()  # a missing DALI fails here, naming the extra
        self.backend, self.engine = spec.backend, spec.name
        self.image_format, self.on_error = image_format, on_error
        self.num_workers = num_workers or default_num_workers()
        self.rank, self.world_size = resolve_world(distributed, rank, world_size, log=verbose)
        self.batch_size, self.seed, self.batches_ahead = int(batch_size), int(seed), batches_ahead
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
            prefetch=batches_ahead,
        )
        self.indices = self.prefetcher.indices
        self._outputs = {name: ImageOutput(p, self.device) for name, p in self.pipelines.items()}
        self._decoder: DecodeStage | None = None
        self._after_batch = AfterBatch(after_batch_transforms, next(iter(self.pipelines)))
        if self.as_tuple and ("label" not in self.fields or on_error == "skip"):
            raise ValueError(
                "as_tuple=True yields (images..., labels): it needs a 'label' field (fields: "
                f"{self.fields}) and on_error='raise' (skipped samples need the batch's 'valid')"
            )
        self._cursor, self._seed_checked = EpochCursor(), False
        self._live = LiveIteration()
        _OPEN_LOADERS.add(self)

    def __repr__(self) -> str:
        """What this loader streams and how: source, cache, samples, outputs, engine, device."""
        pipelines = ", ".join(f"{name}={p!r}" for name, p in self.pipelines.items())
        return (
            f"SlipstreamLoader(source={self.dataset.source!r}, cache={str(self.cache.path)!r}, "
            f"samples={len(self.indices) if self.indices is not None else len(self.cache)}, "
            f"batch_size={self.batch_size}, batches={len(self)}, fields={self.fields}, "
            f"pipelines={{{pipelines}}}, engine={self.engine!r}, backend={self.backend!r}, "
            f"decode_device={self.decode_device!r}, image_format={self.image_format!r}, "
            f"device='{self.device}', threads={self.num_workers}, seed={self.seed}, "
            f"epoch={self.epoch}, rank={self.rank}/{self.world_size})"
        )

    def sync_remote_cache(self) -> tuple[int, int]:
        """Upload files added to the cache since it was shared, download others' new files.

        Call it after adding indexes or YUV420 companions so other machines get them
        (:meth:`SlipstreamDataset.sync_remote_cache`).

        Returns:
            ``(downloaded, uploaded)`` file counts; ``(0, 0)`` without a remote cache.
        """
        return self.dataset.sync_remote_cache()

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
        """Run ``epoch`` next, from its start (order, crops and flips depend on it).

        With the epoch of a state given to :meth:`load_state_dict`, the resume point is kept;
        another epoch drops it (logged as a warning).
        """
        epoch = check_int("epoch", epoch, minimum=0)
        loaded = (self._cursor.epoch, self._cursor.samples)
        if self._cursor.set_epoch(epoch):
            logger.warning(
                "set_epoch(%d) drops the resume point loaded for epoch %d (sample %d): "
                "call set_epoch(%d) to resume there",
                epoch,
                *loaded,
                loaded[0],
            )

    def state_dict(self) -> dict[str, Any]:
        """Position to resume from, and what it is valid for.

        Returns:
            ``epoch``, ``samples`` (consumed in that epoch on this rank), ``batch`` (batches
            yielded), ``batch_size``, ``seed``, ``dataset`` (the content name of the dataset)
            and ``order`` (indices digest, world size, rank, drop_last, shuffle, samples per
            epoch). Plain JSON-serializable values.
        """
        return self._cursor.state_dict(self.prefetcher, self.batch_size, self.seed)

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
        self._cursor.load_state_dict(state, self.prefetcher, self.batch_size, self.seed)

    def close(self) -> None:
        """Release the live iteration, the decode engine and the gathered-batch slots.

        Stops the iteration's threads; drops the engine's threads, pixel buffers (pinned
        memory on a GPU machine) and DALI pipeline. Idempotent; iterating again starts
        afresh (a new engine). Called on ``with`` exit and when the loader is collected.
        """
        live = getattr(self, "_live", None)  # absent when __init__ failed
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
                self.num_workers,
                self.batches_ahead,
                self.decode_device,
                self.image_format,
            )
            self._decoder = self._engine_class(options)
            self.prefetcher.reserve(self._decoder.slots_in_flight)
        return self._decoder

    def _to_batch(
        self, decoded: DecodedBatch, epoch: int, corrupt: list[tuple[int, str, str]] = ()
    ) -> dict[str, Any] | tuple[torch.Tensor, ...]:
        ids = decoded.sample_ids
        stats = self.stats.setdefault(epoch, EpochStats())
        decoded.failures = self._policy.apply_strict(decoded.failures, stats)
        decoded.failures = self._policy.merge(decoded.failures, list(corrupt))
        stats.failed += len({f.position for f in decoded.failures})
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
        batch = self._after_batch(batch, self.seed, epoch)
        return batch_tuple(batch, list(self.pipelines)) if self.as_tuple else batch

    def __iter__(self) -> LoaderIteration:
        """Yield the batches of one epoch (which one: the rules in the class docstring).

        One iteration is live at a time: a new ``iter(loader)`` closes the previous one
        (its next use raises :class:`LoaderIterationClosed`); having been left early, the
        next iteration runs the next epoch.
        """
        return self._live.start(self._batches())

    def _batches(self) -> Generator[dict[str, Any] | tuple[torch.Tensor, ...], None, None]:
        engine = self._engine()
        if not self._seed_checked:  # every rank's first pass: one all_gather in a group
            check_same_seed(self.seed, self.world_size, self.device)
            self._seed_checked = True
        token, epoch, start, _ = self._cursor.begin()
        if start == 0:
            self.stats[epoch] = EpochStats()
        stream = self.prefetcher.start(epoch, start)
        decoded = engine.batches(stream)
        try:
            for item in decoded:
                batch = self._to_batch(item, epoch, stream.corrupt_items(item.sample_ids))
                self._cursor.advance(token, len(item.sample_ids))
                yield batch
            self._cursor.finish(token)
        except BatchDecodeError as error:
            failures = self._policy.apply_strict(error.failures, EpochStats())  # not counted
            if not failures:
                raise
            raise self._policy.error(error.sample_ids, failures) from error
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

_OPEN_LOADERS: weakref.WeakSet[SlipstreamLoader] = weakref.WeakSet()


@atexit.register
def _close_open_loaders() -> None:
    """Stop every loader's threads at interpreter exit, while they can still be joined.

    Atexit runs before finalization freezes daemon threads: a decode thread that finalization
    catches inside the C++ kernel (GIL released) aborts the process ("terminate called
    without an active exception") when it takes the GIL back.
    """
    for loader in list(_OPEN_LOADERS):
        try:
            loader.close()
        except Exception:  # noqa: BLE001, S110 - exiting: nothing to report to
            pass


def share_dataset_cache(dataset: SlipstreamDataset, url: str, endpoint_url: str | None) -> None:
    """Attach ``remote_cache=`` given to the loader to its dataset, then sync (logged)."""
    if dataset.remote_cache is None or dataset.remote_cache.url != url.rstrip("/"):
        dataset.remote_cache = RemoteCache(url, endpoint_url=endpoint_url)
    try:
        dataset.sync_remote_cache()
    except Exception as exc:  # training goes on with the local cache, as in the original
        logger.warning("slipstream: could not sync the cache with %s: %s", url, exc)
