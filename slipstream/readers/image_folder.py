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

import os
from pathlib import Path

from slipstream.readers.file_samples import FileSamplesReader

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The extensions torchvision's ``ImageFolder`` accepts (``torchvision.datasets.folder``)."""


class ImageFolderReader(FileSamplesReader):
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
        samples: ``(file path, label)`` in torchvision's order (root joined as given).
        rel_paths: Each sample's path relative to root (its ``"path"`` field).
        field_types: Field name -> slip cache field type.
    """

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
        self.rel_paths = [path[self._prefix_len :] for path, _ in self.samples]

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

    def __repr__(self) -> str:
        """Root, image count and class count."""
        return (
            f"ImageFolderReader({str(self.root)!r}, {len(self.samples)} images, "
            f"{len(self.classes)} classes)"
        )

    def _fingerprint_header(self) -> bytes:
        """The class list: renaming a class folder changes the fingerprint."""
        return "\0".join(self.classes).encode("utf-8")
