"""Ctrl-C and ``del loader`` in the middle of an epoch stop every thread the loader started.

SIGINT goes to a child process iterating a loader (native, DALI CPU): the loop must stop
at once (the child catches KeyboardInterrupt within 3 s) with no ``slipstream-*`` Python
thread left (the gather and decode stages), and the process then exits with the
KeyboardInterrupt (its interpreter teardown takes 2-5 s on 2 busy cores: torch, numba, DALI).
A process that exits while an epoch is in flight exits cleanly: the loaders are closed at
exit (before that, finalization caught the decode thread inside the C++ kernel: abort).
``del`` of a loader and its iterator after one batch must give back the OS threads the epoch
started (counted in ``/proc/self/task`` as in ``test_soak.py``; the native kernel's thread
pool and DALI's are created once per process, so the count is taken after a first loader
warmed them up).
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from loader_engines import engine_params, make_loader

from slipstream.pipelines import supervised_train

CPU_ENGINES = ["native-jpeg", "dali-cpu-jpeg"]

CHILD = textwrap.dedent(
    """
    import faulthandler, signal, sys, threading, time
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the parent's stack dump on a hang
    # Ctrl-C as in a terminal: a job started in the background of a script (e.g. CI under
    # `nohup ... &`) inherits SIGINT ignored, and Python then installs no handler for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[3])
    from loader_engines import make_loader
    from slipstream import SlipstreamDataset
    from slipstream.pipelines import supervised_train

    dataset = SlipstreamDataset(sys.argv[1])
    pipelines = supervised_train(64, normalize=False, dtype="uint8")
    loader = make_loader(dataset, sys.argv[2], 16, pipelines)
    try:
        for epoch in range(10_000):
            for i, batch in enumerate(loader):
                if epoch == 0 and i == 0:
                    print("READY", flush=True)
                time.sleep(0.005)
        print("FINISHED", flush=True)
    except KeyboardInterrupt:
        left = [t.name for t in threading.enumerate() if t.name.startswith("slipstream")]
        print("LEFT", left, time.monotonic(), flush=True)
        raise
    """
)


@pytest.mark.parametrize("engine", engine_params(CPU_ENGINES))
def test_ctrl_c_stops_the_loader(photo_dataset, engine, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    tests_dir = os.path.dirname(__file__)
    child = subprocess.Popen(
        [sys.executable, str(script), str(photo_dataset.cache_path), engine, tests_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "READY", child.stderr.read()[-2000:]
        time.sleep(0.5)  # mid-epoch (an epoch of 240 samples takes longer on 2 cores)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        reader.join(timeout=30)  # until the child closes stdout (exits) or 30 s
        if reader.is_alive() and not any(line.startswith("LEFT") for line in lines):
            child.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack
            time.sleep(3)
            child.kill()
            pytest.fail("no KeyboardInterrupt within 30 s; stacks:\n" + child.stderr.read()[-6000:])
        child.wait(timeout=120)  # interpreter teardown (torch, numba, DALI) on busy cores
        reader.join(timeout=10)
        took = time.monotonic() - sent
        out, err = "".join(lines), child.stderr.read()
    finally:
        child.kill()
    assert "FINISHED" not in out
    assert "LEFT [] " in out, out + err[-2000:]
    caught = float(out.split("LEFT [] ")[1].split()[0]) - sent  # CLOCK_MONOTONIC: one clock
    assert 0 < caught < 3.0, caught
    assert "KeyboardInterrupt" in err and child.returncode == -signal.SIGINT, err[-2000:]
    assert took < 120.0, took


EXIT_MID_EPOCH = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from loader_engines import make_loader
    from slipstream import SlipstreamDataset
    from slipstream.pipelines import supervised_train

    dataset = SlipstreamDataset(sys.argv[1])
    pipelines = supervised_train(64, normalize=False, dtype="uint8")
    loader = make_loader(dataset, sys.argv[2], 16, pipelines)
    it = iter(loader)
    next(it)
    print("EXITING", flush=True)
    """
)


@pytest.mark.parametrize("engine", engine_params(CPU_ENGINES))
def test_exit_with_an_epoch_in_flight(photo_dataset, engine, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(EXIT_MID_EPOCH)
    tests_dir = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, str(script), str(photo_dataset.cache_path), engine, tests_dir],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "EXITING" in done.stdout, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr


def _os_threads() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/task"))


def _python_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("slipstream")]


@pytest.mark.parametrize("engine", engine_params(CPU_ENGINES))
def test_del_mid_epoch_releases_threads(photo_dataset, engine):
    pipelines = supervised_train(64, normalize=False, dtype="uint8")
    with make_loader(photo_dataset, engine, 16, pipelines) as warm:  # process-wide pools
        next(iter(warm))
    baseline = _os_threads()
    loader = make_loader(photo_dataset, engine, 16, pipelines)
    it = iter(loader)
    next(it)
    assert _python_threads() and _os_threads() > baseline  # the epoch's threads run
    del loader, it  # no gc.collect(): reference counting alone must stop them
    assert _python_threads() == []
    assert _os_threads() == baseline
