"""``SlipstreamError``: the base class of every error slipstream raises about its inputs.

Format errors (a damaged cache, ``.beton``, LitData index), per-sample decode and integrity
errors, and build errors all derive from it, so ``except SlipstreamError`` catches what
bad data can cause. Each keeps its historical built-in base too (``ValueError`` or
``RuntimeError``), so existing ``except`` clauses still match.
"""

from __future__ import annotations

__all__ = ["FieldNotFoundError", "SlipstreamError"]


class SlipstreamError(Exception):
    """Base class of slipstream's errors about data, formats and arguments it checks."""


class FieldNotFoundError(SlipstreamError, KeyError):
    """A field a caller asked for is not in the dataset (or not of the kind asked for)."""

    def __str__(self) -> str:
        """The message itself (``KeyError`` would print its repr)."""
        return str(self.args[0]) if self.args else ""
