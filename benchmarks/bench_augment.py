"""Batch augmentation throughput: slipstream.augment next to kornia, in one process run.

For each transform (p=1, so every sample is transformed), img/s on float
``[B, 3, S, S]`` batches in 0..1 (default B=256, S=224) with fresh keyed params per
iteration (``make_params`` + ``apply``), median over the timed iterations after one
warm-up; next to it kornia's equivalent augmentation (p=1) where kornia has one.
On a GPU (``--device cuda``) every iteration ends with a synchronize.

Usage:
    python benchmarks/bench_augment.py [--device cpu|cuda] [--iters 3] [--size 224]
        [--batch-size 256] [--only NAME ...] [--record]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import slipstream.augment as A


def slipstream_cases() -> dict[str, A.BatchTransform]:
    """Transform name -> slipstream transform (p=1)."""
    return {
        "ToFloatImage (uint8 in)": A.ToFloatImage(),
        "Normalize": A.Normalize(),
        "RandomHorizontalFlip": A.RandomHorizontalFlip(p=1.0),
        "RandomGrayscale": A.RandomGrayscale(p=1.0),
        "RandomBrightness": A.RandomBrightness(p=1.0),
        "RandomContrast": A.RandomContrast(p=1.0),
        "RandomColorJitter (HSV)": A.RandomColorJitter(
            p=1.0, hue=0.1, saturation=0.2, value=0.4, contrast=0.4
        ),
        "RandomColorJitterYIQ": A.RandomColorJitterYIQ(p=1.0),
        "RandomGaussianBlur k23": A.RandomGaussianBlur(p=1.0, kernel_size=23),
        "RandomSolarization": A.RandomSolarization(p=1.0),
        "RandomRotate": A.RandomRotate(p=1.0),
        "RandomZoom": A.RandomZoom(p=1.0),
        "RandomRotateObject": A.RandomRotateObject(p=1.0),
        "RandomEmbed 256 power_law": A.RandomEmbed(256, background="power_law"),
        "RandomBackgroundBlend": A.RandomBackgroundBlend(p=1.0),
        "RandomPatchShuffle 4x4": A.RandomPatchShuffle(p=1.0, grid=4),
        "CircularMask": A.CircularMask(),
        "FixedOpticalDistortion": A.FixedOpticalDistortion(),
        "RandomErasing": A.RandomErasing(p=1.0, mode="zeros"),  # kornia fills 0
        "SRGBToLMS": A.SRGBToLMS(),
        "RGBToLGN": A.RGBToLGN(),
        "Mixup": A.Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=1000),
        "CutMix": A.CutMix(alpha=1.0, num_classes=1000),
    }


def kornia_cases() -> dict[str, tuple[str, Callable]]:
    """Transform name -> (kornia equivalent, callable(images, labels))."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return {}

    def images_only(module):
        return lambda images, labels: module(images)

    mean = torch.tensor(A.IMAGENET_MEAN)
    std = torch.tensor(A.IMAGENET_STD)
    table = {
        "Normalize": ("Normalize", images_only(K.Normalize(mean, std))),
        "RandomHorizontalFlip": (
            "RandomHorizontalFlip",
            images_only(K.RandomHorizontalFlip(p=1.0)),
        ),
        "RandomGrayscale": ("RandomGrayscale", images_only(K.RandomGrayscale(p=1.0))),
        "RandomBrightness": (
            "RandomBrightness",
            images_only(K.RandomBrightness((0.6, 1.4), p=1.0)),
        ),
        "RandomContrast": ("RandomContrast", images_only(K.RandomContrast((0.6, 1.4), p=1.0))),
        "RandomColorJitter (HSV)": (
            "ColorJitter(0.4,0.4,0.2,0.1)",
            images_only(K.ColorJitter(0.4, 0.4, 0.2, 0.1, p=1.0)),
        ),
        "RandomGaussianBlur k23": (
            "RandomGaussianBlur(23, (0.1, 2))",
            images_only(K.RandomGaussianBlur((23, 23), (0.1, 2.0), p=1.0)),
        ),
        "RandomSolarization": ("RandomSolarize", images_only(K.RandomSolarize(0.1, 0.1, p=1.0))),
        "RandomRotate": ("RandomRotation(45)", images_only(K.RandomRotation(45.0, p=1.0))),
        "RandomZoom": (
            "RandomAffine(scale=(1, 1.5))",
            images_only(K.RandomAffine(0.0, scale=(1.0, 1.5), p=1.0)),
        ),
        "RandomRotateObject": (
            "RandomAffine(45, translate, scale)",
            images_only(K.RandomAffine(45.0, translate=(0.25, 0.25), scale=(0.5, 1.0), p=1.0)),
        ),
        "RandomPatchShuffle 4x4": (
            "RandomJigsaw((4, 4))",
            images_only(K.RandomJigsaw((4, 4), p=1.0)),
        ),
        "RandomErasing": ("RandomErasing", images_only(K.RandomErasing(p=1.0))),
        "Mixup": ("RandomMixUpV2", lambda images, labels: K.RandomMixUpV2(p=1.0)(images, labels)),
        "CutMix": (
            "RandomCutMixV2",
            lambda images, labels: K.RandomCutMixV2(p=1.0, use_correct_lambda=True)(images, labels),
        ),
    }
    return table


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(run: Callable[[int], object], batch: int, iters: int, device: torch.device) -> float:
    """Median img/s of ``run(iteration)`` over ``iters`` timed calls after one warm-up."""
    run(-1)
    _sync(device)
    rates = []
    for i in range(iters):
        start = time.perf_counter()
        run(i)
        _sync(device)
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="substrings of the transform names to run")
    parser.add_argument("--no-kornia", action="store_true")
    parser.add_argument("--record", action="store_true", help="write benchmarks/results/...")
    args = parser.parse_args()

    device = torch.device(args.device)
    b, s = args.batch_size, args.size
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, s, s, generator=generator).to(device)
    uint8 = (images * 255).to(torch.uint8).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (b,), generator=generator).to(device)
    ours = slipstream_cases()
    theirs = {} if args.no_kornia else kornia_cases()
    if args.only:
        ours = {k: v for k, v in ours.items() if any(o.lower() in k.lower() for o in args.only)}

    rows = []
    for name, transform in ours.items():
        source = uint8 if name.startswith("ToFloatImage") else images

        def run_ours(i: int, transform=transform, source=source) -> object:
            key = A.BatchKey(seed=0, epoch=i + 1, sample_ids=torch.arange(b))
            if isinstance(transform, (A.Mixup, A.CutMix)):
                return transform(source, labels, key)
            return transform(source, key)

        rate = time_it(run_ours, b, args.iters, device)
        row = {"transform": name, "slipstream": rate, "kornia_equivalent": None, "kornia": None}
        if name in theirs:
            equivalent, call = theirs[name]
            row["kornia_equivalent"] = equivalent
            row["kornia"] = time_it(
                lambda i, call=call: call(images, labels), b, args.iters, device
            )
        rows.append(row)
        k = f"{row['kornia']:,.0f}" if row["kornia"] else "-"
        print(f"{name:32s} {rate:10,.0f} img/s   kornia {k}", flush=True)

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = f"cpu {platform.machine()}"
    header = (
        f"batch {b} float32 3x{s}x{s}, device {device_name}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores, median of "
        f"{args.iters} iterations after 1 warm-up, p=1"
    )
    lines = [
        "| transform | slipstream img/s | kornia equivalent | kornia img/s | slipstream / kornia |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        kornia = f"{row['kornia']:,.0f}" if row["kornia"] else "-"
        ratio = f"{row['slipstream'] / row['kornia']:.2f}x" if row["kornia"] else "-"
        equivalent = row["kornia_equivalent"] or "-"
        lines.append(
            f"| {row['transform']} | {row['slipstream']:,.0f} | {equivalent} | {kornia} | {ratio} |"
        )
    table = "\n".join(lines)
    print(f"\n{header}\n\n{table}")

    if args.record:
        out = Path(__file__).parent / "results"
        out.mkdir(exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        try:
            import kornia

            kornia_version = kornia.__version__
        except ImportError:
            kornia_version = None
        info = {
            "date": stamp,
            "args": vars(args),
            "torch": torch.__version__,
            "kornia": kornia_version,
            "device": device_name,
            "rows": rows,
        }
        (out / f"augment-{stamp}.json").write_text(json.dumps(info, indent=2))
        command = "python benchmarks/bench_augment.py " + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v not in (None, False, True)
        )
        (out / f"augment-{stamp}.md").write_text(
            f"# bench_augment {stamp}\n\n`{command}`\n\n{header}\n\n{table}\n"
        )
        print(f"recorded in {out}")


if __name__ == "__main__":
    main()
