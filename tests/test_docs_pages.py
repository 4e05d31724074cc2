"""The docs pages cannot go stale: their pictures and their examples are checked here.

- Every picture a page references exists (and every page in ``mkdocs.yml``'s nav exists).
- ``scripts/docs_pictures.py`` run into a temporary folder writes exactly the committed set
  of pictures, each of the committed size and with the same pixels up to a tolerance. The
  comparison is on decoded pixels, not bytes: the JPEG bytes (and the decoded crops the
  pictures show) depend on the libjpeg-turbo build of Pillow and of the native kernel, so
  bytes are equal on one machine but need not be across machines; a stale picture (another
  crop, another layout, another preset default) differs by far more than the tolerance.
- Every ``python`` code block of a page that follows a ``<!-- run -->`` line is run, the
  blocks of one page in order in one namespace, in a folder holding ``photos/`` (an image
  folder of real photos, class sub-folders), so a renamed argument or a changed output
  fails here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ("datasets.md", "loader.md", "presets.md", "crops.md", "yuv420.md")
RUN_MARK = "<!-- run -->"
PICTURE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.(?:jpg|png))\)")


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "docs_pictures", ROOT / "scripts" / "docs_pictures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runnable_blocks(page: Path) -> list[str]:
    """The ``python`` blocks of ``page`` that follow a ``<!-- run -->`` line."""
    blocks = re.findall(
        r"^" + re.escape(RUN_MARK) + r"\n```python\n(.*?)^```", page.read_text(), re.M | re.S
    )
    return blocks


def test_pages_are_in_the_nav_and_their_pictures_exist():
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in PAGES:
        page = DOCS / name
        assert page.is_file(), name
        assert f" {name}" in nav, f"{name} is not in mkdocs.yml's nav"
        for target in PICTURE.findall(page.read_text()):
            assert (page.parent / target).is_file(), f"{name} shows a missing picture {target}"
    assert all(runnable_blocks(DOCS / name) for name in PAGES)


def test_committed_pictures_are_the_ones_the_script_makes(tmp_path):
    script = _load_script()
    written = script.write_pictures(tmp_path / "docs", tmp_path / "work")
    made = {p.relative_to(tmp_path / "docs").as_posix() for p in written}
    committed = {
        p.relative_to(DOCS).as_posix()
        for folder in ("presets", "crops", "yuv420")
        for p in (DOCS / folder).iterdir()
    }
    assert made == committed
    total = 0
    for name in sorted(made):
        new = np.asarray(Image.open(tmp_path / "docs" / name).convert("RGB"), dtype=np.float32)
        old = np.asarray(Image.open(DOCS / name).convert("RGB"), dtype=np.float32)
        assert new.shape == old.shape, name
        error = np.abs(new - old).mean()
        assert error < 3.0, f"docs/{name} is stale (mean difference {error:.1f}): rerun the script"
        total += (DOCS / name).stat().st_size
    assert total < 1_000_000  # the committed pictures stay small


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory, photo_folder):
    """A working folder with ``photos/`` (the test photos, an image folder)."""
    folder = tmp_path_factory.mktemp("docs_examples")
    (folder / "photos").symlink_to(photo_folder, target_is_directory=True)
    return folder


@pytest.mark.parametrize("name", PAGES)
def test_page_examples_run(name, docs_folder, monkeypatch, capsys):
    monkeypatch.chdir(docs_folder)
    namespace: dict = {"__name__": f"docs_{Path(name).stem}"}
    for k, block in enumerate(runnable_blocks(DOCS / name)):
        try:
            exec(compile(block, f"docs/{name} block {k}", "exec"), namespace)  # noqa: S102
        except Exception as error:  # noqa: BLE001 - name the block that failed
            raise AssertionError(f"docs/{name}, runnable block {k} failed:\n{block}") from error
    assert capsys.readouterr().out  # the examples print what they show
