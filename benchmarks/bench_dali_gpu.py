"""nvJPEG graphs side by side on the same JPEG bytes, then the loaders: mixed, native, hybrid.

Every graph is fed the same batches of encoded bytes and the same random-resized-crop
windows through ``external_source``, so the graphs differ only in their decode:

- DALI's own GPU pipeline: ``image_random_crop`` + resize + ``crop_mirror_normalize`` (the
  anchor every other row is divided by), also with ``hw_decoder_load=0``;
- slipstream's mixed graph (:func:`slipstream.dali.engine.normalized_images`, uint8) in each
  variant of :class:`slipstream.dali.ops.NvjpegOptions`: ``image_slice``, ``image_crop``
  (per-sample ``crop_pos``/``crop_w/h``), each with the hardware decoder kept busy
  (``hw_decoder_load=0.9`` + ``preallocate_*`` hints) and without it (``hw_decoder_load=0``).

Then the whole loader (uint8 RRC224 + flip, ``device="cuda"``), same data, one run:
``dali-mixed``, ``native`` (the C++ kernel, pinned buffers, one copy), and ``hybrid`` (both
on each batch), with the issue's targets: mixed >= 1.3x DALI's own pipeline, hybrid >= 0.85x
(native + mixed). Needs a CUDA GPU and DALI; without them it says so and exits 2.

Usage:
    python benchmarks/bench_dali_gpu.py --data FOLDER [--epochs 3] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import DecodeRandomResizedCrop, ImagePipeline
from slipstream.sampling import epoch_order
from slipstream.sampling.crops import random_resized_crop

BATCH = 256
SIZE = 224


def batches_of(dataset: SlipstreamDataset, epoch: int) -> list[tuple[list, list]]:
    """``(jpegs, windows)`` per batch for one epoch, in the loader's shuffled order."""
    cache = dataset.cache
    meta = cache.meta("image")
    ids = epoch_order(len(cache), seed=0, epoch=epoch)
    windows = random_resized_crop(
        meta["height"][ids], meta["width"][ids], ids, seed=0, epoch=epoch
    ).astype(np.int32)
    out = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        jpegs = [np.frombuffer(cache.item_bytes("image", int(i)), np.uint8) for i in chunk]
        out.append((jpegs, list(windows[start : start + BATCH])))
    return out


def run_graph(name: str, make_outputs, epochs: list, threads: int) -> float:
    """Median img/s over the epochs after the first of one graph fed ``epochs``' batches."""
    from nvidia.dali import fn, pipeline_def, types

    flat = [b for epoch in epochs for b in epoch]
    position = [0]

    def source():
        jpegs, windows = flat[position[0] % len(flat)]
        position[0] += 1
        flips = [np.uint8(k % 2) for k in range(len(jpegs))]
        return jpegs, windows, flips

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=0, prefetch_queue_depth=2)
    def graph():
        jpegs, windows, flips = fn.external_source(
            source, num_outputs=3, batch=True, dtype=[types.UINT8, types.INT32, types.UINT8]
        )
        return make_outputs(jpegs, windows, flips)

    pipe = graph()
    pipe.build()
    rates = []
    for epoch in epochs:
        start = time.perf_counter()
        count = 0
        for _ in epoch:
            (out,) = pipe.run()
            count += len(out)
        torch.cuda.synchronize()
        rates.append(count / (time.perf_counter() - start))
    del pipe
    median = statistics.median(rates[1:])
    print(f"  {name:52s} " + " ".join(f"{r:8,.0f}" for r in rates) + f"  median {median:,.0f}")
    return median


HW_BUSY = {"hw_decoder_load": 0.9, "preallocate_width_hint": 1024, "preallocate_height_hint": 1024}
ANCHOR = "DALI's own: image_random_crop + resize + CMN"


