"""Cheap reopen: a built cache is found through its source pointer, not a walk of the files.

The fast check stats the source's folders only (counted here by wrapping ``os.stat`` and
``os.scandir``); a changed source (a file added, renamed, removed, a list edited) still
never reuses a stale cache; an in-place content edit keeps the folder times, so only
``verify_source="full"`` sees it (documented).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slipstream import SlipstreamDataset
from slipstream.readers import FileListError
from slipstream.readers.source_pointer import POINTER_DIR, pointer_is_current

PAST = time.time() - 3600.0


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), i * 20 % 256, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _age(root: Path) -> None:
    """Set every folder and file time of ``root`` an hour back (not racy any more)."""
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (PAST, PAST))
        os.utime(folder, (PAST, PAST))


def _tree(root: Path) -> Path:
    for c in ("a", "b"):
        (root / c / "sub").mkdir(parents=True)
        for j in range(30):
            (root / c / f"{j}.jpg").write_bytes(_jpeg(j))
        (root / c / "sub" / "deep.jpg").write_bytes(_jpeg(9))
    _age(root)
    return root


@contextmanager
def _count_file_access(root: Path) -> Iterator[dict[str, list[str]]]:
    """Paths under ``root`` passed to ``os.stat`` / ``os.lstat`` / ``os.scandir`` meanwhile."""
    seen: dict[str, list[str]] = {"stat": [], "scandir": []}
    prefix = str(root.resolve())
    real = {"stat": os.stat, "lstat": os.lstat, "scandir": os.scandir}

    def wrap(kind: str, name: str):
        def call(path=".", *args, **kwargs):
            text = os.fspath(path) if not isinstance(path, int) else ""
            if os.path.abspath(text).startswith(prefix):
                seen[kind].append(text)
            return real[name](path, *args, **kwargs)

        return call

    os.stat, os.lstat = wrap("stat", "stat"), wrap("stat", "lstat")
    os.scandir = wrap("scandir", "scandir")
    try:
        yield seen
    finally:
        os.stat, os.lstat, os.scandir = real["stat"], real["lstat"], real["scandir"]


def _open(source: Path, caches: Path, **kwargs) -> SlipstreamDataset:
    return SlipstreamDataset(source, cache_dir=caches, progress=False, **kwargs)


def test_fast_reopen_stats_folders_not_files(tmp_path: Path):
    root, caches = _tree(tmp_path / "tree"), tmp_path / "caches"
    built = _open(root, caches)
    pointers = list((caches / POINTER_DIR).iterdir())
    assert len(pointers) == 1
    record = json.loads(pointers[0].read_text())
    assert record["file_count"] == 62 and record["cache"] == built.cache_path.name
    assert len(record["watched"]) == 5  # tree, a, a/sub, b, b/sub
    assert pointer_is_current(record)

    with _count_file_access(root) as fast:
        again = _open(root, caches)
    assert again.cache_path == built.cache_path
    assert not fast["scandir"], fast["scandir"]
    assert not [p for p in fast["stat"] if p.endswith(".jpg")], fast["stat"]
    probes = {p for p in fast["stat"] if not os.path.exists(p)}  # index.json, manifest.json...
    assert set(fast["stat"]) - probes == set(record["watched"])  # only the watched folders

    with _count_file_access(root) as full:  # the counter sees a walk when there is one
        _open(root, caches, verify_source="full")
    assert len([p for p in full["stat"] if p.endswith(".jpg")]) >= 62
    assert full["scandir"]

    with _count_file_access(root) as trusting:
        assert _open(root, caches, verify_source="none").cache_path == built.cache_path
    assert not [p for p in trusting["stat"] if p.endswith(".jpg")]


def test_added_renamed_and_removed_files_give_a_new_cache(tmp_path: Path):
    root, caches = _tree(tmp_path / "tree"), tmp_path / "caches"
    first = _open(root, caches)
    assert len(first) == 62

    (root / "a" / "sub" / "new.jpg").write_bytes(_jpeg(3))  # in a sub-folder
    added = _open(root, caches)
    assert len(added) == 63 and added.cache_path != first.cache_path
    _age(root)

    os.rename(root / "b" / "4.jpg", root / "b" / "renamed.jpg")
    renamed = _open(root, caches)
    assert renamed.cache_path not in (first.cache_path, added.cache_path)
    paths = {renamed[i]["path"] for i in range(len(renamed))}
    assert "b/renamed.jpg" in paths and "b/4.jpg" not in paths
    _age(root)

    (root / "a" / "0.jpg").unlink()
    removed = _open(root, caches)
    assert len(removed) == 62 and "a/0.jpg" not in {removed[i]["path"] for i in range(62)}

    # "none" trusts the pointer: it reuses the last cache even after a change
    _age(root)
    (root / "b" / "extra.jpg").write_bytes(_jpeg(5))
    assert _open(root, caches, verify_source="none").cache_path == removed.cache_path
    assert len(_open(root, caches)) == 63  # the fast check sees the change


def test_in_place_edit_needs_the_full_check(tmp_path: Path):
    root, caches = _tree(tmp_path / "tree"), tmp_path / "caches"
    first = _open(root, caches)
    index = next(i for i in range(len(first)) if first[i]["path"] == "a/2.jpg")
    (root / "a" / "2.jpg").write_bytes(_jpeg(11))  # same name: the folder time stays
    os.utime(root / "a", (PAST, PAST))
    assert _open(root, caches).cache_path == first.cache_path  # fast: not seen (documented)
    full = _open(root, caches, verify_source="full")
    assert full.cache_path != first.cache_path
    assert full[index]["image"] == _jpeg(11)
    assert _open(root, caches).cache_path == full.cache_path  # the pointer follows


def test_racy_folder_times_are_not_trusted(tmp_path: Path):
    root, caches = _tree(tmp_path / "tree"), tmp_path / "caches"
    (root / "a" / "just-now.jpg").write_bytes(_jpeg(1))  # folder "a" modified just now
    _open(root, caches)
    record = json.loads(next((caches / POINTER_DIR).iterdir()).read_text())
    assert not pointer_is_current(record)  # a file added in the same tick would be missed
    with _count_file_access(root) as seen:
        _open(root, caches)
    assert [p for p in seen["stat"] if p.endswith(".jpg")]  # fell back to the fingerprint


def test_file_list_pointer_sees_list_edits_and_renames(tmp_path: Path):
    root, caches = _tree(tmp_path / "tree"), tmp_path / "caches"
    listing = tmp_path / "train.txt"
    listing.write_text("tree/a/0.jpg 0\ntree/b/1.jpg 1\n")
    os.utime(listing, (PAST, PAST))
    first = _open(listing, caches)
    with _count_file_access(root) as seen:
        assert _open(listing, caches).cache_path == first.cache_path
    assert not [p for p in seen["stat"] if p.endswith(".jpg")]

    listing.write_text("tree/a/0.jpg 0\ntree/b/1.jpg 1\ntree/b/2.jpg 1\n")
    assert len(_open(listing, caches)) == 3
    _age(root)
    os.utime(listing, (PAST, PAST))
    os.rename(root / "b" / "1.jpg", root / "b" / "x.jpg")  # a listed file goes away
    with pytest.raises(FileListError, match=r"1\.jpg"):
        _open(listing, caches)
