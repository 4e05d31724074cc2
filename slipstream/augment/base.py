"""The transform base class and the containers: Compose, RandomApply, MultiView.

Every transform works on float image batches ``[B, C, H, W]`` with values in ``0..1``
(see :class:`~slipstream.augment.convert.ToFloatImage` for the loader's uint8 batches) on
any device, in two steps:

* ``make_params(batch, key) -> params``: a dict of tensors with a leading batch dimension
  (on the batch's device), drawn per sample through the :class:`BatchKey`;
* ``apply(batch, params) -> batch``: deterministic; calling it again with the same params
  replays the augmentation exactly (bit-identical on the same device).

``transform(batch, key)`` does both; ``return_params=True`` also returns the params.
Random transforms carry ``p`` and a per-sample boolean ``params["apply"]``: samples where it
is false pass through unchanged. Keyed calls store nothing random on the transform, so
one instance can serve several views or threads, and transforms pickle.

The original slipstream's calling conventions work too:

* ``seed=``: a transform's own seed replaces the key's seed for its draws (as the
  ``Decode*`` stages' ``seed`` replaces the loader's), so its draws are still keyed by
  ``(seed, epoch, sample id, view)``.
* ``t(batch)`` without a key: with ``seed`` set, the key is ``(seed, n, 0..B-1)`` where
  ``n`` counts this instance's key-less calls (reproducible from construction, like the
  original's seeded generator); without ``seed``, a seed is drawn from torch's global RNG.
* ``t.apply_last(batch)`` replays the params of this instance's last call (the original's
  SSL replay; it stores state, so share an instance between threads only with keys and
  :meth:`BatchTransform.apply`).
* ``device=``: accepted by every transform; params are drawn on the host and follow the
  batch to its device, so outputs are always on the batch's device.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from slipstream.augment.keys import AugmentStream, BatchKey

__all__ = [
    "BatchAugment",
    "BatchTransform",
    "Compose",
    "FixedTransform",
    "MultiSample",
    "MultiView",
    "Params",
    "RandomApply",
]

Params = dict[str, Any]
"""Transform parameters: tensors ``[B, ...]`` (or nested Params for containers)."""


def check_probability(p: float) -> float:
    """Validate a probability and return it as a float."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return float(p)


def check_range(name: str, bounds: Sequence[float], positive: bool = False) -> tuple[float, float]:
    """Validate a ``(low, high)`` pair (``low > 0`` if ``positive``); return it as floats."""
    if len(bounds) != 2 or float(bounds[0]) > float(bounds[1]):
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {bounds!r}")
    if positive and float(bounds[0]) <= 0:
        raise ValueError(f"{name} must be positive, got {bounds!r}")
    return float(bounds[0]), float(bounds[1])


