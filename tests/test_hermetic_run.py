"""The test run is hermetic: caches and the DALI plugin go to a per-run temporary folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from slipstream.paths import default_cache_root, default_plugin_root


def test_cache_and_plugin_roots_are_per_run_temporary_folders():
    user_cache = Path.home() / ".cache"
    run_dir = Path(os.environ["SLIPSTREAM_CACHE_DIR"]).parent
    assert run_dir.name.startswith("slipstream-tests-")
    assert run_dir.parent == Path(tempfile.gettempdir())
    for root in (default_cache_root(), default_plugin_root()):
        assert root.parent == run_dir
        assert user_cache not in root.parents
