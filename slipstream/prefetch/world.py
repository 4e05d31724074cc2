"""Where this process sits in a torchrun / Slurm job: its shard, its decode threads, its GPU.

Defaults a loader takes from the launcher, each a pure function of its inputs (environment
variables, an initialized process group) so it can be checked without one:

* :func:`resolve_world`: ``(rank, world_size)`` of the shard; ``distributed="auto"`` shards
  across an initialized ``torch.distributed`` process group of more than one rank.
* :func:`default_num_workers`: usable cores divided among the ranks on this node
  (``$LOCAL_WORLD_SIZE`` from torchrun, else Slurm's tasks per node), at least 1.
* :func:`resolve_device`: a bare ``"cuda"`` means this rank's GPU, ``cuda:$LOCAL_RANK``.
* :func:`check_same_seed`: every rank of the group uses the same seed (one ``all_gather``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from slipstream.errors import SlipstreamError
from slipstream.logs import logger

__all__ = [
    "SeedMismatchError",
    "WorldError",
    "check_same_seed",
    "default_num_workers",
    "local_ranks",
    "process_group_world",
    "resolve_device",
    "resolve_world",
]

_FROM_TORCH: object = object()
_LOGGED: set[tuple[int, int]] = set()


class WorldError(SlipstreamError, ValueError):
    """``distributed`` / ``rank`` / ``world_size`` contradict each other or the process group."""


class SeedMismatchError(SlipstreamError, ValueError):
    """The ranks of one sharded loader were given different seeds."""


def process_group_world() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the initialized ``torch.distributed`` group, else None."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def resolve_world(
    distributed: bool | str = "auto",
    rank: int | None = None,
    world_size: int | None = None,
    *,
    group: tuple[int, int] | None | object = _FROM_TORCH,
    environ: Mapping[str, str] | None = None,
    log: bool = True,
) -> tuple[int, int]:
    """``(rank, world_size)`` of this process's shard of each epoch.

    * ``"auto"``: explicit ``rank`` / ``world_size`` where given (the other one from the
      process group or ``$RANK`` / ``$WORLD_SIZE``); else the initialized process group's
      (logged once); else ``(0, 1)``.
    * ``True``: as ``"auto"``, but without a process group ``$RANK`` / ``$WORLD_SIZE`` apply
      (torchrun's; else Slurm's ``$SLURM_PROCID`` / ``$SLURM_NTASKS``).
    * ``False``: ``(0, 1)``: every rank reads every sample.

    Args:
        distributed: ``"auto"``, ``True`` or ``False``.
        rank: This process's rank, or None.
        world_size: Number of ranks, or None.
        group: ``(rank, world_size)`` of the process group, None for none (default: the
            initialized ``torch.distributed`` group, if any).
        environ: Environment to read (default ``os.environ``).
        log: Log (once per process, at INFO) the rank and world size taken from the group.

    Raises:
        WorldError: ``distributed=False`` with ``world_size > 1`` or ``rank > 0``; ``rank``
            not below ``world_size``; explicit values that disagree with the group.
    """
    if distributed not in ("auto", True, False):
        raise WorldError(f"distributed must be 'auto', True or False, got {distributed!r}")
    environ = os.environ if environ is None else environ
    group = process_group_world() if group is _FROM_TORCH else group
    if distributed is False:
        if (world_size or 1) > 1 or (rank or 0) > 0:
            raise WorldError(
                f"distributed=False reads every sample on every rank, but rank={rank}, "
                f"world_size={world_size} ask for a shard: drop distributed=False to shard, "
                "or drop rank/world_size"
            )
        return 0, 1
    explicit = rank is not None or world_size is not None
    if group is not None:
        group_rank, group_world = group  # type: ignore[misc]
        pairs = (("rank", rank, group_rank), ("world_size", world_size, group_world))
        for name, given, actual in pairs:
            if given is not None and given != actual:
                raise WorldError(
                    f"{name}={given} disagrees with the initialized process group "
                    f"(rank {group_rank} of {group_world}): leave {name} out to use the group's"
                )
        if log and group_world > 1 and (group_rank, group_world) not in _LOGGED:
            _LOGGED.add((group_rank, group_world))
            logger.info(
                "sharding each epoch across the process group: rank %d of %d",
                group_rank,
                group_world,
            )
        return group_rank, group_world
    if distributed == "auto" and not explicit:
        return 0, 1
    if rank is None:  # torchrun's, else Slurm's (plain srun)
        rank = _env_int(environ, "RANK", _env_int(environ, "SLURM_PROCID", 0))
    if world_size is None:
        world_size = _env_int(environ, "WORLD_SIZE", _env_int(environ, "SLURM_NTASKS", 1))
    if not 0 <= rank < world_size:
        raise WorldError(
            f"rank {rank} is not in [0, world_size={world_size}): pass world_size= with rank= "
            "(or initialize the torch.distributed process group first)"
        )
    return rank, world_size


def check_same_seed(seed: int, world_size: int, device: torch.device | None = None) -> None:
    """Check that every rank of the initialized process group uses ``seed`` (collective).

    Every rank of a sharded loader must call it (one ``all_gather`` of one int64). Does
    nothing without a process group, or when the loader does not shard across it. The
    tensor lives on the CPU where the group has a gloo backend, else (NCCL) on ``device``
    when it is a GPU, else on :func:`resolve_device` ``("cuda")`` (never the default GPU 0
    of every rank, which NCCL refuses).

    Args:
        seed: This rank's seed.
        world_size: The loader's world size.
        device: The loader's output device.

    Raises:
        SeedMismatchError: The ranks' seeds differ; the message lists them.
    """
    group = process_group_world()
    if group is None or world_size <= 1 or group[1] != world_size:
        return
    backend = str(torch.distributed.get_backend()).lower()
    if "gloo" in backend or "nccl" not in backend:
        where = torch.device("cpu")
    else:
        where = device if device is not None and device.type == "cuda" else resolve_device("cuda")
    local = torch.tensor([int(seed)], dtype=torch.int64, device=where)
    gathered = [torch.empty_like(local) for _ in range(world_size)]
    torch.distributed.all_gather(gathered, local)
    seeds = [int(t.item()) for t in gathered]
    if len(set(seeds)) > 1:
        raise SeedMismatchError(
            f"the ranks use different seeds {seeds}: each rank shuffles its own order, so "
            "some samples are never seen and others repeat each epoch. Give every rank the "
            "same seed (seed=rank is the common mistake; augmentations already differ per "
            "sample: they are keyed by sample id)"
        )


def local_ranks(environ: Mapping[str, str] | None = None) -> int:
    """Ranks on this node: ``$LOCAL_WORLD_SIZE``, else Slurm's tasks per node, else 1.

    Slurm's ``$SLURM_NTASKS_PER_NODE`` (``"4"``) or ``$SLURM_TASKS_PER_NODE`` (``"4(x2)"``,
    ``"2(x3),1"``: this node's entry, by ``$SLURM_NODEID``) are read.

    Args:
        environ: Environment to read (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    if "LOCAL_WORLD_SIZE" in environ:
        return max(1, _env_int(environ, "LOCAL_WORLD_SIZE", 1))
    for name in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        if environ.get(name):
            return max(1, _slurm_tasks(environ[name], _env_int(environ, "SLURM_NODEID", 0), name))
    return 1


def default_num_workers(environ: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """Decode threads of one rank: the usable cores divided among this node's ranks.

    Under torchrun, ``cores // $LOCAL_WORLD_SIZE``. Under Slurm without torchrun,
    ``$SLURM_CPUS_PER_TASK`` (capped at the usable cores) where set, since Slurm gives each
    task its share already; else ``cores //`` the tasks per node. At least 1.

    Args:
        environ: Environment to read (default ``os.environ``).
        cores: Usable cores (default: this process's CPU affinity).
    """
    environ = os.environ if environ is None else environ
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    if "LOCAL_WORLD_SIZE" not in environ and environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, min(cores, _env_int(environ, "SLURM_CPUS_PER_TASK", cores)))
    return max(1, cores // local_ranks(environ))


def resolve_device(
    device: str | int | torch.device | None,
    *,
    environ: Mapping[str, str] | None = None,
    cuda_available: bool | None = None,
    device_count: int | None = None,
    current_device: int | None | object = _FROM_TORCH,
) -> torch.device:
    """The output device: a bare ``"cuda"`` is this rank's GPU.

    ``None`` is ``"cuda"`` where CUDA is available, else the CPU. An int ``k`` is
    ``cuda:k``. ``"cuda"`` without an index is ``torch.cuda.current_device()`` where the
    program chose one (``torch.cuda.set_device(k)``, ``k != 0``), else ``cuda:$LOCAL_RANK``
    (``$SLURM_LOCALID`` under Slurm without torchrun; ``cuda:0`` where each rank sees one
    GPU). Anything else is ``torch.device(device)``.

    Args:
        device: What the caller asked for.
        environ: Environment to read (default ``os.environ``).
        cuda_available: Whether CUDA is usable (default: ``torch.cuda.is_available()``).
        device_count: Visible GPUs (default: ``torch.cuda.device_count()``).
        current_device: The device the program selected, or None where CUDA is not
            initialized (default: read from torch).

    Raises:
        WorldError: The local rank has no GPU of its own (more local ranks than GPUs).
    """
    environ = os.environ if environ is None else environ
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if device is None:
        device = "cuda" if cuda_available else "cpu"
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cuda", device)
    resolved = torch.device(device)
    if resolved.type != "cuda" or resolved.index is not None:
        return resolved
    if current_device is _FROM_TORCH:
        initialized = cuda_available and torch.cuda.is_initialized()
        current_device = torch.cuda.current_device() if initialized else None
    if current_device:  # set by the program (0 is also torch's default: not a choice)
        return torch.device("cuda", int(current_device))  # type: ignore[call-overload]
    local = _env_int(environ, "LOCAL_RANK", _env_int(environ, "SLURM_LOCALID", 0))
    count = torch.cuda.device_count() if device_count is None else device_count
    if local == 0 or local < count:
        return torch.device("cuda", local)
    if count == 1:
        return torch.device("cuda", 0)
    raise WorldError(
        f"local rank {local} has no GPU of its own ({count} visible): pass device='cuda:k' "
        "or launch one rank per GPU"
    )


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise WorldError(f"${name} must be an integer, got {value!r}") from None


def _slurm_tasks(value: str, node: int, name: str) -> int:
    """This node's task count in Slurm's compressed form, e.g. ``"2(x3),1"``."""
    counts: list[int] = []
    for part in value.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:\(x(\d+)\))?\s*", part)
        if match is None:
            raise WorldError(f"${name}={value!r} is not Slurm's form '4', '4(x2)' or '2(x3),1'")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts[node] if node < len(counts) else counts[0]
