"""A small image folder cut from real photographs shipped inside scikit-image.

No network: scikit-image's wheel carries a handful of real photographs (an
astronaut, a cat, coffee, a rocket, the Hubble deep field, ...). Each becomes a
class; each sample is a random crop of its class photo, resized, sometimes
mirrored, and JPEG-encoded (some progressive, the grayscale photo as a grayscale
JPEG), so the demo exercises varied sizes and encodings.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def photo_sources() -> dict[str, Callable[[], np.ndarray]]:
    """Class name -> a loader of its photograph (scikit-image's bundled photos)."""
    try:
        from skimage import data
    except ImportError as error:
        raise ImportError(
            "the demo photos come from scikit-image: pip install 'slipstream[demo]'"
        ) from error
    return {
        "astronaut": data.astronaut,
        "cat": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "hubble": data.hubble_deep_field,
        "tissue": data.immunohistochemistry,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
        "retina": data.retina,
        "cameraman": data.camera,
        "gravel": data.gravel,
    }


def demo_folder_ready(out: str | Path, num_images: int, *, seed: int = 0) -> bool:
    """True where ``out`` holds a complete demo folder of ``num_images`` images and ``seed``."""
    done = Path(out) / ".complete"
    return done.is_file() and done.read_text().strip() == f"{num_images} {seed}"


def make_demo_folder(out: str | Path, num_images: int = 3000, *, seed: int = 0) -> Path:
    """Write ``out/<class>/<n>.jpg`` crops of the bundled photos; reuse a complete folder.

    Args:
        out: Destination folder.
        num_images: Images to write in total (spread evenly over the classes).
        seed: Seed of the crop geometry.

    Returns:
        ``out`` as a Path.
    """
    out = Path(out)
    if demo_folder_ready(out, num_images, seed=seed):
        return out
    rng = random.Random(seed)
    sources = photo_sources()
    for class_index, (name, load) in enumerate(sources.items()):
        photo = Image.fromarray(load())
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(class_index, num_images, len(sources)):
            crop_sample(photo, rng).save(folder / f"{i:06d}.jpg.part", **_jpeg_options(rng))
            (folder / f"{i:06d}.jpg.part").rename(folder / f"{i:06d}.jpg")
    (out / ".complete").write_text(f"{num_images} {seed}")
    return out


def crop_sample(
    photo: Image.Image,
    rng: random.Random,
    *,
    min_area: float = 0.2,
    short_side: tuple[int, int] = (192, 320),
) -> Image.Image:
    """A random crop of ``photo`` resized to a random short side, mirrored half the time.

    Args:
        photo: The source photograph.
        rng: The random generator (drawn in a fixed order, so a seed gives one crop).
        min_area: Smallest crop area as a fraction of the photo.
        short_side: Range of the resized short side (inclusive).
    """
    width, height = photo.size
    area = width * height * rng.uniform(min_area, 1.0)
    aspect = rng.uniform(3 / 4, 4 / 3) if rng.random() < 0.8 else rng.uniform(1 / 2, 2)
    w = min(width, round((area * aspect) ** 0.5))
    h = min(height, round((area / aspect) ** 0.5))
    x, y = rng.randrange(0, width - w + 1), rng.randrange(0, height - h + 1)
    crop = photo.crop((x, y, x + w, y + h))
    short = rng.randint(*short_side)
    scale = short / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    crop = crop.resize(size, Image.BICUBIC)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return crop


def _jpeg_options(rng: random.Random) -> dict:
    return {
        "format": "JPEG",
        "quality": rng.choice([85, 90, 95]),
        "progressive": rng.random() < 0.1,
    }
