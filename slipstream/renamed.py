"""Arguments renamed to the original slipstream's names: the old name still works, with a warning.

Where slipstream's own name for an argument differed from the original slipstream's
(``cache_root`` vs ``cache_dir``, ``num_threads`` vs ``num_workers``, ``prefetch`` vs
``batches_ahead``), the original's name is *the* name. The old name is accepted only through
:func:`renamed_argument`, which emits a :class:`FutureWarning` naming the new one, so every
rename reads the same and can be dropped in one place later.

Example:
    >>> def open_dataset(cache_dir=None, *, cache_root=None):
    ...     cache_dir = renamed_argument("cache_root", "cache_dir", cache_root, cache_dir)
    ...     return cache_dir
"""

from __future__ import annotations

import warnings
from typing import Any

_UNSET: Any = object()


def renamed_argument(old: str, new: str, value: Any, current: Any = _UNSET) -> Any:
    """Accept a value passed under an argument's old name, warning that it was renamed.

    Call it with the value the caller gave under the old name (``None`` when not given).
    Where ``value`` is None nothing happens and ``current`` is returned, so a function can
    call this unconditionally for every old name it still accepts.

    Args:
        old: The old argument name (e.g. ``"cache_root"``).
        new: The argument's name now (e.g. ``"cache_dir"``).
        value: What the caller passed under ``old``; None means it was not passed.
        current: What the caller passed under ``new`` (None where not passed). Leave it out
            to just get ``value`` back.

    Returns:
        ``value`` where it was passed, else ``current`` (None where ``current`` was left
        out).

    Raises:
        TypeError: both ``old`` and ``new`` were given (not None).

    Warns:
        FutureWarning: ``value`` was given; the message names ``new``.
    """
    if value is None:
        return None if current is _UNSET else current
    if current is not _UNSET and current is not None:
        raise TypeError(f"got both {old}= and {new}=; {old} was renamed to {new}: pass {new} only")
    warnings.warn(
        f"{old}= was renamed to {new}= (the original slipstream's name); "
        f"pass {new}={value!r} instead",
        FutureWarning,
        stacklevel=3,
    )
    return value