def graphs() -> dict:
    """Graph name -> ``make(jpegs, windows, flips)``; the anchor first."""
    from nvidia.dali import fn, types

    from slipstream.dali.engine import normalized_images
    from slipstream.dali.ops import NvjpegOptions

    pipeline = ImagePipeline(DecodeRandomResizedCrop(SIZE), flip_probability=0.5, dtype="uint8")

    def dali_own(hw_load):
        def make(jpegs, windows, flips):
            images = fn.decoders.image_random_crop(
                jpegs, device="mixed", output_type=types.RGB, hw_decoder_load=hw_load
            )
            images = fn.resize(images, resize_x=SIZE, resize_y=SIZE, antialias=True)
            return fn.crop_mirror_normalize(
                images, mirror=fn.cast(flips, dtype=types.INT32), dtype=types.UINT8,
                output_layout="HWC",
            )  # fmt: skip

        return make

    def ours(options):
        def make(jpegs, windows, flips):
            return normalized_images(jpegs, windows, flips, pipeline, "mixed", options)

        return make

    rows = {ANCHOR: dali_own(0.65), f"{ANCHOR}, hw_decoder_load=0": dali_own(0.0)}
    for variant in ("slice", "crop"):
        rows[f"slipstream image_{variant} (default load)"] = ours(NvjpegOptions(variant))
        rows[f"slipstream image_{variant}, hw load 0.9 + preallocate"] = ours(
            NvjpegOptions(variant, **HW_BUSY)
        )
        rows[f"slipstream image_{variant}, hw_decoder_load=0"] = ours(
            NvjpegOptions(variant, hw_decoder_load=0.0)
        )
    return rows


def run_loader(
    dataset: SlipstreamDataset, name: str, kwargs: dict, epochs: int, threads: int, profile: bool
) -> float:
    """Median img/s of the warm epochs of one loader (uint8 RRC224 + flip on CUDA)."""
    loader = SlipstreamLoader(
        dataset,
        BATCH,
        {
            "image": ImagePipeline(
                DecodeRandomResizedCrop(SIZE), flip_probability=0.5, dtype="uint8"
            )
        },
        seed=0,
        device="cuda",
        num_workers=threads,
        **kwargs,
    )
    rates = []
    profiler = cProfile.Profile()
    for epoch in range(epochs):
        if profile and epoch == epochs - 1:
            profiler.enable()
        start = time.perf_counter()
        count = 0
        for batch in loader:
            count += batch["image"].shape[0]
        torch.cuda.synchronize()
        rates.append(count / (time.perf_counter() - start))
    profiler.disable()
    median = statistics.median(rates[1:])
    print(f"  {name:52s} " + " ".join(f"{r:8,.0f}" for r in rates) + f"  median {median:,.0f}")
    engine = getattr(loader._decoder, "controller", None)
    if engine is not None and getattr(engine, "rates", None):
        print(f"    split: native share {engine.share():.3f}, rates {engine.rates}")
    if profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    return median


LOADERS = {
    "loader dali-mixed (nvJPEG)": {"backend": "dali", "decode_device": "mixed"},
    "loader native (C++ kernel)": {"backend": "native"},
    "loader hybrid (native + nvJPEG)": {"backend": "dali", "decode_device": "hybrid"},
}


def needs_gpu() -> str | None:
    """Why this benchmark cannot run here, or None."""
    if not torch.cuda.is_available():
        return "bench_dali_gpu.py needs a GPU: torch.cuda.is_available() is False"
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return "bench_dali_gpu.py needs a GPU and DALI: nvidia.dali is not installed"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="image folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--profile", action="store_true", help="profile the hybrid's last epoch")
    args = parser.parse_args()
    reason = needs_gpu()
    if reason is not None:
        print(reason, file=sys.stderr)
        raise SystemExit(2)
    dataset = SlipstreamDataset(args.data)
    print(f"{dataset}, {args.threads} threads, batch {BATCH}, {torch.cuda.get_device_name(0)}")
    epochs = [batches_of(dataset, e) for e in range(args.epochs)]
    results = {name: run_graph(name, make, epochs, args.threads) for name, make in graphs().items()}
    for name, kwargs in LOADERS.items():
        profile = args.profile and "hybrid" in name
        results[name] = run_loader(dataset, name, kwargs, args.epochs, args.threads, profile)
    anchor = results[ANCHOR]
    print(f"\n| row | img/s (median) | vs {ANCHOR} |\n| --- | ---: | ---: |")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} | {rate / anchor:.2f}x |")
    mixed, native = results["loader dali-mixed (nvJPEG)"], results["loader native (C++ kernel)"]
    hybrid = results["loader hybrid (native + nvJPEG)"]
    print(
        f"\ntargets: loader mixed / DALI's own = {mixed / anchor:.2f} (>= 1.3); "
        f"hybrid / (native + mixed) = {hybrid / (native + mixed):.2f} (>= 0.85); "
        f"hybrid = {hybrid:,.0f} img/s (>= 45,000 on an H100/H200 with 16 cores)"
    )


if __name__ == "__main__":
    main()
