"""The ``slipstream`` command: ``build``, ``verify``, ``inspect`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _build(args: argparse.Namespace) -> int:
    from slipstream.cache import build_cache
    from slipstream.readers.open_source import open_reader

    reader = open_reader(args.src)  # .beton/.ffcv, LitData folder or s3://, file list, folder
    dest = build_cache(
        reader,
        args.dest,
        on_error=args.on_error,
        jpeg_quality=args.jpeg_quality,
        num_workers=args.workers,
    )
    print(f"slip cache ready: {dest} ({len(reader)} source images)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from slipstream.verify import verify_cache

    report = verify_cache(args.cache, args.source, progress=not args.quiet)
    print(report.format(limit=args.limit))
    return 0 if report.ok else 1


def _inspect(args: argparse.Namespace) -> int:
    from slipstream.cache import SlipCache

    cache = SlipCache.open(args.path)
    print(f"slip cache {cache.path}")
    print(f"  samples: {len(cache)}")
    for name, kind in cache.field_types.items():
        line = f"  field {name!r}: {kind}"
        if kind == "ImageBytes":
            meta = cache.meta(name)
            sizes = np.asarray(meta["data_size"])
            heights, widths = np.asarray(meta["height"]), np.asarray(meta["width"])
            line += (
                f", {sizes.sum() / 2**20:,.1f} MiB, mean {sizes.mean() / 1024:,.1f} KiB/image, "
                f"height {heights.min()}-{heights.max()}, width {widths.min()}-{widths.max()}"
            )
        elif kind != "str" and kind != "bytes":
            values = np.asarray(cache.numbers(name))
            line += f", min {values.min()}, max {values.max()}, {len(np.unique(values))} distinct"
        print(line)
    build = cache.manifest.get("build", {})
    for kind in ("reencoded", "skipped"):
        entries = build.get(kind, [])
        print(f"  {kind}: {len(entries)}")
        for entry in entries[:10]:
            print(f"    {json.dumps(entry)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from slipstream.demo import run_demo

    run_demo(
        args.out,
        num_images=args.num_images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_threads=args.threads,
        device=args.device,
    )
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``slipstream`` command."""
    parser = argparse.ArgumentParser(prog="slipstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build", help="build a slip cache from an image folder, file list, .beton or LitData"
    )
    build.add_argument(
        "src",
        help="image folder (class sub-folders), file list (.txt/.csv/.tsv of 'path label' "
        "lines), FFCV .beton/.ffcv file, LitData folder or s3://bucket/prefix",
    )
    build.add_argument("dest", type=Path, help="cache folder to create")
    build.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    build.add_argument("--jpeg-quality", type=int, default=95, help="for re-encoded non-JPEGs")
    build.add_argument(
        "--workers",
        type=int,
        default=None,
        help="reader threads (default: a quarter of the cores, at most 4; more for network "
        "file systems)",
    )
    build.set_defaults(run=_build)

    verify = commands.add_parser(
        "verify", help="compare every sample of a cache with its source; exit 1 on a mismatch"
    )
    verify.add_argument("cache", type=Path, help="the slip cache folder")
    verify.add_argument(
        "--source", default=None, help="source to compare with (default: the manifest's source)"
    )
    verify.add_argument("--limit", type=int, default=20, help="mismatches to list")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    verify.set_defaults(run=_verify)

    inspect = commands.add_parser("inspect", help="describe a slip cache")
    inspect.add_argument("path", type=Path)
    inspect.set_defaults(run=_inspect)

    demo = commands.add_parser("demo", help="photos -> cache -> loader -> img/s and a picture")
    demo.add_argument("--out", type=Path, default=Path("slipstream_demo_output"))
    demo.add_argument("--num-images", type=int, default=3000)
    demo.add_argument("--epochs", type=int, default=3)
    demo.add_argument("--batch-size", type=int, default=128)
    demo.add_argument("--threads", type=int, default=None)
    demo.add_argument("--device", default=None)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slipstream`` command."""
    args = make_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
