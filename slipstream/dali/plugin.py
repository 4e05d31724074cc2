"""Builds, version-checks and loads the DALI operator plugin ``libslipstream_dali.so``.

The plugin (``dali_ops/``: the ``SlipstreamDecodeCrop`` operator over the same C++ kernel as
``slipstream.native``) is compiled on first use against the installed DALI, because DALI is an
optional extra that may be installed, upgraded or removed after slipstream itself. Layout::

    $SLIPSTREAM_PLUGIN_DIR (default $XDG_CACHE_HOME or ~/.cache, then slipstream/dali_plugin)/
      dali<version>-cuda<major>-<libjpeg soname>-<arch>/     plugin_key(), e.g.
        libslipstream_dali.so                                dali2.4.0-cuda12-libjpeg.so.62-x86_64
        libslipstream_dali.json   stamp: {"dali_version", "source_digest", "key", "abi"}
      dali...-x86_64.lock         serializes builds across processes (build_lock)
      dali...-x86_64.failed.json  a failed build, raised by the processes that waited for it

The key holds what the binary depends on: the DALI version, the CUDA major version of the
DALI wheel (``nvidia-dali-cuda120`` -> ``cuda12``), the soname of the libjpeg it links and
the CPU architecture, so one shared plugin folder (e.g. on a cluster's shared home) serves
several DALI flavours and node types. Processes that find a build in progress log one line
saying they wait for the plugin build. A plugin folder that cannot be written (read-only
file system, a file in the way, no permission) holds a current plugin, or the plugin is
built in a private per-user folder under the temporary directory instead, with a warning.

The plugin root (:func:`slipstream.paths.default_plugin_root`) is not the dataset cache
root, so a per-job scratch ``$SLIPSTREAM_CACHE_DIR`` does not rebuild the plugin.

DALI does not check plugin versions, and a plugin built against another DALI can crash
the process, so :func:`load_plugin` reads the stamp before loading: a stamp naming another
DALI version or other sources means a rebuild. The build runs CMake on ``dali_ops/`` with
DALI's ``sysconfig`` flags; DALI's headers need ``cuda_runtime.h`` even for this CPU
operator, taken from ``$SLIPSTREAM_CUDA_INCLUDE``, ``$CUDA_HOME/include``,
``/usr/local/cuda/include`` or the ``nvidia-cuda-runtime-cu12`` pip package.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from slipstream.cache.build_lock import build_lock
from slipstream.paths import PLUGIN_DIR_ENV, default_plugin_root

try:
    import nvidia.dali as _dali
    from nvidia.dali import backend as _dali_backend
    from nvidia.dali import plugin_manager as _plugin_manager
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"slipstream.dali needs NVIDIA DALI ({exc}); install it with "
        "`pip install 'slipstream[dali]'`"
    ) from exc

__all__ = [
    "PluginBuildError",
    "build_plugin",
    "load_plugin",
    "plugin_dir",
    "plugin_key",
    "private_plugin_dir",
]

LIB_NAME = "libslipstream_dali.so"
STAMP_NAME = "libslipstream_dali.json"
OP_SCHEMA = "SlipstreamDecodeCrop"
CUDA_INCLUDE_ENV = "SLIPSTREAM_CUDA_INCLUDE"
_STAMP_ABI = 1
_CUDA_HINT = (
    "set SLIPSTREAM_CUDA_INCLUDE to a directory holding cuda_runtime.h, or "
    "`pip install nvidia-cuda-runtime-cu12 nvidia-cuda-nvcc-cu12 nvidia-cuda-cccl-cu12`"
)

_lock = threading.Lock()
_loaded: Path | None = None


class PluginBuildError(RuntimeError):
    """The DALI plugin could not be built (compiler, CMake, headers or libjpeg missing)."""


def dali_version() -> str:
    """The installed DALI's version string."""
    return str(_dali.__version__)


