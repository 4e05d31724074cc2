"""One builder per cache: an exclusive ``flock`` on ``<dest>.lock`` while a cache is built.

Two processes (e.g. the ranks of a distributed job) that build the same cache at once take
this lock; the first builds, the others block until it is released, then find the
finished cache and open it. The operating system releases a ``flock`` when its process
dies (also on ``SIGKILL``), so a crashed builder never blocks the next one.

The holder removes the lock file before it releases the lock. A waiter that then gets the
lock of a file no longer at ``<dest>.lock`` (same device and inode checked) opens the path
again, so two processes never hold "the" lock at once. A killed builder leaves the file
behind; it is harmless and removed by the next build.

Locks are advisory and need a file system that implements ``flock`` across the processes
involved (local disks; NFSv4 on Linux maps it to byte-range locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

_log = logging.getLogger(__name__)


def lock_path(dest: str | os.PathLike) -> Path:
    """The lock file of a cache folder: ``<dest>.lock``.

    Args:
        dest: The cache folder.
    """
    dest = Path(dest)
    return dest.parent / f"{dest.name}.lock"


@contextlib.contextmanager
def build_lock(dest: str | os.PathLike, *, announce: bool = True) -> Iterator[float]:
    """Hold the exclusive build lock of ``dest`` for the ``with`` block.

    Args:
        dest: The cache folder about to be built (its parent folder must exist).
        announce: Print a line to stderr while waiting for another builder.

    Yields:
        Seconds spent waiting for another process's build (0.0 when the lock was free).
    """
    path = lock_path(dest)
    start = time.monotonic()
    announced = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not announced:
                message = f"slipstream: another process is building {dest}; waiting ({path})"
                _log.log(logging.WARNING if announce else logging.INFO, message)
                announced = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_at(fd, path):
            break
        os.close(fd)  # the holder removed that file: lock the one at the path now
    waited = time.monotonic() - start if announced else 0.0
    try:
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for people looking
        yield waited
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
