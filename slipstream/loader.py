"""``SlipstreamLoader``: a drop-in iterator of training batches for PyTorch loops."""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from slipstream.cache.format import IMAGE_FORMATS, NUMBER_DTYPES
from slipstream.cache.gather import gather_bytes
from slipstream.dataset import SlipstreamDataset
from slipstream.pipelines.spec import ImagePipeline, decode_groups
from slipstream.prefetch import (
    BatchSlot,
    DecodedBatch,
    StageThread,
    allocate_slot,
)
from slipstream.prefetch.stages import DecodeStage, get_until_stopped
from slipstream.sampling import epoch_order, flips, num_batches
from slipstream.transforms.output import ImageOutput

BACKENDS = ("native", "dali")
DECODE_DEVICES = ("cpu", "mixed", "cuda", "torch")
TORCH_DECODE_DEVICES = ("cuda", "torch")  # slipstream.yuv420_torch on the output device
DALI_EXTRA_HINT = "pip install 'slipstream[dali]'"
MIXED_YUV420_MESSAGE = (
    "image_format='yuv420' cannot decode with decode_device='mixed': nvJPEG reads JPEG only. "
    "Use decode_device='cpu' (slipstream's DALI operator reads YUV420 items), or "
    "image_format='jpeg' with decode_device='mixed' (nvJPEG on the GPU)"
)


def _resolve_world(distributed: bool, rank: int | None, world_size: int | None) -> tuple[int, int]:
    if not distributed:
        return 0, 1
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank = torch.distributed.get_rank() if rank is None else rank
            world_size = torch.distributed.get_world_size() if world_size is None else world_size
        else:
            rank = int(os.environ.get("RANK", 0)) if rank is None else rank
            world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return rank, world_size


def _import_dali_backend() -> type:
    """The DALI decode stage class, imported lazily so ``import slipstream`` never loads DALI."""
    try:
        from slipstream.dali.loader_backend import DaliBackend
    except ImportError as exc:
        raise ImportError(
            f"SlipstreamLoader(backend='dali') needs NVIDIA DALI ({exc}); install it with "
            f"`{DALI_EXTRA_HINT}`"
        ) from exc
    return DaliBackend


def _resolve_decode_device(
    decode_device: str | None, backend: str, device: torch.device, image_format: str
) -> str:
    """The decode device for these arguments (the default where ``None``), checked."""
    if decode_device is not None and decode_device not in DECODE_DEVICES:
        raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
    if decode_device in TORCH_DECODE_DEVICES:
        _check_torch_decode(decode_device, backend, image_format, device)
        return decode_device
    if backend == "dali" and image_format == "yuv420":
        if decode_device == "mixed":
            raise ValueError(MIXED_YUV420_MESSAGE)
        return "cpu"  # the default on a GPU is nvJPEG, which cannot read YUV420
    if decode_device is None:
        return "mixed" if backend == "dali" and device.type == "cuda" else "cpu"
    if decode_device == "mixed" and (backend != "dali" or device.type != "cuda"):
        raise ValueError(
            "decode_device='mixed' (nvJPEG) needs backend='dali' and a CUDA device, got "
            f"backend={backend!r}, device={str(device)!r}"
        )
    return decode_device


def _check_torch_decode(
    decode_device: str, backend: str, image_format: str, device: torch.device
) -> None:
    """The torch YUV420 decode ("cuda" / "torch") needs native + yuv420 (+ CUDA for "cuda")."""
    if image_format != "yuv420":
        raise ValueError(
            f"decode_device={decode_device!r} decodes YUV420 items with torch; it needs "
            f"image_format='yuv420', got {image_format!r} (JPEG on the GPU: backend='dali', "
            "decode_device='mixed')"
        )
    if backend != "native":
        raise ValueError(
            f"decode_device={decode_device!r} runs in the native backend: pass "
            f"backend='native', got backend={backend!r}"
        )
    if decode_device == "cuda" and device.type != "cuda":
        raise ValueError(
            f"decode_device='cuda' needs a CUDA output device, got device={str(device)!r} "
            "(decode_device='torch' runs the same torch decode on any device)"
        )


def default_backend() -> str:
    """``"dali"`` where NVIDIA DALI is installed, else ``"native"`` (checked without importing)."""
    try:
        found = importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        found = False
    return "dali" if found else "native"


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class SlipstreamLoader:
    """Streams batches of decoded, cropped images and their fields.

    Each batch is a dict: one tensor ``[B, 3, H, W]`` per pipeline output (uint8 or
    normalized float, channels-last memory order, on ``device``), an int64 tensor per
    numeric field (``label``, ``index``, ...), and a list of str per requested string
    field. Crops and flips are pure functions of ``(seed, epoch, sample id)``, so a
    sample's augmentation does not depend on batch size, world size, shuffle order,
    or resuming mid-epoch.

    On the CPU, uint8 outputs are views of reused buffers: a batch stays valid until
    the next one is drawn (``.clone()`` to keep it), as in FFCV. On a GPU, pixels are
    decoded into pinned memory and copied without blocking.

    Args:
        dataset: The dataset to read.
        batch_size: Samples per batch.
        pipelines: Output name -> :class:`ImagePipeline` (reading the image field of that
            name, or its ``field``), e.g. ``supervised_train(224)`` or a multi-view preset
            such as ``dino()``.
        seed: Seed of the shuffle order and of every random crop and flip.
        shuffle: Shuffle the order each epoch (keyed by ``seed`` and the epoch).
        drop_last: Drop the last partial batch (and, distributed, the tail that does
            not divide evenly across ranks instead of padding it).
        indices: Only draw these sample ids (e.g. a class subset).
        distributed: Shard each epoch across ranks like ``DistributedSampler``: every
            rank gets ``ceil(N / world_size)`` samples, the shuffled order padded by
            repeating its start.
        rank: This process's rank (default: from ``torch.distributed`` or ``$RANK``).
        world_size: Number of ranks (default: from ``torch.distributed`` or
            ``$WORLD_SIZE``).
        device: Output device (default: CUDA when available, else CPU).
        num_threads: Decode threads (default: all usable cores).
        prefetch: Batches prepared ahead of the consumer.
        backend: Decode engine: ``"dali"`` (a DALI pipeline fed from the gather stage,
            with slipstream's operator or nvJPEG, see ``decode_device``; the default where
            ``pip install 'slipstream[dali]'`` is installed) or ``"native"`` (the same C++
            kernel on slipstream's own thread pool; the default without DALI). With
            ``decode_device="cpu"`` both give bit-identical batches.
        decode_device: Where the DALI backend decodes: ``"cpu"`` (slipstream's operator,
            bit-identical to the native backend) or ``"mixed"`` (nvJPEG region decode on
            the GPU, then GPU resize and one fused flip/normalize/cast; a few levels from
            the CPU pixels). Default: ``"mixed"`` for ``backend="dali"`` with a CUDA
            ``device``, else ``"cpu"``. With ``image_format="yuv420"`` and
            ``backend="native"``: ``"cuda"`` decodes on the (CUDA) output device with the
            vectorized torch path of :mod:`slipstream.yuv420_torch` (only each window's
            source rows and columns cross to the GPU; the C++ kernel's integer arithmetic,
            bit-identical to ``"cpu"`` in the CPU tests),
            ``"torch"`` runs that same path on whatever ``device`` is (CPU included; for
            tests and CPU-only comparisons).
        fields: Non-image fields to return (default: every numeric field).
        image_format: What the decoders read: ``"jpeg"`` (the image fields themselves) or
            ``"yuv420"`` (each field's YUV420 companion, built on first use by
            :func:`slipstream.cache.yuv420.build_yuv420`, then opened: about 3.5x the JPEG
            bytes, decoded without entropy decoding), on either backend's CPU decode
            (``decode_device="cpu"``; nvJPEG reads JPEG only).

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
    ) -> None:
        """Validate the arguments and prepare the per-field arrays."""
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        if backend is None:
            backend = default_backend()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        if backend == "dali":
            _import_dali_backend()
        if not pipelines:
            raise ValueError("pipelines is empty: pass e.g. supervised_train(224)")
        self.dataset = dataset
        self.cache = dataset.cache
        self.batch_size = int(batch_size)
        self.pipelines = dict(pipelines)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        if (
            self.indices is not None
            and self.indices.size
            and (self.indices.min() < 0 or self.indices.max() >= len(self.cache))
        ):
            raise IndexError(f"indices must lie in [0, {len(self.cache)})")
        self.rank, self.world_size = _resolve_world(distributed, rank, world_size)
        self.device = torch.device(device) if device is not None else _default_device()
        self.num_threads = num_threads or len(os.sched_getaffinity(0))
        self.prefetch = prefetch
        self.backend = backend
        self.decode_device = _resolve_decode_device(
            decode_device, backend, self.device, image_format
        )
        self.image_format = image_format
        self.epoch = 0
        self._batches_done = 0
        self._resume_batch = 0

        types = self.cache.field_types
        # output name -> the image field it reads (several outputs may share one: views)
        self._sources = {name: p.field or name for name, p in self.pipelines.items()}
        for name, source in self._sources.items():
            if types.get(source) != "ImageBytes":
                raise KeyError(
                    f"pipeline output {name!r} reads {source!r}, which is not an image field; "
                    f"image fields: {self.cache.image_fields}"
                )
        if fields is None:
            fields = [name for name, kind in types.items() if kind in NUMBER_DTYPES]
        for name in fields:
            if name not in types:
                raise KeyError(f"unknown field {name!r}; fields: {list(types)}")
        self.fields = list(fields)

        by_field: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        for source in set(self._sources.values()):
            data, meta = self.cache.data(source), self.cache.meta(source)
            if image_format == "yuv420":
                from slipstream.cache.yuv420 import build_yuv420

                companion = build_yuv420(self.cache, source)
                data, meta = companion.data, companion.meta
            by_field[source] = (
                np.asarray(data),
                {
                    key: np.ascontiguousarray(meta[key])
                    for key in ("data_ptr", "data_size", "height", "width")
                },
            )
        self._image_data = {name: by_field[source][0] for name, source in self._sources.items()}
        self._image_meta = {name: by_field[source][1] for name, source in self._sources.items()}
        self._outputs = {name: ImageOutput(p, self.device) for name, p in self.pipelines.items()}
        # outputs decoded together (same field); only a group's lead gathers bytes
        self._groups = decode_groups(self.pipelines)
        self._leads = {group[0] for group in self._groups}
        self._lead_of = {name: group[0] for group in self._groups for name in group}
        self._slots: list[BatchSlot] = []
        self._backend_impl: DecodeStage | None = None

    # ------------------------------------------------------------------ order
    def _epoch_ids(self, epoch: int) -> np.ndarray:
        return epoch_order(
            len(self.cache),
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            indices=self.indices,
            rank=self.rank,
            world_size=self.world_size,
            drop_last=self.drop_last,
        )

    def samples_per_epoch(self) -> int:
        """Samples this rank sees per epoch (padded or trimmed to split evenly across ranks)."""
        total = len(self.cache) if self.indices is None else len(self.indices)
        if self.drop_last:
            return total // self.world_size
        return -(-total // self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return num_batches(self.samples_per_epoch(), self.batch_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration runs (order, crops and flips depend on it)."""
        self.epoch = int(epoch)
        self._resume_batch = 0

    def state_dict(self) -> dict[str, int]:
        """Position to resume from: the epoch and the batches already yielded in it."""
        return {"epoch": self.epoch, "batch": self._batches_done, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next iteration yields exactly the batches the saved run had left."""
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(
                f"state was saved with seed {state['seed']}, this loader has {self.seed}"
            )
        self.epoch = int(state["epoch"])
        self._resume_batch = int(state["batch"])
        self._batches_done = self._resume_batch

    # ------------------------------------------------------------------ stages
    def _describe(self, sample_id: int) -> str:
        if self.cache.field_types.get("path") == "str":
            return self.cache.string("path", sample_id)
        return f"row {sample_id} of {self.cache.path}"

    def _setup(self) -> None:
        if self._backend_impl is not None:
            return
        fields = dict(self._sources)
        if self.backend == "dali":
            self._backend_impl = _import_dali_backend()(
                self.batch_size,
                self.num_threads,
                self.pipelines,
                fields,
                self._describe,
                self.device,
                self.decode_device,
                decode_groups(self.pipelines, by_size=True),
                self._lead_of,
                image_format=self.image_format,
                image_meta=self._image_meta,
            )
            from slipstream.dali.loader_backend import PREFETCH_QUEUE_DEPTH

            # gathered queue + the slot being gathered + the batches DALI holds
            self._allocate_slots(self.prefetch + 1 + PREFETCH_QUEUE_DEPTH, with_pixels=False)
        else:
            from slipstream.native.backend import NativeBackend

            torch_decode = self.decode_device in TORCH_DECODE_DEVICES

            self._backend_impl = NativeBackend(
                self.num_threads,
                fields,
                self._describe,
                self.image_format,
                self._image_meta,
                self._groups,
                decode_device=self.device if torch_decode else None,
                output_sizes={name: p.crop.output_size for name, p in self.pipelines.items()},
            )
            # + the slot being decoded, and the one whose pixels the user holds
            self._allocate_slots(self.prefetch + 2, with_pixels=not torch_decode)

    def _allocate_slots(self, num_slots: int, with_pixels: bool) -> None:
        """Allocate the ring of batch slots once (encoded bytes sized for the largest batch)."""
        if self._slots:
            return
        output_sizes = {name: p.crop.output_size for name, p in self.pipelines.items()}
        capacity = {}
        for name, meta in self._image_meta.items():
            sizes = np.sort(meta["data_size"])
            capacity[name] = int(sizes[-self.batch_size :].sum()) if name in self._leads else 0
        pin = self.device.type == "cuda" and with_pixels
        self._slots = [
            allocate_slot(
                self.batch_size, capacity, output_sizes, pin_memory=pin, with_pixels=with_pixels
            )
            for _ in range(num_slots)
        ]

    def _start_gather(
        self, epoch: int, start: int
    ) -> tuple[queue.Queue, queue.Queue, threading.Event, StageThread]:
        """Start the gather stage of an epoch: ``(gathered, free, stop, thread)``."""
        stop = threading.Event()
        free: queue.Queue = queue.Queue()
        for slot in self._slots:
            slot.wait_until_reusable()
            free.put(slot)
        gathered: queue.Queue = queue.Queue(maxsize=self.prefetch)
        thread = StageThread(
            "slipstream-gather",
            self._plan(epoch, start),
            lambda item: self._gather(free, stop, item),
            gathered,
            stop,
        )
        thread.start()
        return gathered, free, stop, thread

    def _plan(self, epoch: int, start_batch: int) -> Iterator[tuple[int, int, np.ndarray]]:
        ids = self._epoch_ids(epoch)
        for b in range(start_batch, num_batches(len(ids), self.batch_size, self.drop_last)):
            yield epoch, b, ids[b * self.batch_size : (b + 1) * self.batch_size]

    def _gather(self, free: queue.Queue, stop: threading.Event, item: tuple) -> BatchSlot:
        epoch, batch_index, ids = item
        slot: BatchSlot = get_until_stopped(free, stop)
        n = len(ids)
        slot.count, slot.epoch, slot.batch_index = n, epoch, batch_index
        slot.sample_ids[:n] = ids
        for name, pipeline in self.pipelines.items():
            meta, image = self._image_meta[name], slot.images[name]
            if name in self._leads:  # the other members of its group decode these bytes
                sizes = image.sizes[:n]
                np.take(meta["data_size"], ids, out=sizes)
                gather_bytes(
                    self._image_data[name],
                    meta["data_ptr"][ids],
                    sizes,
                    image.encoded,
                    image.offsets[:n],
                )
            image.windows[:n] = pipeline.crop.windows(
                meta["height"][ids],
                meta["width"][ids],
                ids,
                seed=self.seed,
                epoch=epoch,
                view=pipeline.view,
            )
            if pipeline.flip_probability > 0:
                image.flips[:n] = flips(
                    ids,
                    seed=self.seed,
                    epoch=epoch,
                    view=pipeline.view,
                    probability=pipeline.flip_probability,
                )
            else:
                image.flips[:n] = 0
        return slot

    def _to_batch(self, decoded: DecodedBatch, epoch: int) -> dict[str, Any]:
        ids = decoded.sample_ids
        batch: dict[str, Any] = {}
        for name, pipeline in self.pipelines.items():
            images = self._outputs[name](decoded.images[name], decoded.normalized)
            if pipeline.augment is not None:
                from slipstream.augment.keys import BatchKey

                key = BatchKey(self.seed, epoch, ids, view=pipeline.view)
                images = pipeline.augment(images, key)
            batch[name] = images
        if self.device.type == "cuda" and decoded.slot is not None:
            event = torch.cuda.Event()
            event.record()
            decoded.slot.copy_done = event
        for name in self.fields:
            kind = self.cache.field_types[name]
            if kind == "str":
                batch[name] = [self.cache.string(name, int(i)) for i in ids]
            else:
                values = torch.from_numpy(np.asarray(self.cache.numbers(name)[ids]))
                batch[name] = values.to(self.device, non_blocking=True)
        if "index" not in batch:
            batch["index"] = torch.from_numpy(ids).to(self.device, non_blocking=True)
        return batch

    # ------------------------------------------------------------------ iterate
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield the batches of the current epoch, then advance the epoch."""
        self._setup()
        epoch, start = self.epoch, self._resume_batch
        self._resume_batch = 0
        self._batches_done = start
        gathered, free, stop, gather = self._start_gather(epoch, start)
        decoded = self._backend_impl.batches(gathered, free, stop, self.prefetch)
        try:
            for item in decoded:
                batch = self._to_batch(item, epoch)
                self._batches_done += 1
                yield batch
            self.epoch = epoch + 1
            self._batches_done = 0
        finally:
            stop.set()
            decoded.close()
            gather.join()
