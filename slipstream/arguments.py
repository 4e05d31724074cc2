"""Checks of the values users pass: one error per bad value, naming it and what is accepted.

Every public constructor checks its arguments here before doing any work, so
``SlipstreamLoader(ds, batch_size=2.5)`` fails at once with
``batch_size must be an integer >= 1, got 2.5 (float)`` instead of running with
batches of 2.
"""

from __future__ import annotations

import numbers
from collections.abc import Collection
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def _got(value: Any) -> str:
    return f"got {value!r} ({type(value).__name__})"


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    optional: bool = False,
) -> int | None:
    """Return ``value`` as an ``int`` after checking it is an integer within bounds.

    Python and numpy integers pass; ``bool``, floats (even ``2.0``), strings and other types
    do not.

    Args:
        name: The argument's name, used in the error.
        value: The value passed.
        minimum: Smallest accepted value (inclusive), or None.
        maximum: Largest accepted value (inclusive), or None.
        optional: Accept ``None`` too (returned as is).

    Returns:
        The value as a plain ``int`` (or None where ``optional`` and None was passed).

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value`` is out of bounds.
    """
    if value is None and optional:
        return None
    accepted = f"an integer{_bounds(minimum, maximum)}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {accepted}, {_got(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {accepted}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` after checking it is a ``bool`` (or a numpy bool).

    Args:
        name: The argument's name, used in the error.
        value: The value passed.

    Raises:
        TypeError: ``value`` is not a bool (``0``/``1``/``"yes"`` are refused).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, {_got(value)}")


def check_choice(name: str, value: T, choices: Collection[T], *, optional: bool = False) -> T:
    """Return ``value`` after checking it is one of ``choices``.

    Args:
        name: The argument's name, used in the error.
        value: The value passed.
        choices: The accepted values.
        optional: Accept ``None`` too (meaning "the default").

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    if value is None and optional:
        return value
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices) + (" or None" if optional else "")
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value
