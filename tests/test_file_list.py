"""FileListReader: ``path label`` lines (text or CSV) as a source, in the dataset and the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipstream import SlipstreamDataset
from slipstream.cache import SlipCache
from slipstream.cli import main
from slipstream.readers import FileListError, FileListReader, ImageFolderReader


@pytest.fixture(scope="module")
def photos(photo_folder) -> list[tuple[str, int]]:
    """``(absolute path, label)`` of the photo folder, torchvision order."""
    return ImageFolderReader(photo_folder).samples


def _relative(photos, photo_folder, count: int) -> list[tuple[str, int]]:
    return [(os.path.relpath(p, photo_folder), label) for p, label in photos[:count]]


def test_text_list_relative_to_its_folder(photo_folder, photos, tmp_path):
    rows = _relative(photos, photo_folder, 12)
    for rel, _ in rows:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((Path(photo_folder) / rel).read_bytes())
    listing = tmp_path / "train.txt"
    text = "# a comment\n\n" + "".join(f"  {p}\t {label}  \n" for p, label in rows)
    listing.write_text(text + "   # indented comment\n")
    reader = FileListReader(listing)
    assert reader.samples == [(os.path.join(tmp_path, p), label) for p, label in rows]
    assert reader.lines == list(range(3, 15))
    assert reader.classes is None
    for i, (path, label) in enumerate(reader.samples):
        sample = reader.read_sample(i)
        assert sample["image"] == Path(path).read_bytes()
        assert (sample["label"], sample["index"], sample["path"]) == (label, i, rows[i][0])
    assert reader.field_types == ImageFolderReader.field_types


def test_root_argument_and_paths_with_spaces(tmp_path, photos):
    data = tmp_path / "data dir"
    (data / "a b").mkdir(parents=True)
    names = []
    for i, (path, _) in enumerate(photos[:3]):
        name = f"a b/photo {i}.jpg"
        (data / name).write_bytes(Path(path).read_bytes())
        names.append(name)
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text("".join(f"{name} {i}\n" for i, name in enumerate(names)))
    reader = FileListReader(listing, root=data)
    assert [p for p, _ in reader.samples] == [os.path.join(data, n) for n in names]
    assert reader.rel_paths == names
    with pytest.raises(FileListError, match=r"train\.txt:1: file .*photo 0\.jpg does not exist"):
        FileListReader(listing)  # relative to the list's own folder: missing


def test_csv_with_header_quotes_and_class_names(tmp_path, photos):
    for i, (path, _) in enumerate(photos[:4]):
        (tmp_path / f"p,{i}.jpg").write_bytes(Path(path).read_bytes())
    listing = tmp_path / "train.csv"
    listing.write_text(
        'Path,Label\n"p,0.jpg",dog\n"p,1.jpg",cat\n# skipped\n\n"p,2.jpg",dog\n"p,3.jpg",bird\n'
    )
    reader = FileListReader(listing)
    assert reader.classes == ["bird", "cat", "dog"]
    assert [label for _, label in reader.samples] == [2, 1, 2, 0]
    assert reader.lines == [2, 3, 6, 7]
    assert reader.describe(3).endswith(f"p,3.jpg ({listing}:7)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.jpg 0\njust_a_path\n", r"train\.txt:2: expected '<path> <label>'"),
        ("a.jpg 0\nb.jpg dog\n", r"train\.txt:2: labels mix integers and class names"),
        ("a.jpg -1\n", r"train\.txt:1: negative label -1"),
        ("a.jpg 0\nmissing.jpg 1\n", r"train\.txt:2: file .*missing\.jpg does not exist"),
        ("# nothing\n\n", "no samples"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, photos, text, message):
    (tmp_path / "a.jpg").write_bytes(Path(photos[0][0]).read_bytes())
    (tmp_path / "b.jpg").write_bytes(Path(photos[1][0]).read_bytes())
    (tmp_path / "train.txt").write_text(text)
    with pytest.raises(FileListError, match=message):
        FileListReader(tmp_path / "train.txt")


def test_csv_wrong_column_count(tmp_path, photos):
    (tmp_path / "a.jpg").write_bytes(Path(photos[0][0]).read_bytes())
    (tmp_path / "t.csv").write_text("a.jpg,0\na.jpg,1,extra\n")
    with pytest.raises(FileListError, match=r"t\.csv:2: expected 2 columns path,label"):
        FileListReader(tmp_path / "t.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FileListReader(tmp_path / "nope.txt")


def test_dataset_and_cli_build(photo_folder, photos, tmp_path, capsys):
    listing = tmp_path / "subset.txt"
    chosen = photos[::7]
    listing.write_text("".join(f"{path} {label}\n" for path, label in chosen))  # absolute
    ds = SlipstreamDataset(listing, cache_dir=tmp_path / "caches", progress=False)
    assert ds.cache_path.name.startswith("subset-")
    assert len(ds) == len(chosen)
    for i in (0, len(chosen) - 1):
        assert ds[i]["image"] == Path(chosen[i][0]).read_bytes()
        assert ds[i]["label"] == chosen[i][1]
    dest = tmp_path / "cli.slip"
    assert main(["build", str(listing), str(dest)]) == 0
    cache = SlipCache.open(dest)
    assert len(cache) == len(chosen)
    assert cache.manifest["source"]["kind"] == "FileListReader"
    assert cache.manifest["source"]["root"] == str(listing)
    assert "slip cache ready" in capsys.readouterr().out
