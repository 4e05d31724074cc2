"""Throughput of the native fused decode-crop-resize kernel vs a plain full decode.

256 crops of real photos (skimage sample photos cut to ~256x340, JPEG q95), 224x224 output.
Prints a small table; no assertions.

    python benchmarks/bench_kernel.py [--reps 5]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image
from skimage import data as skd

from slipstream.native import NativeDecoder, decode_full


def make_corpus(n: int = 256, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    photos = [skd.astronaut(), skd.chelsea(), skd.coffee(), skd.rocket()]
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        ch, cw = (256, 340) if w >= h else (340, 256)
        ch, cw = min(ch, h), min(cw, w)
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(p[y : y + ch, x : x + cw])).save(
            buf, "JPEG", quality=95
        )
        out.append(buf.getvalue())
    return out


def rrc_windows(heights, widths, rng) -> np.ndarray:
    """torchvision-style random-resized-crop windows (scale 0.08-1, ratio 3/4-4/3)."""
    wins = []
    for h, w in zip(heights, widths, strict=True):
        area = h * w
        for _ in range(10):
            a = area * rng.uniform(0.08, 1.0)
            r = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = int(round(np.sqrt(a * r))), int(round(np.sqrt(a / r)))
            if 0 < cw <= w and 0 < ch <= h:
                wins.append([rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1), ch, cw])
                break
        else:
            s = min(h, w)
            wins.append([(h - s) // 2, (w - s) // 2, s, s])
    return np.array(wins, np.int32)


def best_rate(fn, n: int, reps: int) -> float:
    fn()  # warm-up (pool creation, thread-local buffers)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()

    corpus = make_corpus()
    n = len(corpus)
    sizes = np.array([len(b) for b in corpus], np.uint64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.uint64)
    data = np.frombuffer(b"".join(corpus), np.uint8)
    dims = [Image.open(io.BytesIO(b)).size for b in corpus]
    heights = [d[1] for d in dims]
    widths = [d[0] for d in dims]
    rng = np.random.default_rng(1)
    rrc = rrc_windows(heights, widths, rng)
    full = np.array([[0, 0, h, w] for h, w in zip(heights, widths, strict=True)], np.int32)
    center = np.array(
        [[(h - 224) // 2, (w - 224) // 2, 224, 224] for h, w in zip(heights, widths, strict=True)],
        np.int32,
    )
    flips = (rng.random(n) < 0.5).astype(np.uint8)
    out = np.empty((n, args.size, args.size, 3), np.uint8)

    rows = []
    for threads in (1, 2):
        dec = NativeDecoder(threads)
        for label, wins in (("RRC + flip", rrc), ("center crop 224", center), ("full image", full)):
            rate = best_rate(
                lambda w=wins, d=dec: d.decode_crop_batch(data, offsets, sizes, w, flips, out),
                n,
                args.reps,
            )
            rows.append((f"decode_crop_batch: {label}", threads, rate))
    rate = best_rate(lambda: [decode_full(b) for b in corpus], n, args.reps)
    rows.append(("decode_full only (no crop/resize)", 1, rate))

    print(f"{n} JPEGs ~256x340 q95 -> {args.size}x{args.size} uint8, best of {args.reps}")
    print(f"{'pipeline':45s} {'threads':>7s} {'img/s':>9s} {'ms/img':>7s}")
    for name, t, r in rows:
        print(f"{name:45s} {t:7d} {r:9.0f} {1e3 / r * t:7.3f}")


if __name__ == "__main__":
    main()
