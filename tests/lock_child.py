"""Run by ``python tests/lock_child.py KIND SOURCE CACHE_ROOT WORKDIR``: one rank of a node.

For ``tests/test_build_lock.py`` and ``tests/test_remote_cache.py``. Writes
``WORKDIR/ready-<pid>``, waits for ``WORKDIR/go``, then opens ``SOURCE`` and prints one
JSON line: ``{"ok": true, "cache": ..., "num_samples": ...}`` or ``{"ok": false, "type":
..., "message": ...}`` (exit status 0 either way). KIND:

* ``folder``: an image folder built through :func:`build_cache` by a reader that logs
  its pid to ``WORKDIR/reads.log`` on its first read and sleeps a little per batch;
* ``dataset``: ``SlipstreamDataset(SOURCE, cache_dir=CACHE_ROOT)`` (e.g. an ``s3://`` URL),
  with ``remote_cache=$SLIP_TEST_REMOTE`` when that is set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    kind, source, cache_root, workdir = (
        sys.argv[1],
        sys.argv[2],
        Path(sys.argv[3]),
        Path(sys.argv[4]),
    )
    import slipstream  # noqa: F401  (imported before "ready": the ranks start together)

    (workdir / f"ready-{os.getpid()}").write_text("ready")
    while not (workdir / "go").exists():
        time.sleep(0.01)
    try:
        if kind == "folder":
            from build_child import SlowReader

            from slipstream.cache import SlipCache, build_cache

            dest = build_cache(
                SlowReader(source, workdir, None), cache_root / "photos.slip", num_workers=0
            )
            cache = SlipCache.open(dest)
        else:
            from slipstream import SlipstreamDataset

            remote = os.environ.get("SLIP_TEST_REMOTE") or None
            extra = {"remote_cache": remote} if remote else {}
            cache = SlipstreamDataset(source, cache_dir=cache_root, **extra).cache
        result = {"ok": True, "cache": str(cache.path), "num_samples": len(cache)}
    except Exception as exc:
        result = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
