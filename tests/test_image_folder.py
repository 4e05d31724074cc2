"""ImageFolderReader: same classes, labels and sample order as torchvision's ImageFolder."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slipstream.readers import IMG_EXTENSIONS, ImageFolderReader


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    out = io.BytesIO()
    img.save(out, format="JPEG")
    return out.getvalue()


def _tree(root: Path) -> Path:
    """Classes whose sort order is tricky, nested folders, non-image files, a symlink."""
    files = [
        "b/1.jpg",
        "b/10.jpg",
        "b/2.JPG",
        "b/sub/0.jpeg",
        "b/notes.txt",
        "a/z.png",
        "a/A.jpg",
        "a/deeper/x/y.webp",
        "B/only.jpg",
        "_under/u.bmp",
        "a b/space.jpg",
    ]
    for i, rel in enumerate(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(i))
    (root / "loose_file.jpg").write_bytes(_jpeg(99))  # files at root level are not samples
    (root / "B" / "link").symlink_to(root / "b" / "sub", target_is_directory=True)
    return root


def test_matches_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder

    root = _tree(tmp_path / "data")
    reader = ImageFolderReader(root)
    ref = ImageFolder(str(root))
    assert reader.classes == ref.classes
    assert reader.class_to_idx == ref.class_to_idx
    assert reader.samples == ref.samples
    assert len(reader) == len(ref) == 11  # 10 images + 1 through the symlink
    assert IMG_EXTENSIONS == tuple(__import__("torchvision").datasets.folder.IMG_EXTENSIONS)


def test_read_sample(tmp_path):
    root = _tree(tmp_path / "data")
    reader = ImageFolderReader(root)
    for i, (path, label) in enumerate(reader.samples):
        sample = reader.read_sample(i)
        assert sample["image"] == Path(path).read_bytes()
        assert sample["label"] == label
        assert sample["index"] == i
        assert sample["path"] == os.path.relpath(path, root)
        assert not os.path.isabs(sample["path"])
        assert reader.describe(i) == path
    assert set(reader.read_sample(0)) == set(reader.field_types)
    assert reader.field_types == {
        "image": "ImageBytes",
        "label": "int",
        "index": "int",
        "path": "str",
    }


def test_extensions_filter(tmp_path):
    root = _tree(tmp_path / "data")
    reader = ImageFolderReader(root, extensions=(".png",), allow_empty=True)
    assert [os.path.basename(p) for p, _ in reader.samples] == ["z.png"]
    with pytest.raises(FileNotFoundError, match="no image files in class folder"):
        ImageFolderReader(root, extensions=(".png",))


def test_fingerprint(tmp_path):
    root = _tree(tmp_path / "data")
    first = ImageFolderReader(root).fingerprint()
    assert first == ImageFolderReader(root).fingerprint()
    assert len(first) == 64 and int(first, 16) >= 0
    target = root / "a" / "A.jpg"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = ImageFolderReader(root).fingerprint()
    assert touched != first
    (root / "a" / "new.jpg").write_bytes(_jpeg(5))
    assert ImageFolderReader(root).fingerprint() not in (first, touched)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderReader(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(_jpeg(0))
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolderReader(tmp_path / "flat")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no image files"):
        ImageFolderReader(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no image files"):
        ImageFolderReader(tmp_path / "empty", allow_empty=True)  # no image at all


@pytest.mark.parametrize("spelling", ["./data", "data/", "data"])
def test_root_spelling(tmp_path, monkeypatch, spelling):
    from torchvision.datasets import ImageFolder

    _tree(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    reader = ImageFolderReader(spelling)
    assert reader.samples == ImageFolder(spelling).samples
    for i, (path, _) in enumerate(reader.samples):
        assert reader.read_sample(i)["path"] == os.path.relpath(path, spelling)
