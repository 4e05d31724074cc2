"""Read a plain file list: one ``path label`` line per image.

Format (UTF-8)::

    # train.txt: comments and blank lines are ignored
    images/cat/001.jpg 0
    images/dog/a photo.jpg 1         <- the label is the last field; the path may hold spaces
    /abs/path/bird.png 2

* ``.csv`` files are read with :mod:`csv` (quoting works): exactly two columns
  ``path,label``; a first row ``path,label`` (any case) is a header and skipped.
* Any other file (``.txt``, ``.tsv``, ...): the label is the last whitespace-separated
  field of the line, the path is everything before it (stripped), so tabs and spaces both
  separate and paths may contain spaces.
* Labels are all integers (used as is, >= 0), or all class names (sorted, then numbered
  from 0 like :class:`~slipstream.readers.ImageFolderReader`); a mix is an error.
* Relative paths are resolved against ``root`` (default: the list file's folder).
* Lines starting with ``#`` (after leading spaces) and blank lines are skipped.

A malformed line or a missing file raises :class:`FileListError` naming the list file and
the line number. Sample order is the order of the lines.

Example:
    >>> reader = FileListReader("/data/train.txt")    # doctest: +SKIP
    >>> reader.read_sample(0)["label"]               # doctest: +SKIP
    0
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from slipstream.readers.file_samples import FileSamplesReader

FILE_LIST_SUFFIXES = (".txt", ".csv", ".tsv")
"""File name endings :class:`~slipstream.SlipstreamDataset` and ``slipstream build`` read as
file lists."""


_INTEGER = re.compile(r"-?[0-9]+")


class FileListError(ValueError):
    """A file list line is malformed or names a missing file; names the file and line."""


class FileListReader(FileSamplesReader):
    """Samples listed in a text or CSV file: the file bytes plus label, index and path.

    Args:
        list_file: The list (see the module docstring for the format).
        root: Folder that relative paths are resolved against (default: the list's folder).

    Raises:
        FileNotFoundError: ``list_file`` does not exist.
        FileListError: A malformed line, a missing image file, mixed label kinds, or no
            sample at all.

    Attributes:
        list_file: The list file.
        root: The folder relative paths are resolved against.
        classes: Class names when labels are names (sorted), else None.
        samples: ``(file path, label)`` per sample, in line order.
        rel_paths: Each sample's path as written in the list (its ``"path"`` field).
        lines: Line number (1-based) of each sample.
    """

    def __init__(self, list_file: str | os.PathLike, *, root: str | os.PathLike | None = None):
        """Parse ``list_file`` and check every listed file exists."""
        self.list_file = Path(list_file).expanduser()
        if not self.list_file.is_file():
            raise FileNotFoundError(f"file list {self.list_file} does not exist")
        self.root = Path(root).expanduser() if root is not None else self.list_file.parent
        self._text = self.list_file.read_bytes()
        rows = self._parse(self._text.decode("utf-8"))
        if not rows:
            raise FileListError(f"{self.list_file}: no samples (only blank or comment lines)")
        self.lines = [line for line, _, _ in rows]
        self.rel_paths = [path for _, path, _ in rows]
        labels, self.classes = self._labels([(line, label) for line, _, label in rows])
        self.samples = []
        for (line, rel, _), label in zip(rows, labels, strict=True):
            path = os.path.join(self.root, rel)
            if not os.path.isfile(path):
                raise FileListError(f"{self._where(line)}: file {path} does not exist")
            self.samples.append((path, label))

    def _where(self, line: int) -> str:
        return f"{self.list_file}:{line}"

    def _parse(self, text: str) -> list[tuple[int, str, str]]:
        """``(line number, path, label text)`` per sample line."""
        rows = []
        is_csv = self.list_file.suffix.lower() == ".csv"
        lines = csv.reader(io.StringIO(text)) if is_csv else text.splitlines()
        for number, raw in enumerate(lines, start=1):
            line = number if not is_csv else lines.line_num
            fields = [f.strip() for f in raw] if is_csv else raw.strip().rsplit(None, 1)
            first = fields[0] if fields else ""
            if not any(fields) or first.startswith("#"):
                continue
            if is_csv and not rows and [f.lower() for f in fields] == ["path", "label"]:
                continue  # header row
            if len(fields) != 2 or not fields[0] or not fields[1]:
                shape = "2 columns path,label" if is_csv else "'<path> <label>'"
                raise FileListError(f"{self._where(line)}: expected {shape}, got {raw!r}")
            rows.append((line, fields[0], fields[1]))
        return rows

    def _labels(self, labels: list[tuple[int, str]]) -> tuple[list[int], list[str] | None]:
        """Integer labels, or class names numbered in sorted order."""
        numeric = [_INTEGER.fullmatch(text) is not None for _, text in labels]
        if all(numeric):
            values = [int(text) for _, text in labels]
            for (line, _), value in zip(labels, values, strict=True):
                if value < 0:
                    raise FileListError(f"{self._where(line)}: negative label {value}")
            return values, None
        if any(numeric):
            line = labels[numeric.index(not numeric[0])][0]
            raise FileListError(
                f"{self._where(line)}: labels mix integers and class names (first line "
                f"{labels[0][0]} has {labels[0][1]!r}); use one kind"
            )
        classes = sorted({text for _, text in labels})
        class_to_idx = {name: i for i, name in enumerate(classes)}
        return [class_to_idx[text] for _, text in labels], classes

    def __repr__(self) -> str:
        """List file, root and image count."""
        return (
            f"FileListReader({str(self.list_file)!r}, root={str(self.root)!r}, "
            f"{len(self.samples)} images)"
        )

    def describe(self, index: int) -> str:
        """The file path of a sample and the list line naming it, for error messages."""
        return f"{self.samples[index][0]} ({self._where(self.lines[index])})"

    def _fingerprint_header(self) -> bytes:
        """The list's bytes and the root folder."""
        return self._text + b"\0" + os.fsencode(os.path.abspath(self.root))
