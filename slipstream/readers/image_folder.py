"""Read a class-per-folder image tree the way ``torchvision.datasets.ImageFolder`` does.

::

    root/
    ├── cat/  001.jpg  002.png  sub/003.jpeg     -> label 0
    └── dog/  xyz.jpg                            -> label 1

Classes are the sorted names of ``root``'s sub-folders; each class folder is walked
recursively (symlinks followed) in sorted order, keeping files whose lower-cased name ends
with an allowed extension. Sample order, ``classes`` and ``class_to_idx`` therefore equal
torchvision's, so labels agree with models trained on ``ImageFolder``.

Example:
    >>> reader = ImageFolderReader("/data/imagenet/train")  # doctest: +SKIP
    >>> reader.read_sample(0)["label"]                     # doctest: +SKIP
    0
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The extensions torchvision's ``ImageFolder`` accepts (``torchvision.datasets.folder``)."""


class ImageFolderReader:
    """Samples of an image folder tree: the encoded file bytes plus label, index and path.

    Args:
        root: Folder with one sub-folder per class.
        extensions: Lower-case file name endings to accept.
        allow_empty: Accept class folders without any image (torchvision raises).

    Raises:
        FileNotFoundError: ``root`` is missing, has no class folder, a class has no image
            (unless ``allow_empty``), or there is no image at all.

    Attributes:
        root: The root folder.
        classes: Sorted class folder names.
        class_to_idx: Class name -> label.
        samples: ``(absolute file path, label)`` in torchvision's order.
        field_types: Field name -> slip cache field type.
    """

    field_types: dict[str, str] = {
        "image": "ImageBytes",
        "label": "int",
        "index": "int",
        "path": "str",
    }

    def __init__(
        self,
        root: str | os.PathLike,
        extensions: tuple[str, ...] = IMG_EXTENSIONS,
        *,
        allow_empty: bool = False,
    ) -> None:
        """Scan ``root`` (see the class docstring)."""
        # Paths are joined onto the root as given, like torchvision, so samples compare equal.
        self._root_str = os.path.expanduser(os.fspath(root))
        self._prefix_len = len(os.path.join(self._root_str, ""))
        self.root = Path(self._root_str)
        self.extensions = tuple(e.lower() for e in extensions)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder root {self.root} does not exist")
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"no class folders in {self.root}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = self._scan(allow_empty)

    def _scan(self, allow_empty: bool) -> list[tuple[str, int]]:
        samples: list[tuple[str, int]] = []
        empty = []
        for name in self.classes:
            label = self.class_to_idx[name]
            before = len(samples)
            class_dir = os.path.join(self._root_str, name)
            for folder, _, fnames in sorted(os.walk(class_dir, followlinks=True)):
                for fname in sorted(fnames):
                    if fname.lower().endswith(self.extensions):
                        samples.append((os.path.join(folder, fname), label))
            if len(samples) == before:
                empty.append(name)
        if (empty and not allow_empty) or not samples:
            raise FileNotFoundError(
                f"no image files in class folder(s) {', '.join(empty)} of {self.root}; "
                f"accepted extensions: {', '.join(self.extensions)}"
            )
        return samples

    def __len__(self) -> int:
        """Number of images."""
        return len(self.samples)

    def __repr__(self) -> str:
        """Root, image count and class count."""
        return (
            f"ImageFolderReader({str(self.root)!r}, {len(self.samples)} images, "
            f"{len(self.classes)} classes)"
        )

    def read_sample(self, index: int) -> dict[str, Any]:
        """Read one sample.

        Args:
            index: Sample index in ``[0, len(self))``.

        Returns:
            ``{"image": file bytes, "label": int, "index": index, "path": path relative
            to root}``.
        """
        path, label = self.samples[index]
        with open(path, "rb") as f:
            data = f.read()
        return {
            "image": data,
            "label": label,
            "index": int(index),
            "path": path[self._prefix_len :],
        }

    def describe(self, index: int) -> str:
        """The file path of a sample, for error messages."""
        return self.samples[index][0]

    def fingerprint(self) -> str:
        """Hex digest of the source's identity.

        Covers the class list and, for every sample in order, its path relative to root,
        size and modification time (ns). Adding, removing, renaming, or rewriting a file
        changes it; reading does not.
        """
        digest = hashlib.sha256()
        digest.update("\0".join(self.classes).encode("utf-8"))
        for path, label in self.samples:
            stat = os.stat(path)
            rel = path[self._prefix_len :]
            digest.update(f"\n{rel}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        return digest.hexdigest()
