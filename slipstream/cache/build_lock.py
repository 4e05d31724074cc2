"""One builder per cache and one failure for all: a ``flock`` on ``<dest>.lock``.

Processes that produce the same folder (the ranks of a distributed job building a cache,
downloading a dataset or a remote cache, compiling the DALI plugin) take this lock around
the work; the first does it, the others block until it is released, then find the
finished folder and use it. The lock is keyed by the destination's path, which carries
the cache's content name, so every rank of a node shares it. The operating system
releases a ``flock`` when its process dies (also on ``SIGKILL``), so a crashed builder
never blocks the next one.

Reentrant in a process: a thread that holds the lock of ``dest`` (e.g. a download of the
chunks a build then reads) takes it again at once; another thread of the same process
waits as another process would.

What a waiting process says (log records of ``slipstream.cache.build_lock``, a warning
unless ``announce=False``): one line when it starts waiting (what it waits for, and the
pid/host that holds the lock), one every :data:`REPORT_EVERY_S` seconds while it waits,
and one when it got the lock (how long it waited).

Failure records. When the work inside the lock raises an :class:`Exception`, the holder
writes ``<dest>.failed.json`` (error class, message, what failed, time, pid, host, rank)
before releasing the lock. A process that then gets the lock raises that error itself
(the same class when it can be rebuilt from a message, else :class:`SharedBuildError`;
the message says which rank/pid on which host raised it) instead of repeating the work,
provided the record *applies* to it:

* the record was written by another process (not this pid on this host),
* it was written after this process started (so it was waiting, or was about to arrive
  at the lock, as the ranks of the job that failed do), and
* it is at most :data:`FAILURE_TTL_S` seconds old (a long-lived process, e.g. a notebook
  kernel, retries later: a download may have failed for a passing reason).

A new run (new processes, e.g. after the user fixed the source) started after the record
ignores it, removes it and retries. A fixed source usually gets a new cache name anyway
(the name carries the source fingerprint), hence a new lock. Success removes the record.

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
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slipstream.errors import SlipstreamError

__all__ = [
    "FAILURE_TTL_S",
    "REPORT_EVERY_S",
    "CacheLocationError",
    "SharedBuildError",
    "build_lock",
    "failure_path",
    "failure_record",
    "lock_path",
    "process_start_time",
    "raise_recorded_failure",
    "record_applies",
]

_log = logging.getLogger(__name__)

REPORT_EVERY_S = 30.0
"""Seconds between the "still waiting" lines of a waiting process."""

FAILURE_TTL_S = 600.0
"""Seconds a failure record applies to the processes that did not write it."""

_held_lock = threading.Lock()
_held: dict[str, list[Any]] = {}  # path -> [RLock, depth]: in-process reentrancy


class SharedBuildError(SlipstreamError, RuntimeError):
    """Another process's build (or download) of the same folder failed with this error.

    Raised where the original error's class cannot be rebuilt from a message.
    """


class CacheLocationError(SlipstreamError, OSError):
    """A folder slipstream must write into cannot be written.

    A read-only file system, no permission, a file where a folder should be. An
    :class:`OSError` too (``errno`` is the system's), so ``except OSError`` still works.
    """

    def __init__(self, message: str, errno_code: int | None = None) -> None:
        """Keep the message as the text and the system's errno."""
        super().__init__(message)
        self.errno = errno_code

    def __str__(self) -> str:
        """The message (not ``[Errno n] ...``)."""
        return str(self.args[0])


def unwritable_location(folder: Path, error: OSError, what: str) -> CacheLocationError:
    """The error for a folder ``what`` needs to write into and cannot (``error`` says why)."""
    return CacheLocationError(
        f"cannot write {what} in {folder}: {error.strerror or error} (a read-only or "
        "unwritable location?); give a writable folder (cache_dir=, or the "
        "SLIPSTREAM_CACHE_DIR environment variable)",
        error.errno,
    )


def lock_path(dest: str | os.PathLike) -> Path:
    """The lock file of a cache folder: ``<dest>.lock``.

    Args:
        dest: The cache folder.
    """
    dest = Path(dest)
    return dest.parent / f"{dest.name}.lock"


def failure_path(dest: str | os.PathLike) -> Path:
    """The failure record of a cache folder: ``<dest>.failed.json`` (beside the lock).

    Args:
        dest: The cache folder.
    """
    dest = Path(dest)
    return dest.parent / f"{dest.name}.failed.json"


def process_start_time() -> float:
    """When this process started, in seconds since the epoch (``/proc``; else import time)."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(stat[19])  # field 22, starttime, in clock ticks after boot
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORTED_AT


_IMPORTED_AT = time.time()


def _rank() -> str | None:
    """This process's global rank, where one is known (``$RANK`` or torch.distributed)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return str(dist.get_rank())
    return os.environ.get("RANK")


def failure_record(error: BaseException, what: str) -> dict[str, Any]:
    """The record a failed holder writes: error class, message, what failed, who, when.

    Args:
        error: The exception the work raised.
        what: What was being done (``"build of /caches/x-...-v1"``).
    """
    return {
        "type": type(error).__qualname__,
        "module": type(error).__module__,
        "message": str(error),
        "what": what,
        "time": time.time(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "rank": _rank(),
    }


def record_applies(record: dict[str, Any], since: float | None = None) -> bool:
    """Whether a failure record applies to this process (see the module docstring).

    Args:
        record: A record from :func:`failure_record`.
        since: Records older than this time are ignored (default: this process's start);
            records older than :data:`FAILURE_TTL_S` seconds are ignored too.
    """
    mine = record.get("pid") == os.getpid() and record.get("host") == socket.gethostname()
    since = process_start_time() if since is None else since
    written = float(record.get("time", 0.0))
    return not mine and since <= written and time.time() - written <= FAILURE_TTL_S


def raise_recorded_failure(record: dict[str, Any], where: str) -> None:
    """Raise the error a record describes, as the same class where possible.

    Only classes of modules already imported are looked up (nothing is imported from a
    record); a class whose constructor does not take one message gives
    :class:`SharedBuildError`.

    Args:
        record: A record from :func:`failure_record`.
        where: Where the record was read (a path or URL), for the message.

    Raises:
        Exception: Always.
    """
    who = f"rank {record['rank']}, " if record.get("rank") is not None else ""
    when = time.strftime("%H:%M:%S", time.localtime(float(record.get("time", 0.0))))
    message = (
        f"{record.get('message', '')} [raised by {who}pid {record.get('pid')} on host "
        f"{record.get('host')} at {when} during the {record.get('what', 'build')}; this "
        f"process did not retry (record {where}; a new run retries)]"
    )
    cls = _exception_class(str(record.get("module", "")), str(record.get("type", "")))
    error: BaseException | None = None
    if cls is not None:
        try:
            error = cls(message)
        except Exception:
            error = None
        if error is not None and str(error) != message:
            error = None  # a class that formats its arguments its own way
    if error is None:
        error = SharedBuildError(f"{record.get('module')}.{record.get('type')}: {message}")
    raise error


def _exception_class(module: str, qualname: str) -> type[Exception] | None:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a record is a courtesy to the waiters; never mask the error
        _log.warning("slipstream: could not write the failure record %s: %s", path, exc)


@contextlib.contextmanager
def build_lock(
    dest: str | os.PathLike, *, announce: bool = True, what: str | None = None
) -> Iterator[float]:
    """Hold the exclusive lock of ``dest`` for the ``with`` block (see the module docstring).

    Args:
        dest: The folder about to be produced (its parent folder must exist).
        announce: Log the waiting lines as warnings (else at INFO level).
        what: What the holder does, for the waiting lines and the failure record
            (default ``"build of <dest>"``).

    Yields:
        Seconds spent waiting for another process (0.0 when the lock was free).

    Raises:
        Exception: The error of a failed holder this process waited for (a failure
            record that applies to it).
    """
    path = lock_path(dest)
    what = what or f"build of {dest}"
    key = str(path.resolve())
    with _held_lock:
        entry = _held.setdefault(key, [threading.RLock(), 0])
    thread_wait = 0.0
    if not entry[0].acquire(blocking=False):  # another thread of this process holds it
        start = time.monotonic()
        entry[0].acquire()
        thread_wait = time.monotonic() - start
    try:
        if entry[1] > 0:  # this thread holds it already
            entry[1] += 1
            try:
                yield 0.0
            finally:
                entry[1] -= 1
            return
        fd, waited = _acquire(path, what, logging.WARNING if announce else logging.INFO)
        waited += thread_wait
        entry[1] = 1
        try:
            _check_failure(Path(dest), waited)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {what}\n".encode(), 0)
            try:
                yield waited
            except Exception as exc:
                _write_record(failure_path(dest), failure_record(exc, what))
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(failure_path(dest))
        finally:
            entry[1] = 0
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.close(fd)  # releases the lock
    finally:
        entry[0].release()


def _check_failure(dest: Path, waited: float) -> None:
    """Raise a failure record that applies; remove one that does not."""
    record = _read_record(failure_path(dest))
    if record is None:
        return
    if record_applies(record):
        raise_recorded_failure(record, str(failure_path(dest)))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(failure_path(dest))  # an old run's failure: retry


def _acquire(path: Path, what: str, level: int) -> tuple[int, float]:
    """Open and ``flock`` the lock file; log while waiting. Returns ``(fd, waited)``."""
    start = time.monotonic()
    reporter: _WaitReporter | None = None
    try:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise unwritable_location(path.parent, exc, f"the lock file {path.name}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if reporter is None:
                    reporter = _WaitReporter(path, what, level, _holder(fd))
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_at(fd, path):
                break
            os.close(fd)  # the holder removed that file: lock the one at the path now
    finally:
        if reporter is not None:
            reporter.stop()
    return fd, (time.monotonic() - start if reporter is not None else 0.0)


def _holder(fd: int) -> str:
    """``pid host what`` written by the holder (may be empty while it starts)."""
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        return ""


class _WaitReporter:
    """Logs one line when waiting starts, one every REPORT_EVERY_S, one at the end."""

    def __init__(self, path: Path, what: str, level: int, holder: str) -> None:
        self.level, self.start = level, time.monotonic()
        pid, _, rest = holder.partition(" ")
        host, _, held_what = rest.partition(" ")
        self.what = held_what or what
        self.who = f" by pid {pid} on {host}" if pid and host else ""
        _log.log(
            level,
            "slipstream: waiting for the %s%s (another process is building it; lock %s)",
            self.what,
            self.who,
            path,
        )
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._report, name="slip-lock-wait", daemon=True)
        self.thread.start()

    def _report(self) -> None:
        while not self.done.wait(REPORT_EVERY_S):
            _log.log(
                self.level,
                "slipstream: still waiting for the %s%s (%.0f s so far)",
                self.what,
                self.who,
                time.monotonic() - self.start,
            )

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        _log.log(
            self.level,
            "slipstream: waited %.1f s for the %s",
            time.monotonic() - self.start,
            self.what,
        )


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
