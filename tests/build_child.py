"""Run by ``python tests/build_child.py SRC DEST WORKDIR [--stall-at BATCH] [--go FILE]``.

One cache builder process for ``tests/test_build_safety.py``:

* writes ``WORKDIR/ready-<pid>`` once imported, then waits for ``--go FILE`` to exist
  (so several builders start at the same moment);
* builds ``DEST`` from the image folder ``SRC`` with a reader that appends its pid to
  ``WORKDIR/reads.log`` on its first read (one line per process that really built) and
  sleeps a little per batch (so concurrent builders overlap);
* with ``--stall-at B``: on batch ``B`` writes ``WORKDIR/stalled-<pid>`` and sleeps for
  a minute (the test kills it there);
* prints a JSON line with the cache's sample count and a digest of every file's bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from slipstream.cache import SlipCache, build_cache
from slipstream.cache.build_batches import BATCH_SIZE
from slipstream.readers import ImageFolderReader


class SlowReader(ImageFolderReader):
    """An image folder reader that logs its first read, sleeps per batch, may stall."""

    def __init__(self, root: str, workdir: Path, stall_at: int | None) -> None:
        super().__init__(root)
        self.workdir, self.stall_at, self.logged = workdir, stall_at, False
        self.lock = threading.Lock()

    def read_batch(self, start: int, stop: int) -> dict:
        with self.lock:
            if not self.logged:
                self.logged = True
                with open(self.workdir / "reads.log", "a") as f:
                    f.write(f"{os.getpid()}\n")
        if self.stall_at is not None and start // BATCH_SIZE == self.stall_at:
            (self.workdir / f"stalled-{os.getpid()}").write_text("stalled")
            time.sleep(60)
        time.sleep(0.25)  # long enough for the other builders to reach the lock
        return super().read_batch(start, stop)


def cache_digest(path: Path) -> str:
    """sha256 over the names and bytes of the cache's data files (not the manifest)."""
    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.name != "manifest.json":
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("dest", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--stall-at", type=int, default=None)
    parser.add_argument("--go", type=Path, default=None)
    args = parser.parse_args()
    (args.workdir / f"ready-{os.getpid()}").write_text("ready")
    while args.go is not None and not args.go.exists():
        time.sleep(0.01)
    reader = SlowReader(args.src, args.workdir, args.stall_at)
    dest = build_cache(reader, args.dest, progress=True, num_workers=2)
    cache = SlipCache.open(dest)
    print(json.dumps({"num_samples": len(cache), "digest": cache_digest(dest)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
