"""The documentation builds: ``mkdocs build --strict`` over mkdocs.yml (the API reference is
generated from the docstrings by mkdocstrings), so a broken docstring or link fails here.

A second, tiny project with one broken docstring shows that the strict build does fail on it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python]: dev extra")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_docs_build_strict(tmp_path):
    proc = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loader_page = (tmp_path / "site" / "api" / "loader" / "index.html").read_text()
    for anchor in ("slipstream.loader.SlipstreamLoader", "slipstream.dataset.SlipstreamDataset"):
        assert f'id="{anchor}"' in loader_page
    assert (
        'id="slipstream.pipelines.supervised_train"'
        in (tmp_path / "site" / "api" / "pipelines" / "index.html").read_text()
    )


def test_a_broken_docstring_fails_the_strict_build(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# api\n\n::: broken\n")
    (tmp_path / "broken.py").write_text(
        textwrap.dedent(
            '''
            """A module."""


            def scale(value: int) -> int:
                """Scale a value.

                Args:
                    factor: Not a parameter of this function.
                """
                return value
            '''
        )
    )
    (tmp_path / "mkdocs.yml").write_text(
        textwrap.dedent(
            """
            site_name: broken
            plugins:
              - mkdocstrings:
                  handlers:
                    python:
                      paths: [.]
                      options:
                        docstring_style: google
            """
        )
    )
    proc = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "factor" in proc.stdout + proc.stderr
