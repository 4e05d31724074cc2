"""DALI GPU decode graphs side by side on the same JPEG bytes: where the nvJPEG path's time goes.

Every graph is fed the same batches of encoded bytes (and, where it takes them, the same
random-resized-crop windows) through ``external_source``, so the graphs differ only in
their decode and resize operators:

- ``image + resize``: full nvJPEG decode, then resize to 224 (no crop);
- ``image_random_crop + resize``: DALI's own RRC (the decode DALI's GPU anchor uses);
- ``image_crop(crop_pos, crop_w/h) + resize``: the same windows as per-sample arguments;
- ``image_slice(windows) + resize + CMN``: slipstream's mixed graph
  (:func:`slipstream.dali.engine.normalized_images`), uint8 output;
- the two region decodes again with ``hw_decoder_load=0`` (no hardware JPEG decoder).

Then the whole loader (``backend="dali", device="cuda", decode_device="mixed"``) on the
same dataset, and a profile of one of its epochs (top functions by own time), to tell
the decode from the loader's own work. Needs a CUDA GPU and DALI.

Usage:
    python benchmarks/bench_dali_gpu.py --data FOLDER [--epochs 3] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import ImagePipeline, RandomResizedCrop
from slipstream.sampling import epoch_order
from slipstream.sampling.crops import random_resized_crop

BATCH = 256
SIZE = 224


def batches_of(dataset: SlipstreamDataset, epoch: int) -> list[tuple[list, list, list]]:
    """``(jpegs, windows, crops)`` per batch for one epoch, in the loader's shuffled order.

    ``crops`` are the same windows as ``image_crop`` takes them: float32 ``[pos_x, pos_y,
    w, h]`` with ``pos = corner / (image side - window side)`` (0 where they are equal).
    """
    cache = dataset.cache
    meta = cache.meta("image")
    ids = epoch_order(len(cache), seed=0, epoch=epoch)
    windows = random_resized_crop(
        meta["height"][ids], meta["width"][ids], ids, seed=0, epoch=epoch
    ).astype(np.int32)
    y, x, h, w = (windows[:, k].astype(np.float32) for k in range(4))
    free_y = meta["height"][ids].astype(np.float32) - h
    free_x = meta["width"][ids].astype(np.float32) - w
    crops = np.stack(
        [
            np.divide(x, free_x, out=np.zeros_like(x), where=free_x > 0),
            np.divide(y, free_y, out=np.zeros_like(y), where=free_y > 0),
            w,
            h,
        ],
        axis=1,
    )
    out = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        jpegs = [np.frombuffer(cache.item_bytes("image", int(i)), np.uint8) for i in chunk]
        rows = slice(start, start + BATCH)
        out.append((jpegs, list(windows[rows]), list(crops[rows])))
    return out


def run_graph(name: str, make_outputs, epochs: list, threads: int) -> float:
    """Median img/s over the epochs after the first of one graph fed ``epochs``' batches."""
    from nvidia.dali import fn, pipeline_def, types

    flat = [b for epoch in epochs for b in epoch]
    position = [0]

    def source():
        jpegs, windows, crops = flat[position[0] % len(flat)]
        position[0] += 1
        flips = [np.uint8(k % 2) for k in range(len(jpegs))]
        return jpegs, windows, flips, crops

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=0, prefetch_queue_depth=2)
    def graph():
        jpegs, windows, flips, crops = fn.external_source(
            source,
            num_outputs=4,
            batch=True,
            dtype=[types.UINT8, types.INT32, types.UINT8, types.FLOAT],
        )
        return make_outputs(jpegs, windows, flips, crops)

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


def graphs() -> dict:
    from nvidia.dali import fn, types

    from slipstream.dali.engine import normalized_images

    pipeline = ImagePipeline(RandomResizedCrop(SIZE), flip_probability=0.5, dtype="uint8")

    def full(jpegs, windows, flips, crops):
        images = fn.decoders.image(jpegs, device="mixed", output_type=types.RGB)
        return fn.resize(images, resize_x=SIZE, resize_y=SIZE, antialias=True)

    def random_crop(hw_load):
        def make(jpegs, windows, flips, crops):
            images = fn.decoders.image_random_crop(
                jpegs, device="mixed", output_type=types.RGB, hw_decoder_load=hw_load
            )
            return fn.resize(images, resize_x=SIZE, resize_y=SIZE, antialias=True)

        return make

    def sliced(hw_load):
        def make(jpegs, windows, flips, crops):
            anchor = fn.stack(windows[1], windows[0])
            shape = fn.stack(windows[3], windows[2])
            images = fn.decoders.image_slice(
                jpegs, anchor, shape, device="mixed", output_type=types.RGB,
                normalized_anchor=False, normalized_shape=False, axis_names="WH",
                hw_decoder_load=hw_load,
            )  # fmt: skip
            return fn.resize(images, resize_x=SIZE, resize_y=SIZE, antialias=True)

        return make

    def cropped(jpegs, windows, flips, crops):
        images = fn.decoders.image_crop(
            jpegs, device="mixed", output_type=types.RGB,
            crop_pos_x=crops[0], crop_pos_y=crops[1], crop_w=crops[2], crop_h=crops[3],
        )  # fmt: skip
        return fn.resize(images, resize_x=SIZE, resize_y=SIZE, antialias=True)

    def slipstream_graph(jpegs, windows, flips, crops):
        return normalized_images(jpegs, windows, flips, pipeline, "mixed")

    return {
        "image (full) + resize": full,
        "image_random_crop + resize": random_crop(0.65),
        "image_slice(windows) + resize": sliced(0.65),
        "image_crop(crop_pos, crop_w/h) + resize": cropped,
        "slipstream graph: image_slice + resize + CMN": slipstream_graph,
        "image_random_crop + resize, hw_decoder_load=0": random_crop(0.0),
        "image_slice(windows) + resize, hw_decoder_load=0": sliced(0.0),
    }


def run_loader(dataset: SlipstreamDataset, epochs: int, threads: int, profile: bool) -> float:
    loader = SlipstreamLoader(
        dataset,
        BATCH,
        {"image": ImagePipeline(RandomResizedCrop(SIZE), flip_probability=0.5, dtype="uint8")},
        seed=0,
        device="cuda",
        num_threads=threads,
        backend="dali",
        decode_device="mixed",
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
    name = "SlipstreamLoader dali mixed (uint8 RRC224+flip)"
    print(f"  {name:52s} " + " ".join(f"{r:8,.0f}" for r in rates) + f"  median {median:,.0f}")
    if profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="image folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--profile", action="store_true", help="profile the loader's last epoch")
    args = parser.parse_args()
    dataset = SlipstreamDataset(args.data)
    print(f"{dataset}, {args.threads} threads, batch {BATCH}, {torch.cuda.get_device_name(0)}")
    epochs = [batches_of(dataset, e) for e in range(args.epochs)]
    results = {name: run_graph(name, make, epochs, args.threads) for name, make in graphs().items()}
    results["loader"] = run_loader(dataset, args.epochs, args.threads, args.profile)
    anchor = results["image_random_crop + resize"]
    print("\n| graph | img/s (median) | vs image_random_crop |\n| --- | ---: | ---: |")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} | {rate / anchor:.2f}x |")


if __name__ == "__main__":
    main()
