"""Messages and progress bars: one quiet ``slipstream`` logger; bars only on a terminal or on
request (``SLIPSTREAM_PROGRESS``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slipstream.logs import PROGRESS_ENV, enable_logging, logger, show_progress


def test_show_progress_follows_argument_env_and_tty(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert show_progress(False) is False
    assert show_progress(None) is False  # pytest captures stderr: not a terminal
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert show_progress(None) is True and show_progress(True) is True
    assert show_progress(False) is False  # an explicit False wins
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert show_progress(True) is False


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != PROGRESS_ENV} | env
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300
    )


def test_logger_is_quiet_except_warnings():
    proc = _python(
        "import logging, slipstream; log = logging.getLogger('slipstream.cache');"
        "log.info('an info'); log.warning('a warning')"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "a warning\n"


def test_enable_logging_adds_one_handler():
    saved = (list(logger.handlers), logger.level)
    try:
        logger.handlers = [h for h in logger.handlers if not getattr(h, "_slipstream", False)]
        enable_logging(logging.INFO)
        enable_logging("DEBUG")
        ours = [h for h in logger.handlers if getattr(h, "_slipstream", False)]
        assert len(ours) == 1 and logger.level == logging.DEBUG
    finally:
        logger.handlers, level = saved
        logger.setLevel(level)


@pytest.mark.parametrize(("setting", "bar"), [(None, False), ("1", True), ("0", False)])
def test_build_progress_bar_only_on_request_when_not_a_tty(photo_folder, tmp_path, setting, bar):
    env = {} if setting is None else {PROGRESS_ENV: setting}
    dest = tmp_path / "cache"
    proc = _python(
        f"from slipstream.cli import main; raise SystemExit(main(['build', "
        f"{str(photo_folder)!r}, {str(dest)!r}]))",
        **env,
    )
    assert proc.returncode == 0, proc.stderr
    assert ("building" in proc.stderr) is bar, proc.stderr
    assert "slip cache ready" in proc.stdout and Path(dest, "manifest.json").is_file()
