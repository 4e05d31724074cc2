"""The ``slipstream`` command: build, verify, inspect, bench, build-plugin and demo.

Errors are one line on stderr (``slipstream <command>: error: ...``) naming the path and
what to do; the exit status is 2 for a usage error (a bad option, a path that does not
exist), 1 for a failure while working, 0 on success. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

SOURCE_HELP = (
    "an image folder (class sub-folders), a file list (.txt/.csv/.tsv of 'path label' "
    "lines), an FFCV .beton/.ffcv file, a LitData folder (with index.json) or s3://bucket/prefix"
)


class UsageError(Exception):
    """The command line asks for something impossible: exit status 2."""


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _existing(path: str | os.PathLike, what: str, hint: str) -> Path:
    """``path`` as a Path, or a UsageError saying it does not exist and what to pass."""
    if str(path).startswith("s3://"):
        return Path(str(path))
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{what} {str(p)!r} does not exist: {hint}")
    return p


# --- build / verify ----------------------------------------------------------------------


def _build(args: argparse.Namespace) -> int:
    from slipstream.cache import build_cache
    from slipstream.readers.open_source import open_reader

    src = _existing(args.src, "source", f"give {SOURCE_HELP}")
    dest = Path(args.dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"destination {str(dest)!r} is a file: give a folder for the cache")
    reader = open_reader(args.src if str(args.src).startswith("s3://") else src)
    built = build_cache(
        reader,
        dest,
        on_error=args.on_error,
        image_storage=args.image_storage,
        jpeg_quality=args.jpeg_quality,
        num_workers=args.workers,
        progress=not args.quiet,
        check_decode="decode" in (args.check or []),
    )
    print(f"slip cache ready: {built} ({len(reader)} source images)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from slipstream.dataset import is_slip_cache
    from slipstream.verify import verify_cache

    cache = _existing(args.cache, "cache", "give a slip cache folder made by `slipstream build`")
    if not is_slip_cache(cache):
        raise UsageError(
            f"{str(cache)!r} is not a slip cache (no manifest.json): give a folder made by "
            f"`slipstream build`; `slipstream inspect {cache}` says what it is"
        )
    if args.source is not None:
        _existing(args.source, "source", f"give {SOURCE_HELP}")
    report = verify_cache(cache, args.source, progress=not args.quiet)
    print(report.format(limit=args.limit))
    return 0 if report.ok else 1


# --- inspect -----------------------------------------------------------------------------


def _describe_fields(store: Any) -> list[str]:
    lines = [f"  samples: {len(store)}"]
    for name, kind in store.field_types.items():
        line = f"  field {name!r}: {kind}"
        if kind == "ImageBytes":
            meta = store.meta(name)
            sizes = np.asarray(meta["data_size"])
            heights, widths = np.asarray(meta["height"]), np.asarray(meta["width"])
            if len(sizes):
                line += (
                    f", {sizes.sum() / 2**20:,.1f} MiB, "
                    f"mean {sizes.mean() / 1024:,.1f} KiB/image, "
                    f"height {heights.min()}-{heights.max()}, width {widths.min()}-{widths.max()}"
                )
        elif kind not in ("str", "bytes"):
            values = np.asarray(store.numbers(name))
            if len(values):
                line += (
                    f", min {values.min()}, max {values.max()}, {len(np.unique(values))} distinct"
                )
        lines.append(line)
    return lines


def _cache_lines(path: Path) -> list[str]:
    from slipstream.cache import SlipCache

    cache = SlipCache.open(path)
    lines = [f"slip cache {cache.path}"] + _describe_fields(cache)
    source = cache.manifest.get("source")
    if isinstance(source, dict) and source.get("path"):
        lines.insert(1, f"  source: {source.get('kind', '?')} {source['path']}")
    build = cache.manifest.get("build", {})
    for kind in ("reencoded", "skipped"):
        entries = build.get(kind, [])
        lines.append(f"  {kind}: {len(entries)}")
        lines.extend(f"    {json.dumps(entry)}" for entry in entries[:10])
    return lines


def _future_cache(reader: Any, name: str) -> str:
    from slipstream.cache.format import NAME_VERSION
    from slipstream.dataset import is_slip_cache
    from slipstream.paths import default_cache_root

    dest = default_cache_root() / f"{name}-{reader.fingerprint()[:16]}-v{NAME_VERSION}"
    state = "built" if is_slip_cache(dest) else "not built yet"
    return f"  cache: {dest} ({state}; SlipstreamDataset converts it once)"


def _inspect_lines(path: Path, text: str) -> list[str]:
    from slipstream.dataset import is_slip_cache
    from slipstream.readers import FILE_LIST_SUFFIXES, FfcvFile, FileListReader, ImageFolderReader
    from slipstream.readers.ffcv_format import FFCV_SUFFIXES

    if text.startswith("s3://") or (path / "index.json").is_file():
        from slipstream.readers.open_source import open_reader

        reader = open_reader(text if text.startswith("s3://") else path)
        head = f"LitData dataset {text if text.startswith('s3://') else path}"
        return [head, f"  samples: {len(reader)}", _future_cache(reader, path.name or "litdata")]
    if is_slip_cache(path):
        return _cache_lines(path)
    if path.is_file() and path.suffix.lower() in FFCV_SUFFIXES:
        beton = FfcvFile(path)
        how = (
            "raw images: converted once into a slip cache"
            if beton.has_raw_images
            else "JPEG images: read in place"
        )
        return [f"FFCV file {path} ({how})"] + _describe_fields(beton)
    if path.is_file() and path.suffix.lower() in FILE_LIST_SUFFIXES:
        reader = FileListReader(path)
        return [
            f"file list {path}",
            f"  samples: {len(reader)}",
            _future_cache(reader, path.stem),
        ]
    if path.is_dir():
        caches = sorted(p.parent for p in path.glob("*/manifest.json"))
        if caches:
            lines = [f"cache root {path} with {len(caches)} slip cache(s)"]
            for cache in caches:
                lines += [""] + _cache_lines(cache)
            return lines
        reader = ImageFolderReader(path)
        return [
            f"image folder {path}",
            f"  samples: {len(reader)}",
            f"  classes: {len(reader.classes)} ({', '.join(reader.classes[:10])}"
            + (", ..." if len(reader.classes) > 10 else "")
            + ")",
            _future_cache(reader, path.resolve().name),
        ]
    raise UsageError(
        f"{str(path)!r} is not a dataset source: give a slip cache folder or {SOURCE_HELP}"
    )


def _inspect(args: argparse.Namespace) -> int:
    text = str(args.path)
    path = _existing(text, "path", f"give a slip cache folder or {SOURCE_HELP}")
    print("\n".join(_inspect_lines(path, text)))
    return 0


# --- bench, build-plugin, demo -----------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    import tempfile

    from slipstream.bench import default_runs, format_table, run_benchmarks
    from slipstream.dataset import SlipstreamDataset
    from slipstream.logs import enable_logging

    path = _existing(args.path, "source", f"give a slip cache folder or {SOURCE_HELP}")
    enable_logging(logging.INFO)
    work = Path(args.work) if args.work else Path(tempfile.gettempdir()) / "slipstream-bench"
    dataset = SlipstreamDataset(args.path, cache_dir=args.cache_root)
    threads = args.threads or len(os.sched_getaffinity(0))
    folder = path if path.is_dir() and not (path / "manifest.json").is_file() else None
    print(f"{dataset}\n{threads} threads, batch {args.batch_size}, {args.epochs} epochs")
    runs = default_runs(
        dataset,
        folder,
        epochs=args.epochs,
        threads=threads,
        batch_size=args.batch_size,
        work=work,
        anchors=not args.no_anchors,
    )
    results = run_benchmarks(
        runs,
        only=args.only,
        report=lambda name, r: print(
            f"  {name:40s} " + " ".join(f"{x:9,.0f}" for x in r.rates) + " img/s per epoch",
            flush=True,
        ),
    )
    print()
    print(format_table(results))
    return 0


def _build_plugin(args: argparse.Namespace) -> int:
    try:
        from slipstream.dali import plugin
    except ImportError as error:
        raise RuntimeError(
            f"DALI is not importable ({error}): pip install 'slipstream[dali]'"
        ) from error
    directory = plugin.plugin_dir(args.dir)
    if args.force:
        lib = plugin.build_plugin(directory, verbose=args.verbose)
    else:
        lib = plugin.ensure_built(directory)
    print(f"DALI plugin for DALI {plugin.dali_version()}: {lib}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from slipstream.demo import run_demo

    run_demo(
        args.out,
        num_images=args.num_images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_workers=args.threads,
        device=args.device,
    )
    return 0


# --- parser ------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to every option's help, unless X is None/False or already said."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "(default:" in text:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line naming ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_num_workers(parser: argparse.ArgumentParser) -> None:
    """``--num-workers`` (``--threads``, its old name): decode threads of the loader."""
    parser.add_argument(
        "--num-workers",
        "--threads",
        dest="threads",
        type=_positive_int,
        default=None,
        help="decode threads (default: the usable cores divided by the ranks on this node); "
        "--threads is its old name",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``slipstream`` command."""
    fmt = _HelpFormatter
    parser = _Parser(prog="slipstream", description=__doc__, formatter_class=fmt)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the package's info messages to stderr"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=fmt)

    build = command("build", "build a slip cache from a dataset source")
    build.add_argument("src", help=f"the source: {SOURCE_HELP}")
    build.add_argument("dest", type=Path, help="cache folder to create")
    build.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="what an unreadable image does: stop the build, or leave it out (listed in the "
        "manifest)",
    )
    build.add_argument(
        "--image-storage",
        choices=("raw", "jpeg"),
        default="raw",
        help="how images that are not JPEGs are stored: raw RGB pixels (lossless) or "
        "re-encoded as JPEG at --jpeg-quality (smaller, lossy); JPEGs are kept as they are",
    )
    build.add_argument(
        "--jpeg-quality",
        type=_positive_int,
        default=95,
        help="JPEG quality of re-encoded images (--image-storage jpeg)",
    )
    build.add_argument(
        "--workers",
        type=int,
        default=None,
        help="reader threads (default: a quarter of the cores, at most 4; 0: inline; more for "
        "network file systems)",
    )
    build.add_argument(
        "--check",
        action="append",
        choices=("decode",),
        help="extra check of every image: 'decode' decodes each once (in parallel); one that "
        "fails is an unreadable image (--on-error)",
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(run=_build)

    verify = command(
        "verify", "compare every sample of a cache with its source; exit 1 on a mismatch"
    )
    verify.add_argument("cache", type=Path, help="the slip cache folder")
    verify.add_argument(
        "--source", default=None, help="source to compare with (default: the manifest's source)"
    )
    verify.add_argument(
        "--limit", type=_positive_int, default=20, help="mismatches to list at most"
    )
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    verify.set_defaults(run=_verify)

    inspect = command("inspect", "say what a path is: a slip cache or a source, and its contents")
    inspect.add_argument("path", help=f"a slip cache folder, a folder of caches, or {SOURCE_HELP}")
    inspect.set_defaults(run=_inspect)

    bench = command(
        "bench",
        "loader img/s per epoch (RRC and center crop; native and DALI engines; torchvision, "
        "DALI and FFCV anchors where installed) and a table",
    )
    bench.add_argument("path", help=f"what to stream: a slip cache folder or {SOURCE_HELP}")
    bench.add_argument("--epochs", type=_positive_int, default=3, help="epochs per run")
    bench.add_argument("--batch-size", type=_positive_int, default=256, help="samples per batch")
    _add_num_workers(bench)
    bench.add_argument(
        "--only", nargs="*", default=None, help="run only these runs (by their table name)"
    )
    bench.add_argument(
        "--no-anchors", action="store_true", help="skip the torchvision, DALI and FFCV anchors"
    )
    bench.add_argument(
        "--cache-root",
        default=None,
        help="where a source is converted (default: $SLIPSTREAM_CACHE_DIR or ~/.cache/slipstream)",
    )
    bench.add_argument(
        "--work",
        default=None,
        help="folder for the FFCV anchor's .beton files (default: a temp dir)",
    )
    bench.set_defaults(run=_bench)

    plugin = command(
        "build-plugin",
        "compile the DALI operator plugin now (e.g. on a login node) instead of on first use",
    )
    plugin.add_argument(
        "--dir",
        default=None,
        help="plugin root (default: $SLIPSTREAM_PLUGIN_DIR, else $XDG_CACHE_HOME/slipstream/"
        "dali_plugin, else ~/.cache/slipstream/dali_plugin)",
    )
    plugin.add_argument("--force", action="store_true", help="rebuild even if it is current")
    plugin.add_argument("--verbose", action="store_true", help="show the compiler output")
    plugin.set_defaults(run=_build_plugin)

    demo = command("demo", "real photos -> slip cache -> loader epochs -> img/s and a picture")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("slipstream_demo_output"),
        help="working folder: photos/, cache/ and batch.png go here",
    )
    demo.add_argument(
        "--num-images", type=_positive_int, default=3000, help="JPEGs cut from the photos"
    )
    demo.add_argument("--epochs", type=_positive_int, default=3, help="epochs to stream")
    demo.add_argument("--batch-size", type=_positive_int, default=128, help="samples per batch")
    _add_num_workers(demo)
    demo.add_argument(
        "--device", default=None, help="output device, e.g. cpu or cuda (default: CUDA if present)"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``slipstream`` command: returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints them and exits with 2
    package_logger = logging.getLogger("slipstream")
    saved = (list(package_logger.handlers), package_logger.level)  # main() may run in-process
    if args.verbose:
        from slipstream.logs import enable_logging

        enable_logging(logging.INFO)
    prefix = f"slipstream {args.command}: error:"
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"slipstream {args.command}: interrupted", file=sys.stderr)
        return 130
    except UsageError as error:
        if args.debug:
            traceback.print_exc()
        print(f"{prefix} {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - every failure becomes one line
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"{prefix} {type(error).__name__}: {_one_line(error)}{hint}", file=sys.stderr)
        return 1
    finally:
        package_logger.handlers[:] = saved[0]
        package_logger.setLevel(saved[1])


if __name__ == "__main__":
    sys.exit(main())
