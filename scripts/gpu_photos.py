"""Write an ImageNet-like photo folder for the GPU checks, in parallel, from bundled photos.

The sources are the demo's photographs (scikit-image's bundled ones, one class each, as in
:mod:`slipstream.demo.photos`); each image is a random crop resized to a short side drawn in
``[256, 500]`` (ImageNet's typical range; long side up to twice that) and JPEG-encoded at
quality 85-95 (one in ten progressive). Deterministic for a given ``--n`` and ``--seed``.

Usage:
    python scripts/gpu_photos.py OUT [--n 10000] [--workers 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from slipstream.demo.photos import crop_sample

SHORT_SIDE = (256, 500)


def _sources() -> dict:
    from slipstream.demo.photos import photo_sources  # the demo's list of photographs

    return photo_sources()


def _write(args: tuple[str, int, int, int]) -> int:
    """Write images ``start, start + step, ...`` below ``count`` (one worker's share)."""
    out, start, step, seed = args
    sources = _sources()
    names = list(sources)
    photos = {name: Image.fromarray(load()).convert("RGB") for name, load in sources.items()}
    count = int(os.environ["_GPU_PHOTOS_N"])
    written = 0
    for i in range(start, count, step):
        rng = random.Random(seed * 1_000_003 + i)
        name = names[i % len(names)]
        image = crop_sample(photos[name], rng, min_area=0.25, short_side=SHORT_SIDE)
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        image.save(
            folder / f"{i:06d}.jpg",
            format="JPEG",
            quality=rng.choice([85, 90, 95]),
            progressive=rng.random() < 0.1,
        )
        written += 1
    return written


def main() -> None:
    """Parse the arguments and write the folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    done = args.out / ".complete"
    if done.is_file() and done.read_text().strip() == f"{args.n} {args.seed}":
        print(f"{args.out}: {args.n} photos already there")
        return
    start = time.perf_counter()
    os.environ["_GPU_PHOTOS_N"] = str(args.n)
    jobs = [(str(args.out), k, args.workers, args.seed) for k in range(args.workers)]
    with ProcessPoolExecutor(args.workers) as pool:
        written = sum(pool.map(_write, jobs))
    done.write_text(f"{args.n} {args.seed}")
    seconds = time.perf_counter() - start
    print(f"{args.out}: {written} photos (short side {SHORT_SIDE}) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
