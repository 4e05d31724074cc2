"""The DALI CPU operator fn.slipstream_decode_crop against the native kernel (bit-exact)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "nvidia.dali", reason="nvidia-dali is not installed (pip install 'slipstream[dali]')"
)

from nvidia.dali import fn, pipeline_def  # noqa: E402

from slipstream.cache.yuv420 import build_yuv420  # noqa: E402
from slipstream.dali import decode_crop, load_plugin, plugin  # noqa: E402
from slipstream.native import (  # noqa: E402
    STATUS_DECODE_ERROR,
    STATUS_INVALID_ARGUMENT,
    DecodeError,
    decode_crop_views_yuv420,
)
from slipstream.native import decode_crop as native_decode_crop  # noqa: E402
from slipstream.native import decode_crop_views as native_decode_crop_views  # noqa: E402
from slipstream.sampling.crops import random_resized_crop  # noqa: E402

pytestmark = pytest.mark.dali

BATCH = 24


def _batches(photo_dataset, n_batches: int, *, views: int = 1, seed: int = 7):
    heights, widths = photo_dataset.image_sizes()
    out = []
    for b in range(n_batches):
        ids = np.arange(b * BATCH, (b + 1) * BATCH, dtype=np.int64)
        jpegs = [np.array(photo_dataset.cache.item_bytes("image", int(i))) for i in ids]
        wins = [
            random_resized_crop(heights[ids], widths[ids], ids, seed=seed, epoch=0, view=v)
            for v in range(views)
        ]
        windows = np.stack(wins, axis=1).astype(np.int32)  # [B, K, 4]
        flips = (np.random.default_rng(b).random((BATCH, views)) < 0.5).astype(np.bool_)
        out.append((jpegs, windows, flips))
    return out


def _run(batches, *, size, flip_dtype=np.uint8, multi=False, flip_const=None):
    def source():
        for jpegs, windows, flips in batches:
            w = list(windows) if multi else list(windows[:, 0])
            f = list(flips.astype(flip_dtype)) if multi else list(flips[:, 0].astype(flip_dtype))
            yield (jpegs, w) if flip_const is not None else (jpegs, w, f)

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        if flip_const is not None:
            jpegs, windows = fn.external_source(source, num_outputs=2, cycle="raise")
            return decode_crop(jpegs, windows, size=size, flip=flip_const)
        jpegs, windows, flips = fn.external_source(source, num_outputs=3, cycle="raise")
        return decode_crop(jpegs, windows, size=size, flip=flips)

    p = pipe()
    p.build()
    return [[np.array(t) for t in p.run()[0]] for _ in batches]


def test_bit_identical_to_native(photo_dataset):
    batches = _batches(photo_dataset, 2)
    for size, flip_dtype in (((160, 128), np.uint8), (112, np.bool_)):
        outs = _run(batches, size=size, flip_dtype=flip_dtype)
        hw = (size, size) if isinstance(size, int) else size
        for (jpegs, windows, flips), got in zip(batches, outs, strict=True):
            for i in range(BATCH):
                want = native_decode_crop(jpegs[i], windows[i, 0], hw, flip=bool(flips[i, 0]))
                assert got[i].shape == (*hw, 3) and got[i].dtype == np.uint8
                np.testing.assert_array_equal(got[i], want, err_msg=f"sample {i}")


def test_multi_view_and_constant_flip(photo_dataset):
    """[K, 4] windows: one decode per image, bit-identical to the native multi-view kernel."""
    batches = _batches(photo_dataset, 1, views=3, seed=3)
    (got,) = _run(batches, size=96, multi=True)
    (jpegs, windows, flips) = batches[0]
    for i in range(BATCH):
        assert got[i].shape == (3, 96, 96, 3)
        want = native_decode_crop_views(jpegs[i], windows[i], (96, 96), flips[i])
        np.testing.assert_array_equal(got[i], want)
    (got,) = _run(batches, size=64, flip_const=True)
    want = native_decode_crop(jpegs[5], windows[5, 0], (64, 64), flip=True)
    np.testing.assert_array_equal(got[5], want)


def _run_with_status(items, windows, flips, *, size, image_size=None):
    """One batch through decode_crop(status=True): (images, status) as numpy, per sample."""
    n = len(items)
    columns = [items, list(windows), list(flips)]
    if image_size is not None:
        columns.append(list(image_size))

    @pipeline_def(batch_size=n, num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        nodes = fn.external_source(lambda: tuple(columns), num_outputs=len(columns), batch=True)
        kwargs = {"format": "yuv420", "image_size": nodes[3]} if image_size is not None else {}
        return decode_crop(nodes[0], nodes[1], size=size, flip=nodes[2], status=True, **kwargs)

    p = pipe()
    p.build()
    images, status = p.run()
    return [np.array(t) for t in images], np.array([np.array(t) for t in status])


def _status_batch(dataset, victim: int, views: int):
    """Items 0..7 of a dataset (the victim among them), keyed RRC windows [8, views, 4]."""
    ids = np.arange(8, dtype=np.int64)
    assert victim in ids
    heights, widths = dataset.image_sizes()
    items = [np.array(dataset.cache.item_bytes("image", int(i))) for i in ids]
    wins = [
        random_resized_crop(heights[ids], widths[ids], ids, seed=5, epoch=0, view=v)
        for v in range(views)
    ]
    windows = np.stack(wins, axis=1).astype(np.int32)
    flips = (np.random.default_rng(views).random((len(ids), views)) < 0.5).astype(np.uint8)
    return items, windows, flips


@pytest.mark.parametrize("views", [1, 3])
def test_status_output_marks_the_damaged_jpeg(bogus_huffman_dataset, views):
    """status=True: the batch comes back, nonzero status exactly at the damaged JPEG."""
    dataset, victim = bogus_huffman_dataset
    items, windows, flips = _status_batch(dataset, victim, views)
    with pytest.raises(DecodeError, match="(?i)huffman"):  # the damage is real
        native_decode_crop(items[victim], windows[victim, 0], (40, 48))
    multi = views > 1
    images, status = _run_with_status(
        items,
        windows if multi else windows[:, 0],
        flips if multi else flips[:, 0],
        size=(40, 48),
    )
    assert status.dtype == np.int32 and status.shape == (len(items),)
    want_status = np.zeros(len(items), np.int32)
    want_status[victim] = STATUS_DECODE_ERROR
    np.testing.assert_array_equal(status, want_status)
    for i, got in enumerate(images):
        assert got.shape == ((views, 40, 48, 3) if multi else (40, 48, 3))
        if i == victim:
            assert not got.any(), "a failed sample's pixels are zero"
        elif multi:
            want = native_decode_crop_views(items[i], windows[i], (40, 48), flips[i])
            np.testing.assert_array_equal(got, want, err_msg=f"sample {i}")
        else:
            want = native_decode_crop(items[i], windows[i, 0], (40, 48), flip=bool(flips[i, 0]))
            np.testing.assert_array_equal(got, want, err_msg=f"sample {i}")


def test_status_output_marks_a_short_yuv420_item(yuv_dataset):
    """status=True with format="yuv420": an item too short for its image_size is marked."""
    companion = build_yuv420(yuv_dataset.cache, "image", progress=False)
    victim = 2
    _, windows, flips = _status_batch(yuv_dataset, victim, 2)
    meta = companion.meta[:8]
    items = [
        np.array(companion.data[int(r["data_ptr"]) : int(r["data_ptr"]) + int(r["data_size"])])
        for r in meta
    ]
    items[victim] = items[victim][:-1]  # one byte short of what its (height, width) need
    image_size = np.stack([meta["height"], meta["width"]], axis=1).astype(np.int32)
    images, status = _run_with_status(items, windows, flips, size=32, image_size=image_size)
    want_status = np.zeros(len(items), np.int32)
    want_status[victim] = STATUS_INVALID_ARGUMENT
    np.testing.assert_array_equal(status, want_status)
    for i, got in enumerate(images):
        if i == victim:
            assert got.shape == (2, 32, 32, 3) and not got.any()
            continue
        h, w = image_size[i]
        want = decode_crop_views_yuv420(items[i], h, w, windows[i], (32, 32), flips[i])
        np.testing.assert_array_equal(got, want, err_msg=f"sample {i}")


_CORRUPT_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from nvidia.dali import fn, pipeline_def
    from slipstream.dali import decode_crop

    good = np.fromfile(sys.argv[1], dtype=np.uint8)
    bad = good[: len(good) // 3].copy()
    h, w = int(sys.argv[2]), int(sys.argv[3])
    jpegs = [good, bad, good]
    wins = [np.array([0, 0, h, w], np.int32)] * 3

    @pipeline_def(batch_size=3, num_threads=2, device_id=None)
    def pipe():
        j, win = fn.external_source(lambda: (jpegs, wins), num_outputs=2, batch=True)
        return decode_crop(j, win, size=32)

    p = pipe()
    p.build()
    try:
        p.run()
    except Exception as exc:
        print("RAISED", type(exc).__name__, exc)
    else:
        print("NO ERROR")
    """
)


