"""Shared on-disk locations: where dataset caches and the compiled DALI plugin live.

This module is the bottom layer of the package: it imports nothing from slipstream, so
every stage (cache, readers, dali, dataset, cli) can ask it for a location without
importing a stage above itself. Two roots, kept apart on purpose::

    $SLIPSTREAM_CACHE_DIR (default ~/.cache/slipstream)/       dataset caches, s3 downloads,
      <name>-<fingerprint>-v<version>/                          YUV420 companions
    $SLIPSTREAM_PLUGIN_DIR (default $XDG_CACHE_HOME/slipstream/dali_plugin,
                            else ~/.cache/slipstream/dali_plugin)/
      dali<version>-cuda<major>-<libjpeg soname>-<arch>/       the DALI operator plugin,
        libslipstream_dali.so                                   one folder per build key
                                                                (slipstream.dali.plugin)

A per-job scratch ``$SLIPSTREAM_CACHE_DIR`` therefore does not recompile the plugin.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "PLUGIN_DIR_ENV", "default_cache_root", "default_plugin_root"]

CACHE_DIR_ENV = "SLIPSTREAM_CACHE_DIR"
PLUGIN_DIR_ENV = "SLIPSTREAM_PLUGIN_DIR"


def default_cache_root() -> Path:
    """Where caches built from other sources (and ``s3://`` downloads) go.

    Returns:
        ``$SLIPSTREAM_CACHE_DIR`` when set, else ``~/.cache/slipstream``.
    """
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root) if root else Path.home() / ".cache" / "slipstream"


def default_plugin_root() -> Path:
    """Where the DALI operator plugin is built (one sub-folder per DALI build key).

    The folder may be shared and read-only (e.g. prepared by an administrator): a current
    plugin there is used; when one must be built and the folder cannot be written, the
    plugin is built in a private temporary folder with a warning.

    Returns:
        ``$SLIPSTREAM_PLUGIN_DIR`` when set, else ``$XDG_CACHE_HOME/slipstream/dali_plugin``
        when ``XDG_CACHE_HOME`` is set, else ``~/.cache/slipstream/dali_plugin``.
    """
    root = os.environ.get(PLUGIN_DIR_ENV)
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "slipstream" / "dali_plugin"
