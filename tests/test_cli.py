"""The ``slipstream`` command: build, inspect, demo, bench, build-plugin; errors and help."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
from PIL import Image

from slipstream.cache import SlipCache
from slipstream.cli import main, make_parser
from slipstream.demo import run_demo


def test_build_then_inspect(photo_folder, tmp_path, capsys):
    dest = tmp_path / "cache"
    assert main(["build", str(photo_folder), str(dest)]) == 0
    cache = SlipCache.open(dest)
    assert len(cache) == 240
    assert main(["inspect", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "samples: 240" in out
    assert "field 'image': ImageBytes" in out
    assert "field 'label': int, min 0, max 9, 10 distinct" in out
    assert "skipped: 0" in out


def test_demo_writes_a_contact_sheet(tmp_path, capsys):
    rates = run_demo(tmp_path, num_images=40, epochs=2, batch_size=16, num_workers=2, device="cpu")
    assert sorted(rates) == ["epoch_0_images_per_second", "epoch_1_images_per_second"]
    assert all(rate > 0 for rate in rates.values())
    sheet = Image.open(tmp_path / "batch.png")
    # 16 images of 224 px in 8 columns with 2 px padding
    assert sheet.size == (8 * 226 + 2, 2 * 226 + 2)
    assert "40 images" in capsys.readouterr().out


# --- errors: one line on stderr, exit 2 for usage, 1 for failures ------------------------


def _one_line_error(capsys, prefix: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["build", "/nope/src", "/tmp/x"],
            "source '/nope/src' does not exist: give an image folder",
        ),
        (["inspect", "/nope/x"], "path '/nope/x' does not exist: give a slip cache folder"),
        (["verify", "/nope/c"], "cache '/nope/c' does not exist: give a slip cache folder"),
        (["bench", "/nope/b"], "source '/nope/b' does not exist"),
    ],
)
def test_missing_paths_are_one_line_usage_errors(argv, needle, capsys):
    assert main(argv) == 2
    line = _one_line_error(capsys, f"slipstream {argv[0]}: error: ")
    assert needle in line


def test_verify_of_a_folder_that_is_not_a_cache(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    line = _one_line_error(capsys, "slipstream verify: error: ")
    assert f"'{tmp_path}' is not a slip cache" in line and "slipstream inspect" in line


def test_bad_option_values_exit_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--batch-size", "2.5"])
    assert exit_info.value.code == 2
    line = _one_line_error(capsys, "slipstream demo: error: ")
    assert "--batch-size: '2.5' is not an integer" in line and "slipstream demo --help" in line
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "only-one-argument"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "slipstream build: error: the following arguments are required")


def test_a_failure_exits_1_in_one_line_and_debug_shows_the_traceback(
    photo_dataset, tmp_path, capsys
):
    broken = tmp_path / "broken"
    shutil.copytree(photo_dataset.cache_path, broken)
    with open(broken / "image.bin", "r+b") as f:
        f.truncate(100)
    assert main(["inspect", str(broken)]) == 1
    line = _one_line_error(capsys, "slipstream inspect: error: ")
    assert "image.bin" in line and "(--debug shows the traceback)" in line
    assert main(["--debug", "inspect", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("slipstream inspect: error: ")


# --- inspect: every source the dataset accepts ------------------------------------------


def test_inspect_says_what_each_source_is(photo_folder, photo_dataset, tmp_path, capsys):
    assert main(["inspect", str(photo_folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"image folder {photo_folder}\n")
    assert "samples: 240" in out and "classes: 10 (" in out
    assert "cache: " in out and "SlipstreamDataset converts it once" in out

    listing = tmp_path / "train.txt"
    files = sorted(photo_folder.glob("*/*.jpg"))[:7]
    listing.write_text("".join(f"{p} {i % 2}\n" for i, p in enumerate(files)))
    assert main(["inspect", str(listing)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"file list {listing}\n") and "samples: 7" in out

    beton = Path(__file__).parent / "fixtures" / "ffcv" / "all_fields.beton"
    assert main(["inspect", str(beton)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"FFCV file {beton} (")
    assert "samples: " in out and "field " in out

    root = photo_dataset.cache_path.parent  # the folder the dataset's cache was built in
    assert main(["inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cache root {root} with 1 slip cache(s)")
    assert f"slip cache {photo_dataset.cache_path}" in out and "samples: 240" in out

    (tmp_path / "notes.md").write_text("hello")
    assert main(["inspect", str(tmp_path / "notes.md")]) == 2
    assert "is not a dataset source" in _one_line_error(capsys, "slipstream inspect: error: ")


# --- the demo's messages, help texts, bench, build-plugin --------------------------------


def test_demo_prints_the_real_cache_path_and_reuses(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--num-images", "30", "--epochs", "1"]
    args += ["--batch-size", "10", "--threads", "1", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[1/3] cutting 30 JPEGs" in out
    built = [line.split()[1] for line in out.splitlines() if line.strip().startswith("built ")]
    assert len(built) == 1 and Path(built[0]).parent == tmp_path / "cache"
    assert main(["inspect", built[0]]) == 0
    assert "samples: 30" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[1/3] reusing 30 JPEGs" in out and f"reusing {built[0]} (30 samples)" in out
    assert "cutting" not in out and "built " not in out


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        elif not isinstance(action, argparse._HelpAction):
            yield parser, action


def test_every_option_has_help_and_its_default():
    parsers = set()
    for parser, action in _actions(make_parser()):
        parsers.add(parser)
        assert action.help, f"{parser.prog} {action.dest}: no help text"
        if action.option_strings and action.default not in (None, False):
            text = " ".join(parser.format_help().split())
            shown = " ".join(action.help.split())
            assert "(default: " in text.split(" ".join(shown.split()[:3]))[1][:300], (
                parser.prog,
                action.dest,
            )
    assert {p.prog for p in parsers} >= {
        f"slipstream {c}" for c in ("build", "verify", "inspect", "bench", "build-plugin", "demo")
    }


def test_bench_prints_a_table(photo_dataset, capsys):
    argv = ["bench", str(photo_dataset.cache_path), "--epochs", "2", "--batch-size", "64"]
    argv += ["--num-workers", "2", "--no-anchors", "--only", "slipstream RRC224+flip"]
    argv += ["slipstream center224", "slipstream raw bytes"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| pipeline | img/s per epoch | median (warm) |")
    cells_of = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table[2:]]
    rows = {cells[0]: cells for cells in cells_of}
    assert set(rows) == {"slipstream RRC224+flip", "slipstream center224", "slipstream raw bytes"}
    for cells in rows.values():
        rates = [float(x.replace(",", "")) for x in cells[1].split(" / ")]
        assert len(rates) == 2 and all(r > 0 for r in rates)
        assert float(cells[2].replace(",", "")) == pytest.approx(rates[1], rel=1e-3, abs=1)


@pytest.mark.dali
def test_build_plugin_builds_into_the_plugin_root(capsys):
    pytest.importorskip("nvidia.dali")
    from slipstream.dali import plugin

    assert main(["build-plugin"]) == 0
    out = capsys.readouterr().out
    directory = plugin.plugin_dir()
    assert (
        out.strip()
        == f"DALI plugin for DALI {plugin.dali_version()}: {directory / plugin.LIB_NAME}"
    )
    assert plugin.is_current(directory)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # litdata's
def test_inspect_a_litdata_folder(photo_folder, tmp_path, capsys):
    writer_module = pytest.importorskip("litdata.streaming.writer")
    folder = tmp_path / "optimized"
    writer = writer_module.BinaryWriter(str(folder), chunk_size=4)
    files = sorted(photo_folder.glob("*/*.jpg"))[:9]
    for i, path in enumerate(files):
        writer[i] = {"image": Image.open(path), "label": i % 3}
    writer.done()
    writer.merge()
    assert main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"LitData dataset {folder}\n")
    assert "samples: 9" in out and "cache: " in out