def test_corrupt_jpeg_raises_naming_sample(photo_dataset, tmp_path):
    """Without status=True a failed sample is one DALI error naming it (for users' pipelines)."""
    heights, widths = photo_dataset.image_sizes()
    src = tmp_path / "good.jpg"
    np.array(photo_dataset.cache.item_bytes("image", 0)).tofile(src)
    script = tmp_path / "corrupt.py"
    script.write_text(_CORRUPT_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(src), str(heights[0]), str(widths[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RAISED" in proc.stdout, proc.stdout
    assert "sample 1" in proc.stdout and "1 of 3 samples failed" in proc.stdout, proc.stdout
    assert "sample 0" not in proc.stdout and "sample 2" not in proc.stdout


def test_load_twice_is_noop():
    first = load_plugin()
    assert load_plugin() == first
    assert hasattr(fn, "slipstream_decode_crop")


def test_stamp_mismatch_rebuilds(tmp_path):
    built = load_plugin()
    d = tmp_path / "plugin"
    d.mkdir()
    shutil.copy(built, d / plugin.LIB_NAME)
    stamp = dict(plugin.read_stamp(built.parent))
    stamp["dali_version"] = "0.0.1"
    (d / plugin.STAMP_NAME).write_text(json.dumps(stamp))
    assert not plugin.is_current(d)

    calls = []

    def fake_build(directory: Path) -> Path:  # stands in for the 30 s compile
        calls.append(directory)
        (directory / plugin.STAMP_NAME).write_text(json.dumps(plugin._expected_stamp()))
        return directory / plugin.LIB_NAME

    assert plugin.ensure_built(d, builder=fake_build) == d / plugin.LIB_NAME
    assert calls == [d] and plugin.is_current(d)
    assert plugin.ensure_built(d, builder=fake_build) == d / plugin.LIB_NAME
    assert calls == [d]  # current: no second build

    (d / plugin.STAMP_NAME).write_text(json.dumps(stamp))
    with pytest.raises(plugin.PluginBuildError, match="does not match DALI"):
        plugin.ensure_built(d, builder=lambda directory: directory / plugin.LIB_NAME)


def test_missing_cuda_headers_error(monkeypatch, tmp_path):
    monkeypatch.setenv(plugin.CUDA_INCLUDE_ENV, str(tmp_path))
    with pytest.raises(plugin.PluginBuildError, match="nvidia-cuda-runtime-cu12"):
        plugin.find_cuda_include()


def test_missing_dali_names_the_extra():
    code = (
        "import sys; sys.modules['nvidia.dali'] = None\n"
        "try:\n    import slipstream.dali\nexcept ImportError as e:\n    print(e)\n"
    )
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "pip install 'slipstream[dali]'" in proc.stdout, proc.stdout + proc.stderr


def test_unknown_device_and_bad_size():
    with pytest.raises(ValueError, match="device must be one of"):
        decode_crop(None, None, size=224, device="gpu")
    with pytest.raises(ValueError, match="size must be"):
        decode_crop(None, None, size=(1, 2, 3))
    with pytest.raises(ValueError, match="status=True. needs device='cpu'"):
        decode_crop(None, None, size=224, device="mixed", status=True)


def test_cuda_header_wheels_add_their_include_dirs(monkeypatch, tmp_path):
    import types

    runtime = tmp_path / "runtime" / "include"
    runtime.mkdir(parents=True)
    (runtime / "cuda_runtime.h").write_text("")
    monkeypatch.setenv("SLIPSTREAM_CUDA_INCLUDE", str(runtime))
    for name in ("cuda_nvcc", "cuda_cccl"):
        (tmp_path / name / "include").mkdir(parents=True)
        module = types.ModuleType(f"nvidia.{name}")
        module.__path__ = [str(tmp_path / name)]
        monkeypatch.setitem(sys.modules, f"nvidia.{name}", module)
    assert plugin.cuda_include_dirs() == [
        runtime,
        tmp_path / "cuda_nvcc" / "include",
        tmp_path / "cuda_cccl" / "include",
    ]


def test_plugin_key_changes_with_each_component():
    base = dict(version="2.4.0", cuda_major="12", jpeg_soname="libjpeg.so.62", machine="x86_64")
    key = plugin.plugin_key(**base)
    assert key == "dali2.4.0-cuda12-libjpeg.so.62-x86_64"
    for name, other in [
        ("version", "2.5.0"),
        ("cuda_major", "11"),
        ("jpeg_soname", "libjpeg.so.8"),
        ("machine", "aarch64"),
    ]:
        changed = plugin.plugin_key(**{**base, name: other})
        assert changed != key and other in changed
    assert plugin.plugin_key(**{**base, "machine": "a b/c"}).endswith("-a_b_c")  # one name
    here = plugin.plugin_key()
    assert here.startswith(f"dali{plugin.dali_version()}-cuda")
    assert plugin.plugin_dir("/x") == Path("/x") / here
    # The installed wheel's CUDA flavour, read independently from its distribution name.
    import importlib.metadata

    names = [d.metadata["Name"] for d in importlib.metadata.distributions()]
    wheel = next((n for n in names if n and n.startswith("nvidia-dali-cuda")), None)
    if wheel is not None:
        assert f"-cuda{wheel[len('nvidia-dali-cuda') :][:-1]}-" in here


def test_unwritable_plugin_root_builds_a_private_copy(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the plugin root should be")
    directory = plugin.plugin_dir(blocked)
    built = []

    def fake_build(d: Path) -> Path:  # stands in for the 30 s compile
        built.append(d)
        (d / plugin.LIB_NAME).write_bytes(b"\x7fELF")
        (d / plugin.STAMP_NAME).write_text(json.dumps(plugin._expected_stamp()))
        return d / plugin.LIB_NAME

    with pytest.warns(RuntimeWarning, match="cannot be written.*building the plugin in"):
        lib = plugin.ensure_built(directory, builder=fake_build)
    assert len(built) == 1 and blocked not in lib.parents
    assert lib.parent == plugin.private_plugin_dir(directory.name)
    assert (tmp_path / "tmp") in lib.parents and lib.parent.name == directory.name
    assert (lib.parent.parent.stat().st_mode & 0o777) == 0o700
    with pytest.warns(RuntimeWarning):  # the private copy is reused, not rebuilt
        assert plugin.ensure_built(directory, builder=fake_build) == lib
    assert len(built) == 1


def test_waiting_for_the_plugin_build_says_so(tmp_path, caplog):
    import logging
    import time

    directory = tmp_path / plugin.plugin_key()
    flag = tmp_path / "building"
    code = textwrap.dedent(
        """
        import json, sys, time
        from pathlib import Path
        from slipstream.dali import plugin

        def slow_build(d):  # stands in for the compile
            Path(sys.argv[2]).write_text("building")
            time.sleep(1.5)
            (d / plugin.LIB_NAME).write_bytes(b"ELF")
            (d / plugin.STAMP_NAME).write_text(json.dumps(plugin._expected_stamp()))
            return d / plugin.LIB_NAME

        plugin.ensure_built(Path(sys.argv[1]), builder=slow_build)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(directory), str(flag)])
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert time.monotonic() < deadline and holder.poll() is None, "the builder did not start"
        time.sleep(0.02)
    calls = []
    with caplog.at_level(logging.INFO, logger="slipstream"):
        assert plugin.ensure_built(directory, builder=calls.append) == directory / plugin.LIB_NAME
    assert holder.wait(timeout=60) == 0
    assert calls == []  # it waited and used that build, it did not compile again
    lines = [r.getMessage() for r in caplog.records]
    assert sum("waiting for the DALI plugin build" in line for line in lines) == 1, lines