def scaled(u: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """Map uniforms in ``[0, 1)`` onto ``[low, high)`` (float64, on the host)."""
    return bounds[0] + (bounds[1] - bounds[0]) * u


def to_batch_device(
    values: torch.Tensor, batch: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Host values (params, constants) to the batch's device, optionally cast first.

    To a GPU the copy goes through pinned memory without blocking, so drawing params never
    makes the host wait for the GPU work already queued.
    """
    if dtype is not None:
        values = values.to(dtype)
    if batch.device.type == "cuda":
        return values.pin_memory().to(batch.device, non_blocking=True)
    return values.to(batch.device)


def per_sample(values: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Host draws ``[B]`` to a tensor on the batch's device, in the batch's dtype."""
    return to_batch_device(values, batch, batch.dtype)


def stand_in(shape: Sequence[int], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A zero-stride tensor with this shape, dtype and device (holds no memory)."""
    return torch.zeros((), dtype=dtype, device=device).expand(*shape)


def select(mask: torch.Tensor, changed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per sample: ``changed`` where ``mask[b]`` is true, else ``original``."""
    return torch.where(mask.view(-1, *([1] * (changed.dim() - 1))), changed, original)


def apply_masked(
    transform: Callable[[torch.Tensor, Params], torch.Tensor],
    batch: torch.Tensor,
    params: Params,
    mask: torch.Tensor,
) -> torch.Tensor:
    """``transform(batch, params)`` where ``mask[b]``, ``batch`` elsewhere.

    On the host, where reading the mask costs no device synchronization, an all-false mask
    skips the transform and an all-true one skips the selection (same result, bit for bit).
    """
    if mask.device.type == "cpu":
        if not bool(mask.any()):
            return batch
        if bool(mask.all()):
            return transform(batch, params)
    return select(mask, transform(batch, params), batch)


def mask_is_uniform(mask: torch.Tensor) -> bool:
    """Whether ``mask`` is on the host and all true or all false (then no per-sample mixing)."""
    return mask.device.type == "cpu" and (not bool(mask.any()) or bool(mask.all()))


class BatchTransform:
    """Base class: a batch transform with per-sample parameters.

    Subclasses set ``stream`` (their :class:`AugmentStream`) and override
    :meth:`make_params` (random transforms) and :meth:`apply`.

    Example:
        >>> flip = RandomHorizontalFlip(p=0.5)          # doctest: +SKIP
        >>> key = BatchKey(seed=0, epoch=0, sample_ids=batch_ids)  # doctest: +SKIP
        >>> out, params = flip(images, key, return_params=True)  # doctest: +SKIP
        >>> torch.equal(flip.apply(images, params), out)  # replay  # doctest: +SKIP
        True
    """

    stream: int = 0
    seed: int | None = None
    """This transform's own seed (replaces the key's); None uses the key's seed."""
    device: str | None = None
    """The device named at construction (informational: outputs follow the batch)."""

    def set_seed_and_device(self, seed: int | None, device: torch.device | str | None) -> None:
        """Store the original slipstream's ``seed=`` and ``device=`` arguments."""
        self.seed = None if seed is None else int(seed)
        self.device = None if device is None else str(device)

    def own_key(self, key: BatchKey) -> BatchKey:
        """``key`` with this transform's ``seed`` in place of the key's (when set)."""
        if self.seed is None or self.seed == key.seed:
            return key
        return BatchKey(self.seed, key.epoch, key.sample_ids, key.view, key.path)

    def draw_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """:meth:`make_params` under :meth:`own_key` (what containers and calls use)."""
        return self.make_params(batch, self.own_key(key))

    def keyless_key(self, batch_size: int) -> BatchKey:
        """The key of a call without one (see the module docstring)."""
        if self.seed is None:
            return BatchKey.from_torch_rng(batch_size)
        calls = self.__dict__.get("_keyless_calls", 0)
        self._keyless_calls = calls + 1
        return BatchKey(self.seed, calls, np.arange(batch_size, dtype=np.int64))

    def last_params(self) -> Params:
        """The params of this instance's last call (the original's replay state)."""
        if "_last_params" not in self.__dict__:
            name = type(self).__name__
            raise RuntimeError(f"{name} has not been called yet: no params to replay")
        return self._last_params

    def apply_last(self, batch: torch.Tensor) -> Any:
        """Replay this instance's last call on ``batch`` (the original's ``apply_last``)."""
        return self.apply(batch, self.last_params())

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """A tensor with the output's shape, dtype and device (its values are unused).

        Containers draw the params of later transforms from it. The input itself unless
        the transform changes shape, dtype or device.
        """
        return batch

    def make_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """Draw this transform's per-sample parameters (none for fixed transforms).

        Args:
            batch: The input batch ``[B, C, H, W]`` (only its shape and device are used).
            key: The batch's key.

        Returns:
            Parameters, tensors with leading dimension ``B`` on ``batch.device``.
        """
        return {}

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply the transform with given parameters.

        Args:
            batch: Float batch ``[B, C, H, W]``, values in ``0..1``.
            params: Parameters from :meth:`make_params` (on ``batch.device``).

        Returns:
            The transformed batch.
        """
        raise NotImplementedError

    def __call__(
        self, batch: torch.Tensor, key: BatchKey | None = None, *, return_params: bool = False
    ) -> Any:
        """Draw parameters and apply them.

        Args:
            batch: Float batch ``[B, C, H, W]``.
            key: The batch's key; without one, see :meth:`keyless_key`.
            return_params: Also return the parameters (for replay or logging).

        Returns:
            The output, or ``(output, params)`` with ``return_params=True``.
        """
        if key is None:
            key = self.keyless_key(batch.shape[0])
        elif key.batch_size != batch.shape[0]:
            raise ValueError(f"key has {key.batch_size} sample ids, batch has {batch.shape[0]}")
        params = self.draw_params(batch, key)
        self._last_params = params
        out = self.apply(batch, params)
        return (out, params) if return_params else out

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}" for name, value in vars(self).items() if not name.startswith("_")
        )
        return f"{type(self).__name__}({fields})"


class FixedTransform(BatchTransform):
    """Base class of transforms without randomness (conversions, color spaces).

    Their params are empty; calling one needs no key and draws nothing (torch's global
    RNG is left untouched). The input may be any shape the transform accepts (a single
    ``[C, H, W]`` image as well as a batch).
    """

    def __call__(
        self, batch: Any, key: BatchKey | None = None, *, return_params: bool = False
    ) -> Any:
        """Apply the transform (``key`` is accepted for the common signature, and unused).

        Args:
            batch: The input.
            key: Unused.
            return_params: Also return the (empty) params.

        Returns:
            The output, or ``(output, {})`` with ``return_params=True``.
        """
        out = self.apply(batch, {})
        return (out, {}) if return_params else out

    def last_params(self) -> Params:
        """Always empty: nothing is drawn."""
        return {}


class RandomTransform(BatchTransform):
    """Base of transforms applied to each sample with probability ``p``.

    Subclasses override :meth:`transform`. Parameters named in ``uniform_params`` are
    drawn by the default :meth:`sample`, each uniformly from the attribute
    ``<name>_range``; others come from an overridden :meth:`sample` using ``num_draws``
    draws per sample (besides the apply decision, drawn here into ``params["apply"]``).
    """

    uniform_params: tuple[str, ...] = ()
    neutral_params: dict[str, int | float] = {}
    """Parameter values under which :meth:`transform` returns its input exactly (for inputs
    in ``0..1``). Unapplied samples then get these values and one :meth:`transform` pass
    makes the output, instead of transforming every sample and selecting per sample
    (two fewer passes over the batch; the same result, bit for bit)."""

    @property
    def num_draws(self) -> int:
        """Uniform draws per sample that :meth:`sample` consumes."""
        return len(self.uniform_params)

    def __init__(
        self, p: float = 0.5, seed: int | None = None, device: torch.device | str | None = None
    ) -> None:
        """Store the probability, seed and device."""
        self.p = check_probability(p)
        self.set_seed_and_device(seed, device)

    def make_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """Draw the apply mask (column 0) and the transform's parameters (the rest)."""
        draws = key.uniform(self.stream, 1 + self.num_draws)
        params = self.sample(batch, draws[:, 1:], key)
        params["apply"] = to_batch_device(draws[:, 0] < self.p, batch)
        return params

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Turn ``[B, num_draws]`` host uniforms into parameters on ``batch.device``."""
        return {
            name: per_sample(scaled(draws[:, i], getattr(self, f"{name}_range")), batch)
            for i, name in enumerate(self.uniform_params)
        }

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Transform every sample (the apply mask is handled by :meth:`apply`)."""
        raise NotImplementedError

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Transform the samples whose ``params["apply"]`` is true; pass the others."""
        mask = params["apply"]
        if not self.neutral_params or mask_is_uniform(mask):
            return apply_masked(self.transform, batch, params, mask)
        neutral = {
            name: torch.where(
                mask.view(-1, *([1] * (params[name].dim() - 1))),
                params[name],
                torch.full_like(params[name], value),
            )
            for name, value in self.neutral_params.items()
        }
        return self.transform(batch, {**params, **neutral})


class Compose(BatchTransform):
    """Apply transforms in order. Params: ``{"0": params_0, "1": params_1, ...}``.

    Child ``i`` draws with ``key.child(i)``, so equal transforms at two positions draw
    independent parameters.

    Args:
        transforms: The transforms, applied first to last.
    """

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        """Store the transforms."""
        self.transforms = list(transforms)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """The output stand-in after every transform."""
        for transform in self.transforms:
            batch = transform.output_stand_in(batch)
        return batch

    def make_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """Draw every child's params, following the shape through the chain."""
        params: Params = {}
        for index, transform in enumerate(self.transforms):
            params[str(index)] = transform.draw_params(batch, key.child(index))
            batch = transform.output_stand_in(batch)
        return params

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply every transform with its params."""
        for index, transform in enumerate(self.transforms):
            batch = transform.apply(batch, params[str(index)])
        return batch

    def __repr__(self) -> str:
        inner = "".join(f"\n{textwrap.indent(repr(t), '    ')}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class RandomApply(BatchTransform):
    """Apply a (shape-preserving) transform to each sample with probability ``p``.

    Params: ``{"apply": bool [B], "inner": params of the transform}``. The original
    slipstream decided once per batch; here each sample decides (keyed per sample).

    Args:
        transforms: The transform, or a list of them (the original's form; composed).
        p: Probability per sample.
        seed: This container's own seed (replaces the key's for the apply decision).
        device: Accepted for the original's signature (decisions follow the batch).
    """

    stream = AugmentStream.RANDOM_APPLY

    def __init__(
        self,
        transforms: BatchTransform | Sequence[BatchTransform],
        p: float = 0.5,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the transform and probability."""
        if not isinstance(transforms, BatchTransform):
            transforms = Compose(transforms)
        self.transform = transforms
        self.p = check_probability(p)
        self.set_seed_and_device(seed, device)

    def make_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """Draw the mask and the inner transform's params."""
        mask = to_batch_device(key.uniform(self.stream, 1)[:, 0] < self.p, batch)
        return {"apply": mask, "inner": self.transform.draw_params(batch, key.child(0))}

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Keep the inner transform's output where the mask is set."""
        return apply_masked(self.transform.apply, batch, params["inner"], params["apply"])


class MultiView(BatchTransform):
    """Several augmented views of one batch, with independent or shared params.

    Calling it returns a list of views. View ``v`` draws with
    ``key.with_view(key.view + v)``, so each view's params are keyed per sample and view.
    With ``share_params=True`` every view replays view 0's params (all views are equal
    unless the per-view transforms differ). Params: ``{"0": view 0 params, "1": ...}``.

    Args:
        transforms: One transform for every view, or one per view (e.g. the two asymmetric
            BYOL pipelines).
        num_views: Number of views (with a single transform; default 2).
        share_params: Replay view 0's params on every view.

    Example:
        >>> views = MultiView(pipeline, num_views=2)          # doctest: +SKIP
        >>> v1, v2 = views(images, BatchKey(seed, epoch, batch["index"]))  # doctest: +SKIP
    """

    def __init__(
        self,
        transforms: BatchTransform | Sequence[BatchTransform],
        num_views: int | None = None,
        share_params: bool = False,
    ) -> None:
        """Store the per-view transforms."""
        if isinstance(transforms, BatchTransform):
            self.transforms = [transforms] * (2 if num_views is None else int(num_views))
        else:
            self.transforms = list(transforms)
            if num_views is not None and num_views != len(self.transforms):
                raise ValueError(f"num_views={num_views} but {len(self.transforms)} transforms")
        if not self.transforms:
            raise ValueError("MultiView needs at least one view")
        self.share_params = bool(share_params)

    def make_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """Draw each view's params (view 0's for all with ``share_params``)."""
        if self.share_params:
            shared = self.transforms[0].draw_params(batch, key)
            return {str(v): shared for v in range(len(self.transforms))}
        return {
            str(v): t.draw_params(batch, key.with_view(key.view + v))
            for v, t in enumerate(self.transforms)
        }

    def apply(self, batch: torch.Tensor, params: Params) -> list[torch.Tensor]:  # type: ignore[override]
        """Apply every view's transform with its params; returns the list of views."""
        return [t.apply(batch, params[str(v)]) for v, t in enumerate(self.transforms)]


class MultiSample(MultiView):
    """The original slipstream's ``MultiSample``: ``num_copies`` augmented copies, a tuple.

    A :class:`MultiView` (copy ``v`` draws as view ``key.view + v``) that returns a tuple,
    optionally with the input first.

    Args:
        transforms: A transform, or a list of them (composed).
        num_copies: Number of augmented copies.
        return_input: Put the input itself first in the tuple.
        clone_input: Give each copy its own clone of the input (for in-place transforms).
    """

    def __init__(
        self,
        transforms: BatchTransform | Sequence[BatchTransform],
        num_copies: int,
        return_input: bool = False,
        clone_input: bool = True,
    ) -> None:
        """Store the composed transform and the copy options."""
        if not isinstance(transforms, BatchTransform):
            transforms = Compose(transforms)
        super().__init__(transforms, num_views=num_copies)
        self.num_copies = int(num_copies)
        self.return_input = bool(return_input)
        self.clone_input = bool(clone_input)

    def apply(self, batch: torch.Tensor, params: Params) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """Every copy with its params, after the input where ``return_input``."""
        copies = tuple(
            t.apply(batch.clone() if self.clone_input else batch, params[str(v)])
            for v, t in enumerate(self.transforms)
        )
        return ((batch, *copies)) if self.return_input else copies


BatchAugment = BatchTransform
"""The original slipstream's name of the transform base class."""