def dali_cuda_major() -> str:
    """CUDA major version the installed DALI wheel was built for (``"12"``), or ``"none"``.

    Read from the wheel's distribution name (``nvidia-dali-cuda120`` -> ``"12"``), else
    from DALI's backend.
    """
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        match = re.fullmatch(r"nvidia-dali(?:-nightly|-weekly)?-cuda(\d+?)0", name)
        if match and dist.version == dali_version():
            return match.group(1)
    version = getattr(_dali_backend, "__cuda_version__", None)
    if isinstance(version, int) and version > 0:
        return str(version // 1000)
    return "none"


def libjpeg_soname() -> str:
    """Soname of the libjpeg the plugin links (``"libjpeg.so.62"``), or ``"nojpeg"``."""
    return ctypes.util.find_library("jpeg") or "nojpeg"


def plugin_key(
    version: str | None = None,
    cuda_major: str | None = None,
    jpeg_soname: str | None = None,
    machine: str | None = None,
) -> str:
    """Folder name of a plugin build: ``dali<version>-cuda<major>-<soname>-<arch>``.

    Each argument defaults to this machine's value (:func:`dali_version`,
    :func:`dali_cuda_major`, :func:`libjpeg_soname`, ``platform.machine()``).

    Returns:
        A name of letters, digits and ``._-`` only.
    """
    parts = (
        f"dali{version if version is not None else dali_version()}",
        f"cuda{cuda_major if cuda_major is not None else dali_cuda_major()}",
        jpeg_soname if jpeg_soname is not None else libjpeg_soname(),
        machine if machine is not None else (platform.machine() or "unknown"),
    )
    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", part) for part in parts)


def plugin_dir(root: str | os.PathLike | None = None) -> Path:
    """Directory of the plugin for this DALI and machine: ``<root>/<plugin_key()>``.

    Args:
        root: Plugin root; ``None`` means :func:`slipstream.paths.default_plugin_root`
            (``$SLIPSTREAM_PLUGIN_DIR``, else ``$XDG_CACHE_HOME/slipstream/dali_plugin``,
            else ``~/.cache/slipstream/dali_plugin``).

    Returns:
        The plugin directory (not created).
    """
    base = Path(root) if root is not None else default_plugin_root()
    return base / plugin_key()


def _source_dirs() -> tuple[Path, Path]:
    """``(dali_ops, csrc)``: from the source tree, else the copies installed in the wheel."""
    pkg = Path(__file__).resolve().parents[1]
    for root in (pkg.parent, pkg / "_native_src"):
        ops, csrc = root / "dali_ops", root / "csrc"
        if (ops / "CMakeLists.txt").is_file() and (csrc / "decode_crop.h").is_file():
            return ops, csrc
    raise PluginBuildError(
        "slipstream's C++ sources (dali_ops/, csrc/) are missing from this installation; "
        "reinstall slipstream from a wheel or source checkout"
    )


def source_digest() -> str:
    """SHA-256 over the plugin's sources (a stamp naming other sources means a rebuild)."""
    h = hashlib.sha256()
    for d in _source_dirs():
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix in {".cc", ".cpp", ".h", ".txt", ".cmake"}:
                h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def find_cuda_include() -> Path:
    """A directory holding ``cuda_runtime.h`` (DALI's headers include it).

    Raises:
        PluginBuildError: If none is found, naming the pip packages that provide it.
    """
    env = os.environ.get(CUDA_INCLUDE_ENV)
    if env:
        if not (Path(env) / "cuda_runtime.h").is_file():
            raise PluginBuildError(f"${CUDA_INCLUDE_ENV}={env} has no cuda_runtime.h; {_CUDA_HINT}")
        return Path(env)
    candidates = [Path(p) / "include" for p in (os.environ.get("CUDA_HOME"),) if p]
    candidates.append(Path("/usr/local/cuda/include"))
    try:
        import nvidia.cuda_runtime as cr  # the nvidia-cuda-runtime-cu12 wheel

        candidates += [Path(p) / "include" for p in cr.__path__]
    except ImportError:
        pass
    for c in candidates:
        if (c / "cuda_runtime.h").is_file():
            return c
    raise PluginBuildError(f"cuda_runtime.h not found (looked in {candidates}); {_CUDA_HINT}")


def cuda_include_dirs() -> list[Path]:
    """Include directories for DALI's CUDA headers: :func:`find_cuda_include` first.

    When the headers come from the pip wheels, ``cuda_runtime.h`` (nvidia-cuda-runtime-cu12)
    includes ``crt/host_config.h`` (nvidia-cuda-nvcc-cu12) and CCCL headers
    (nvidia-cuda-cccl-cu12), which live in their own packages: their include folders follow.
    """
    dirs = [find_cuda_include()]
    for package in ("nvidia.cuda_nvcc", "nvidia.cuda_cccl"):
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        dirs += [Path(p) / "include" for p in module.__path__ if (Path(p) / "include").is_dir()]
    return dirs


def read_stamp(directory: Path) -> dict | None:
    """The stamp next to a built plugin, or ``None`` if absent or unreadable."""
    try:
        return json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _expected_stamp() -> dict:
    return {
        "dali_version": dali_version(),
        "source_digest": source_digest(),
        "key": plugin_key(),
        "abi": _STAMP_ABI,
    }


def is_current(directory: Path) -> bool:
    """Whether ``directory`` holds a plugin built for this DALI version and these sources."""
    return (directory / LIB_NAME).is_file() and read_stamp(directory) == _expected_stamp()


def build_plugin(directory: Path, *, verbose: bool = False) -> Path:
    """Compile the plugin into ``directory`` (atomically) and write its stamp.

    Args:
        directory: Destination; created if needed.
        verbose: Stream the compiler output instead of capturing it.

    Returns:
        Path of the built library.

    Raises:
        PluginBuildError: If CMake is missing, CUDA headers are missing or the build fails
            (the message carries the tail of the build log).
    """
    ops, csrc = _source_dirs()
    cmake = shutil.which("cmake")
    if cmake is None:
        raise PluginBuildError("building the DALI plugin needs CMake: `pip install cmake ninja`")
    cuda_inc = cuda_include_dirs()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = _expected_stamp()
    with tempfile.TemporaryDirectory(prefix="build-", dir=directory) as tmp:
        cfg = [
            cmake, "-S", str(ops), "-B", tmp,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DSLIPSTREAM_CSRC_DIR={csrc}",
            "-DSLIPSTREAM_CUDA_INCLUDE=" + ";".join(str(d) for d in cuda_inc),
        ]  # fmt: skip
        if shutil.which("ninja"):
            cfg += ["-G", "Ninja"]
        jobs = str(max(1, min(os.cpu_count() or 1, 8)))
        for cmd in (cfg, [cmake, "--build", tmp, "--parallel", jobs]):
            proc = subprocess.run(cmd, capture_output=not verbose, text=True, check=False)
            if proc.returncode != 0:
                log = ((proc.stdout or "") + (proc.stderr or ""))[-4000:]
                raise PluginBuildError(
                    f"building the slipstream DALI plugin failed ({' '.join(cmd[:3])} ...):\n{log}"
                )
        staged = directory / f".{LIB_NAME}.{os.getpid()}"
        shutil.copyfile(Path(tmp) / LIB_NAME, staged)
        os.replace(staged, directory / LIB_NAME)
    staged_stamp = directory / f".{STAMP_NAME}.{os.getpid()}"
    staged_stamp.write_text(json.dumps(stamp, indent=1))
    os.replace(staged_stamp, directory / STAMP_NAME)
    return directory / LIB_NAME


def ensure_built(directory: Path, *, builder: Callable[[Path], Path] = build_plugin) -> Path:
    """Build the plugin in ``directory`` unless a current one is there (one build per node).

    Builds run under :func:`slipstream.cache.build_lock.build_lock` of ``directory``: other
    processes wait (one log line: they wait for the DALI plugin build) and use the result;
    a failed build is raised by the processes that waited instead of compiling again.
    Where ``directory`` cannot be written, the plugin is built in
    :func:`private_plugin_dir` instead (with a warning).

    Returns:
        Path of the up-to-date library.

    Raises:
        PluginBuildError: If a build was needed and failed, or it produced no current stamp.
    """
    if is_current(directory):
        return directory / LIB_NAME
    problem = _unwritable(directory)
    if problem is not None:
        private = private_plugin_dir(directory.name)
        warnings.warn(
            f"slipstream: the DALI plugin folder {directory} cannot be written ({problem}); "
            f"building the plugin in {private} instead (set ${PLUGIN_DIR_ENV} to a writable "
            f"folder to keep one build for every run)",
            RuntimeWarning,
            stacklevel=2,
        )
        directory = private
        if is_current(directory):
            return directory / LIB_NAME
    with build_lock(directory, what=f"DALI plugin build ({directory.name})"):
        if not is_current(directory):  # another process may have built it meanwhile
            builder(directory)
    if not is_current(directory):
        raise PluginBuildError(
            f"the DALI plugin in {directory} does not match DALI {dali_version()} after a "
            f"rebuild (stamp: {read_stamp(directory)}); delete {directory} and retry"
        )
    return directory / LIB_NAME


def _unwritable(directory: Path) -> str | None:
    """Why plugins cannot be built in ``directory`` (and its lock beside it), or ``None``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    for folder in (directory, directory.parent):
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{folder} is read-only"
    return None


def private_plugin_dir(key: str | None = None) -> Path:
    """A per-user plugin folder under the temporary directory, for unwritable roots.

    ``<tmp>/slipstream-dali-plugin-<uid>/<key>``, created with mode 0700 (shared by this
    user's processes on the node, so its ranks still build once); a fresh ``mkdtemp``
    folder where that path belongs to someone else.

    Args:
        key: Sub-folder name (default :func:`plugin_key`).
    """
    base = Path(tempfile.gettempdir()) / f"slipstream-dali-plugin-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        owned = base.is_dir() and base.stat().st_uid == os.getuid()
    except OSError:
        owned = False
    if not owned:
        base = Path(tempfile.mkdtemp(prefix="slipstream-dali-plugin-"))
    directory = base / (key or plugin_key())
    directory.mkdir(exist_ok=True)
    return directory


def _schema_registered() -> bool:
    return _dali_backend.TryGetSchema(OP_SCHEMA) is not None


def load_plugin(root: str | os.PathLike | None = None) -> Path:
    """Make ``fn.slipstream_decode_crop`` available in this process (idempotent).

    Builds the plugin for the installed DALI if needed (first call: tens of seconds),
    checks its stamp, and loads it once: further calls return at once, because DALI aborts
    the process when an operator name is registered twice.

    Args:
        root: Plugin root (see :func:`plugin_dir`).

    Returns:
        Path of the loaded library (of the first load in this process).

    Raises:
        PluginBuildError: If the plugin must be built and cannot be.
        RuntimeError: If another library already registered ``SlipstreamDecodeCrop``.
    """
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        if _schema_registered():
            raise RuntimeError(
                f"a DALI operator named {OP_SCHEMA} is already registered by another library; "
                "loading slipstream's plugin as well would abort the process"
            )
        lib = ensure_built(plugin_dir(root))
        _plugin_manager.load_library(str(lib))
        _loaded = lib
        return lib
