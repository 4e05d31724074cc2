"""Shared locations (slipstream.paths): the dataset cache root and the DALI plugin root."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipstream.paths import (
    CACHE_DIR_ENV,
    PLUGIN_DIR_ENV,
    default_cache_root,
    default_plugin_root,
)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No slipstream or XDG variables; ``$HOME`` is a temporary folder."""
    for name in (CACHE_DIR_ENV, PLUGIN_DIR_ENV, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_cache_root_env_then_home(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cache_root() == bare_env / ".cache" / "slipstream"
    monkeypatch.setenv(CACHE_DIR_ENV, str(bare_env / "scratch"))
    assert default_cache_root() == bare_env / "scratch"


def test_plugin_root_env_then_xdg_then_home(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_plugin_root() == bare_env / ".cache" / "slipstream" / "dali_plugin"
    monkeypatch.setenv("XDG_CACHE_HOME", str(bare_env / "xdg"))
    assert default_plugin_root() == bare_env / "xdg" / "slipstream" / "dali_plugin"
    monkeypatch.setenv(PLUGIN_DIR_ENV, str(bare_env / "plugins"))
    assert default_plugin_root() == bare_env / "plugins"


def test_plugin_root_ignores_the_cache_root(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A per-job scratch cache folder does not move (and so rebuild) the plugin."""
    before = default_plugin_root()
    monkeypatch.setenv(CACHE_DIR_ENV, str(bare_env / "job-1234"))
    assert default_plugin_root() == before
    assert not default_plugin_root().is_relative_to(default_cache_root())


def test_plugin_dir_is_the_plugin_root_per_dali_version(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nvidia.dali", reason="nvidia-dali is not installed")
    from slipstream.dali import plugin

    key = plugin.plugin_key()  # DALI version, CUDA major, libjpeg soname, CPU
    assert key.startswith(f"dali{plugin.dali_version()}-")
    assert plugin.plugin_dir(bare_env / "given") == bare_env / "given" / key
    monkeypatch.setenv(PLUGIN_DIR_ENV, str(bare_env / "plugins"))
    monkeypatch.setenv(CACHE_DIR_ENV, str(bare_env / "scratch"))
    assert plugin.plugin_dir() == bare_env / "plugins" / key
