"""A decode error thrown inside DALI must not kill the process (the H200 segfault, issue 12).

On the H200 machine (Python 3.12, torch 2.11, DALI 2.4) the corrupt-sample test died with a
segfault inside ``DALIGenericIterator.__next__`` at the first decode error, when the CPU
operator still threw for a bad sample. The loader no longer takes that path (the operator
returns a per-sample status), but the throwing path (``decode_crop(..., status=False)``) is
public: this runs it many times in a child process, through ``Pipeline.run`` and through
``DALIGenericIterator``, and checks that every error arrives as a Python exception and the
process exits normally. A crash-on-throw shows as a negative return code (a signal).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("nvidia.dali", reason="nvidia-dali is not installed")
pytestmark = pytest.mark.dali

ROUNDS = 25

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from nvidia.dali import fn, pipeline_def
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    import slipstream.dali as sdali

    good = np.fromfile(sys.argv[1], dtype=np.uint8)
    bad = np.frombuffer(b"this is not a jpeg" * 8, dtype=np.uint8)
    windows = [np.array([0, 0, 16, 16], np.int32)] * 4
    rounds = int(sys.argv[2])

    def source():
        for _ in range(rounds):
            yield [good, bad, good, good], windows

    @pipeline_def(batch_size=4, num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, win = fn.external_source(source, num_outputs=2, cycle="raise")
        return sdali.decode_crop(jpegs, win, size=16)

    raised = 0
    for _ in range(rounds):  # Pipeline.run (a failed pipeline is invalid: a new one each time)
        p = pipe()
        p.build()
        try:
            p.run()
        except Exception:  # noqa: BLE001
            raised += 1
        del p
    for _ in range(rounds):  # the iterator (where the H200 crash was seen), rebuilt each time
        try:  # the constructor already runs the first batch
            next(DALIGenericIterator(pipe(), ["image"], auto_reset=False))
        except StopIteration:
            pass
        except Exception:  # noqa: BLE001
            raised += 1
    print("survived", raised)
    """
)


def test_throwing_decode_path_does_not_crash_the_process(photo_folder, tmp_path):
    jpeg = next(photo_folder.rglob("*.jpg"))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(script), str(jpeg), str(ROUNDS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert f"survived {2 * ROUNDS}" in done.stdout, (done.stdout, done.stderr[-2000:])
