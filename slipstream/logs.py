"""Messages and progress bars: one ``slipstream`` logger, tqdm bars that know when to stay off.

Every message of the package goes to the ``logging`` logger ``"slipstream"`` (or a child,
``slipstream.cache...``). Nothing is configured on import, so Python's default applies:
warnings and errors reach stderr, information stays quiet. Turn it up with
``logging.getLogger("slipstream").setLevel(logging.INFO)`` plus a handler, or
:func:`enable_logging`.

Progress bars (cache builds, downloads, verification, YUV420 companions) are shown when
all of these hold:

- the call did not pass ``progress=False``;
- ``$SLIPSTREAM_PROGRESS`` is not ``0`` (``1`` forces bars on, even into a file);
- stderr is a terminal (so a batch job's log gets no bar fragments).
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("slipstream")

PROGRESS_ENV = "SLIPSTREAM_PROGRESS"


def show_progress(progress: bool | None = None) -> bool:
    """Whether a progress bar should be drawn.

    Args:
        progress: The caller's wish: False never shows a bar; True or None show one unless
            ``$SLIPSTREAM_PROGRESS`` says otherwise or stderr is not a terminal.

    Returns:
        True to draw the bar.
    """
    if progress is False:
        return False
    setting = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def enable_logging(level: int | str = logging.INFO) -> logging.Logger:
    """Send the ``slipstream`` logger's messages at ``level`` and above to stderr.

    Adds one stderr handler (once, however often this is called).

    Args:
        level: A ``logging`` level, e.g. ``logging.INFO`` or ``"DEBUG"``.

    Returns:
        The ``slipstream`` logger.
    """
    logger.setLevel(level)
    if not any(getattr(h, "_slipstream", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        handler._slipstream = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger
