"""Tests of the C++ decode kernels through slipstream.native (real photos, Pillow reference)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

skd = pytest.importorskip("skimage.data")

from slipstream import _core  # noqa: E402
from slipstream.native import (  # noqa: E402
    STATUS_DECODE_ERROR,
    STATUS_INVALID_ARGUMENT,
    STATUS_OK,
    DecodeError,
    NativeDecoder,
    choose_scale,
    decode_crop,
    decode_crop_views,
    decode_full,
    read_jpeg_header,
)
from slipstream.native.decode import STATUS_JPEG_WARNING  # noqa: E402


def _encode(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _pil_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _photos() -> dict[str, np.ndarray]:
    return {
        "astronaut": skd.astronaut(),
        "chelsea": skd.chelsea(),
        "coffee": skd.coffee(),
        "rocket": skd.rocket(),
    }


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, bytes]:
    """Name -> JPEG bytes covering the encodings the kernel must handle."""
    out_dir = tmp_path_factory.mktemp("jpegs")
    p = _photos()
    files: dict[str, bytes] = {
        "astronaut_q95_420": _encode(Image.fromarray(p["astronaut"]), quality=95),
        "chelsea_q90_444": _encode(Image.fromarray(p["chelsea"]), quality=90, subsampling=0),
        "coffee_q95_422": _encode(Image.fromarray(p["coffee"]), quality=95, subsampling=1),
        "rocket_progressive": _encode(Image.fromarray(p["rocket"]), quality=92, progressive=True),
        "chelsea_gray": _encode(Image.fromarray(p["chelsea"]).convert("L"), quality=95),
        "coffee_cmyk": _encode(Image.fromarray(p["coffee"]).convert("CMYK"), quality=95),
        "astronaut_restart_rows": _encode(
            Image.fromarray(p["astronaut"]), quality=95, restart_marker_rows=1
        ),
        "astronaut_restart_blocks": _encode(
            Image.fromarray(p["astronaut"]), quality=95, restart_marker_blocks=3
        ),
        "odd_size_420": _encode(Image.fromarray(p["coffee"][3:260, 5:338]), quality=93),
        "odd_size_progressive_444": _encode(
            Image.fromarray(p["rocket"][1:222, 7:340]),
            quality=95,
            subsampling=0,
            progressive=True,
        ),
        "tiny_7x5": _encode(Image.fromarray(p["chelsea"][100:107, 200:205]), quality=95),
    }
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 (ignored, as Pillow's plain open + convert)
    files["chelsea_exif_orientation"] = _encode(
        Image.fromarray(p["chelsea"]), quality=95, exif=exif.tobytes()
    )
    cjpeg = shutil.which("cjpeg")
    if cjpeg is not None:
        ppm = out_dir / "astronaut.ppm"
        Image.fromarray(p["astronaut"]).save(ppm)
        files["astronaut_cjpeg_restart1"] = subprocess.run(
            [cjpeg, "-quality", "95", "-restart", "1", str(ppm)], check=True, capture_output=True
        ).stdout
    for name, data in files.items():
        (out_dir / f"{name}.jpg").write_bytes(data)
    return files


ALL_NAMES = [
    "astronaut_q95_420",
    "chelsea_q90_444",
    "coffee_q95_422",
    "rocket_progressive",
    "chelsea_gray",
    "coffee_cmyk",
    "astronaut_restart_rows",
    "astronaut_restart_blocks",
    "odd_size_420",
    "odd_size_progressive_444",
    "tiny_7x5",
    "chelsea_exif_orientation",
]


def _windows(h: int, w: int, rng: np.random.Generator) -> list[list[int]]:
    """Crops of many shapes: full image, edges, corners, small, large, thin."""
    wins = [
        [0, 0, h, w],
        [0, 0, max(1, h // 2), max(1, w // 2)],
        [h - max(1, h // 3), w - max(1, w // 3), max(1, h // 3), max(1, w // 3)],
        [0, w - max(1, w // 4), h, max(1, w // 4)],
        [h - 1, 0, 1, w],
        [0, 0, min(h, 17), min(w, 13)],
    ]
    for _ in range(10):
        ch = int(rng.integers(1, h + 1))
        cw = int(rng.integers(1, w + 1))
        wins.append([int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw])
    return wins


# ---------------------------------------------------------------------------- header / full


@pytest.mark.parametrize("name", ALL_NAMES)
def test_header_matches_pillow(fixtures, name):
    data = fixtures[name]
    hdr = read_jpeg_header(data)
    im = Image.open(io.BytesIO(data))
    assert (hdr.width, hdr.height) == im.size
    assert hdr.progressive == (name in ("rocket_progressive", "odd_size_progressive_444"))
    assert hdr.components == {"L": 1, "CMYK": 4}.get(im.mode, 3)
    assert hdr.colorspace in ("GRAY", "RGB", "YCbCr", "CMYK", "YCCK")


@pytest.mark.parametrize("name", ALL_NAMES)
def test_full_decode_matches_pillow(fixtures, name):
    data = fixtures[name]
    ref = _pil_rgb(data)
    got = decode_full(data)
    assert got.shape == ref.shape and got.dtype == np.uint8
    mad = np.abs(got.astype(np.int16) - ref).mean(axis=(0, 1))
    assert (mad <= 1.5).all(), mad


def test_cjpeg_restart_markers(fixtures):
    if "astronaut_cjpeg_restart1" not in fixtures:
        pytest.skip("cjpeg (libjpeg-turbo-progs) not installed")
    data = fixtures["astronaut_cjpeg_restart1"]
    assert b"\xff\xdd" in data  # DRI marker
    got = decode_full(data)
    assert np.abs(got.astype(np.int16) - _pil_rgb(data)).mean() <= 1.5
    out = decode_crop(data, [40, 60, 300, 200], (64, 48))
    assert out.shape == (64, 48, 3)


def test_inputs_as_numpy_and_memoryview(fixtures):
    data = fixtures["astronaut_q95_420"]
    a = decode_full(data)
    np.testing.assert_array_equal(a, decode_full(np.frombuffer(data, np.uint8)))
    np.testing.assert_array_equal(a, decode_full(memoryview(data)))
    np.testing.assert_array_equal(a, decode_full(bytearray(data)))


# ------------------------------------------------------------------------------ fused crop


def test_choose_scale():
    assert choose_scale(256, 340, 224, 224) == 7
    assert choose_scale(224, 224, 224, 224) == 8
    assert choose_scale(100, 100, 224, 224) == 8  # upsampling
    assert choose_scale(2048, 2048, 224, 224) == 1
    assert choose_scale(1000, 1000, 224, 224) == 2  # 1000 * 2/8 = 250 >= 224
    assert choose_scale(448, 448, 224, 224) == 4
    assert choose_scale(449, 447, 224, 224) == 5  # width 447 * 4/8 < 224
    for h, w, oh, ow in [(500, 800, 224, 224), (300, 3000, 64, 32), (17, 900, 16, 100)]:
        m = choose_scale(h, w, oh, ow)
        assert w * m >= ow * 8 and h * m >= oh * 8
        if m > 1:
            assert not (w * (m - 1) >= ow * 8 and h * (m - 1) >= oh * 8)
    assert _core.choose_scale(256, 340, 224, 224) == 7


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("size", [(224, 224), (64, 96), (160, 128)])
def test_decode_crop_matches_pillow(fixtures, name, size):
    data = fixtures[name]
    ref_full = Image.open(io.BytesIO(data)).convert("RGB")
    w_img, h_img = ref_full.size
    rng = np.random.default_rng(list(f"{name} {size}".encode()))  # not hash(): PYTHONHASHSEED
    out_h, out_w = size
    for y, x, h, w in _windows(h_img, w_img, rng):
        got = decode_crop(data, [y, x, h, w], size)
        assert got.shape == (out_h, out_w, 3)
        ref = np.asarray(ref_full.resize((out_w, out_h), Image.BILINEAR, box=(x, y, x + w, y + h)))
        mad = np.abs(got.astype(np.int16) - ref).mean(axis=(0, 1))
        assert (mad <= 3.0).all(), (name, (y, x, h, w), size, mad)


@pytest.mark.parametrize(
    "name",
    [
        "astronaut_q95_420",
        "coffee_q95_422",
        "rocket_progressive",
        "chelsea_q90_444",
        "coffee_cmyk",
        "odd_size_420",
    ],
)
def test_region_decode_exact(fixtures, name):
    """ROI + scaled decode equals full decode at the same scale, then the same resize."""
    data = fixtures[name]
    arr = np.frombuffer(data, np.uint8)
    hdr = read_jpeg_header(data)
    rng = np.random.default_rng(7)
    for _ in range(60):
        h = int(rng.integers(1, hdr.height + 1))
        w = int(rng.integers(1, hdr.width + 1))
        y = int(rng.integers(0, hdr.height - h + 1))
        x = int(rng.integers(0, hdr.width - w + 1))
        oh, ow = int(rng.integers(8, 260)), int(rng.integers(8, 260))
        m = choose_scale(h, w, oh, ow)
        f = m / 8
        scaled = _core.decode_full(arr, m)
        ref = _core.resize_box(scaled, x * f, y * f, (x + w) * f, (y + h) * f, oh, ow, False)
        got = decode_crop(data, [y, x, h, w], (oh, ow))
        np.testing.assert_array_equal(got, ref, err_msg=str(((y, x, h, w), (oh, ow), m)))


def test_big_crops_use_dct_scaling(fixtures):
    data = fixtures["astronaut_q95_420"]  # 512x512
    assert choose_scale(512, 512, 224, 224) == 4
    got = decode_crop(data, [0, 0, 512, 512], (224, 224))
    arr = np.frombuffer(data, np.uint8)
    half = _core.decode_full(arr, 4)
    assert half.shape == (256, 256, 3)
    np.testing.assert_array_equal(got, _core.resize_box(half, 0, 0, 256, 256, 224, 224))


def test_resize_box_matches_pillow_exactly(fixtures):
    img = _pil_rgb(fixtures["coffee_q95_422"])
    pil = Image.fromarray(img)
    for box, (oh, ow) in [
        ((0, 0, 600, 400), (224, 224)),
        ((10.5, 3.25, 300.75, 200.5), (97, 301)),
        ((100, 100, 130, 120), (224, 224)),
        ((0, 0, 1, 1), (3, 5)),
    ]:
        ref = np.asarray(pil.resize((ow, oh), Image.BILINEAR, box=box))
        got = _core.resize_box(img, *box, oh, ow)
        np.testing.assert_array_equal(got, ref, err_msg=str(box))


@pytest.mark.parametrize("name", ["astronaut_q95_420", "chelsea_gray", "odd_size_420"])
def test_flip_is_mirror(fixtures, name):
    data = fixtures[name]
    hdr = read_jpeg_header(data)
    for win, size in [
        ([0, 0, hdr.height, hdr.width], (224, 224)),
        ([10, 20, hdr.height // 2, hdr.width // 3], (97, 131)),
        ([5, 5, 40, 40], (200, 200)),
    ]:
        a = decode_crop(data, win, size)
        b = decode_crop(data, win, size, flip=True)
        np.testing.assert_array_equal(b, np.flip(a, axis=1))


@pytest.mark.parametrize(
    "name", ["chelsea_q90_444", "astronaut_q95_420", "chelsea_gray", "odd_size_420"]
)
def test_identity_crop_is_exact_pixels(fixtures, name):
    """A window of the output size is copied (fast path), equal to the full decode's pixels."""
    data = fixtures[name]
    full = decode_full(data)
    h, w = full.shape[:2]
    for y, x, ch, cw in [(13, 29, 100, 120), (0, 0, h, w), (h - 57, w - 33, 57, 33), (1, 0, 8, w)]:
        want = full[y : y + ch, x : x + cw]
        np.testing.assert_array_equal(decode_crop(data, [y, x, ch, cw], (ch, cw)), want)
        flipped = decode_crop(data, [y, x, ch, cw], (ch, cw), flip=True)
        np.testing.assert_array_equal(flipped, want[:, ::-1])


# ---------------------------------------------------------------------------------- batch


def _pack(samples: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Embed in a larger buffer with padding so offsets are non-trivial.
    sizes = np.array([len(s) for s in samples], dtype=np.uint64)
    buf = bytearray(b"\x00" * 11)
    offsets = []
    for s in samples:
        offsets.append(len(buf))
        buf += s + b"\x55" * 7
    return np.frombuffer(bytes(buf), np.uint8), np.array(offsets, dtype=np.uint64), sizes


def _batch_case(fixtures, n: int = 24):
    names = [k for k in ALL_NAMES if k != "tiny_7x5"]
    rng = np.random.default_rng(3)
    samples, windows, flips = [], [], []
    for i in range(n):
        data = fixtures[names[i % len(names)]]
        hdr = read_jpeg_header(data)
        h = int(rng.integers(1, hdr.height + 1))
        w = int(rng.integers(1, hdr.width + 1))
        windows.append(
            [
                int(rng.integers(0, hdr.height - h + 1)),
                int(rng.integers(0, hdr.width - w + 1)),
                h,
                w,
            ]
        )
        samples.append(data)
        flips.append(i % 3 == 0)
    return samples, np.array(windows, np.int32), np.array(flips, np.uint8)


@pytest.mark.parametrize("threads", [1, 2, None])
def test_batch_equals_single(fixtures, threads):
    samples, windows, flips = _batch_case(fixtures)
    data, offsets, sizes = _pack(samples)
    out = np.full((len(samples), 112, 96, 3), 7, np.uint8)
    NativeDecoder(threads).decode_crop_batch(data, offsets, sizes, windows, flips, out)
    for i, s in enumerate(samples):
        ref = decode_crop(s, windows[i], (112, 96), flip=bool(flips[i]))
        np.testing.assert_array_equal(out[i], ref, err_msg=f"sample {i}")


def test_batch_reuses_pool_and_memmap(fixtures, tmp_path):
    samples, windows, flips = _batch_case(fixtures, 8)
    data, offsets, sizes = _pack(samples)
    path = tmp_path / "bytes.bin"
    data.tofile(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    dec = NativeDecoder(2)
    out1 = np.empty((8, 64, 64, 3), np.uint8)
    out2 = np.empty_like(out1)
    dec.decode_crop_batch(mm, offsets, sizes, windows, flips, out1)
    for _ in range(3):
        NativeDecoder(2).decode_crop_batch(data, offsets, sizes, windows, flips, out2)
        np.testing.assert_array_equal(out1, out2)


def test_batch_validation_errors(fixtures):
    samples, windows, flips = _batch_case(fixtures, 4)
    data, offsets, sizes = _pack(samples)
    out = np.empty((4, 32, 32, 3), np.uint8)
    dec = NativeDecoder(1)
    with pytest.raises(ValueError, match="offsets"):
        dec.decode_crop_batch(data, offsets.astype(np.int64), sizes, windows, flips, out)
    with pytest.raises(ValueError, match="windows"):
        dec.decode_crop_batch(data, offsets, sizes, windows[:3], flips, out)
    with pytest.raises(ValueError, match="out"):
        dec.decode_crop_batch(data, offsets, sizes, windows, flips, out[:, :, ::2])
    with pytest.raises(ValueError, match="out"):
        dec.decode_crop_batch(data, offsets, sizes, windows, flips, out.astype(np.float32))
    with pytest.raises(ValueError, match="flips"):
        dec.decode_crop_batch(data, offsets, sizes, windows, flips.astype(bool), out)
    with pytest.raises(ValueError, match="num_threads"):
        NativeDecoder(0)


# ----------------------------------------------------------------------------- bad inputs


def _bad_inputs(fixtures, tmp_path: Path) -> dict[str, bytes]:
    good = fixtures["astronaut_q95_420"]
    png = io.BytesIO()
    Image.fromarray(skd.chelsea()).save(png, "PNG")
    text = tmp_path / "notes.txt"
    text.write_text("this is not a JPEG file\n" * 20)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "text": text.read_bytes(),
        "png": png.getvalue(),
        "soi_only": b"\xff\xd8",
        "garbage_after_soi": b"\xff\xd8" + bytes(range(256)) * 4,
    }


@pytest.mark.parametrize(
    "kind", ["empty", "truncated", "text", "png", "soi_only", "garbage_after_soi"]
)
def test_bad_input_single(fixtures, tmp_path, kind):
    data = _bad_inputs(fixtures, tmp_path)[kind]
    with pytest.raises(DecodeError) as ei:
        decode_crop(data, [0, 0, 8, 8], (8, 8))
    assert ei.value.failures and ei.value.failures[0][0] == 0
    assert str(ei.value)
    with pytest.raises(DecodeError):
        decode_full(data)
    if kind != "truncated":  # a truncated file still has a readable header
        with pytest.raises(DecodeError):
            read_jpeg_header(data)


def test_truncated_message_names_eof(fixtures):
    good = fixtures["astronaut_q95_420"]
    with pytest.raises(DecodeError, match="(?i)premature end"):
        decode_full(good[: len(good) // 2])
    # The progressive file fails even for a crop at the very top (all scans are needed).
    prog = fixtures["rocket_progressive"]
    with pytest.raises(DecodeError):
        decode_crop(prog[: len(prog) // 2], [0, 0, 16, 16], (16, 16))


@pytest.mark.parametrize(
    "window",
    [
        [-1, 0, 10, 10],
        [0, -1, 10, 10],
        [0, 0, 0, 10],
        [0, 0, 10, 0],
        [500, 0, 13, 10],
        [0, 505, 10, 8],
        [0, 0, 513, 512],
    ],
)
def test_window_out_of_bounds(fixtures, window):
    with pytest.raises(DecodeError, match="window"):
        decode_crop(fixtures["astronaut_q95_420"], window, (16, 16))


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_with_failures(fixtures, tmp_path, threads):
    bad = _bad_inputs(fixtures, tmp_path)
    good = fixtures["coffee_q95_422"]
    samples = [good, bad["empty"], good, bad["truncated"], bad["text"], good, bad["png"], good]
    windows = np.array([[10, 10, 200, 300]] * len(samples), np.int32)
    windows[7] = [0, 0, 401, 600]  # out of bounds for the 400x600 coffee image
    flips = np.zeros(len(samples), np.uint8)
    data, offsets, sizes = _pack(samples)
    out = np.full((len(samples), 48, 64, 3), 9, np.uint8)
    failures = NativeDecoder(threads).decode_crop_batch(data, offsets, sizes, windows, flips, out)
    failed = [pos for pos, _, _ in failures]
    assert failed == [1, 3, 4, 6, 7]
    codes = {pos: code for pos, code, _ in failures}
    assert codes == {
        1: STATUS_DECODE_ERROR,
        3: STATUS_DECODE_ERROR,
        4: STATUS_DECODE_ERROR,
        6: STATUS_DECODE_ERROR,
        7: STATUS_INVALID_ARGUMENT,
    }
    msgs = {pos: msg for pos, _, msg in failures}
    assert "premature end" in msgs[3].lower()
    assert "window" in msgs[7]
    for pos in failed:
        assert not out[pos].any()
    ref = decode_crop(good, [10, 10, 200, 300], (48, 64))
    for pos in (0, 2, 5):
        np.testing.assert_array_equal(out[pos], ref)


def test_batch_byte_range_out_of_buffer(fixtures):
    good = fixtures["coffee_q95_422"]
    data, offsets, sizes = _pack([good, good])
    sizes[1] = np.uint64(len(data))  # runs past the end of the buffer
    out = np.zeros((2, 16, 16, 3), np.uint8)
    windows = np.array([[0, 0, 50, 50]] * 2, np.int32)
    failures = NativeDecoder(2).decode_crop_batch(
        data, offsets, sizes, windows, np.zeros(2, np.uint8), out
    )
    assert [(p, code) for p, code, _ in failures] == [(1, STATUS_INVALID_ARGUMENT)]
    assert "outside the data buffer" in failures[0][2]
    assert out[0].any()


def test_trailing_junk_after_eoi_is_fine(fixtures):
    good = fixtures["coffee_q95_422"]
    data = good + b"SEFT-like trailer " * 500  # EOI no longer in the last bytes
    ref = decode_crop(good, [0, 0, 100, 100], (50, 50))
    np.testing.assert_array_equal(decode_crop(data, [0, 0, 100, 100], (50, 50)), ref)
    np.testing.assert_array_equal(decode_full(data), decode_full(good))


def test_truncated_detected_even_for_top_crop(fixtures):
    for name in ("astronaut_q95_420", "chelsea_gray", "coffee_cmyk", "odd_size_420"):
        good = fixtures[name]
        for cut in (len(good) // 2, len(good) - 40):
            with pytest.raises(DecodeError, match="(?i)premature end"):
                decode_crop(good[:cut], [0, 0, 8, 8], (8, 8))


def test_concurrent_callers_share_pool(fixtures):
    import threading

    samples, windows, flips = _batch_case(fixtures, 16)
    data, offsets, sizes = _pack(samples)
    ref = np.empty((16, 40, 56, 3), np.uint8)
    NativeDecoder(1).decode_crop_batch(data, offsets, sizes, windows, flips, ref)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            out = np.empty_like(ref)
            for _ in range(5):
                NativeDecoder(2).decode_crop_batch(data, offsets, sizes, windows, flips, out)
                np.testing.assert_array_equal(out, ref)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_fuzzed_bytes_never_crash(fixtures):
    """Randomly corrupted files either decode or fail with a status (no crash, no hang)."""
    rng = np.random.default_rng(11)
    names = ["chelsea_q90_444", "rocket_progressive", "coffee_cmyk", "astronaut_restart_rows"]
    samples = []
    for i in range(160):
        d = bytearray(fixtures[names[i % len(names)]])
        for _ in range(int(rng.integers(1, 16))):
            j = int(rng.integers(0, min(len(d), 1500) if rng.random() < 0.7 else len(d)))
            d[j] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            d = d[: int(rng.integers(0, len(d)))]
        samples.append(bytes(d))
        try:
            decode_crop(samples[-1], [5, 5, 100, 120], (32, 32), flip=True)
        except DecodeError:
            pass
    data, offsets, sizes = _pack(samples)
    windows = np.array([[5, 5, 100, 120]] * len(samples), np.int32)
    out = np.empty((len(samples), 32, 32, 3), np.uint8)
    failures = NativeDecoder(2).decode_crop_batch(
        data, offsets, sizes, windows, np.zeros(len(samples), np.uint8), out
    )
    for p, code, msg in failures:
        assert 0 <= p < len(samples) and code != STATUS_OK and msg
        if code != STATUS_JPEG_WARNING:  # a warning decoded: its pixels are kept
            assert not out[p].any()


def _child_decode(args) -> bytes:
    data, offsets, sizes, windows, flips = args
    out = np.empty((len(sizes), 40, 40, 3), np.uint8)
    NativeDecoder(2).decode_crop_batch(data, offsets, sizes, windows, flips, out)
    return out.tobytes()


def test_pool_works_after_fork(fixtures):
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork start method")
    samples, windows, flips = _batch_case(fixtures, 6)
    data, offsets, sizes = _pack(samples)
    ref = np.empty((6, 40, 40, 3), np.uint8)
    NativeDecoder(2).decode_crop_batch(data, offsets, sizes, windows, flips, ref)  # parent pool
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_child_decode, ((data, offsets, sizes, windows, flips),))
        assert got.get(timeout=60) == ref.tobytes()


# ------------------------------------------------------------------------------ multi-view


@pytest.mark.parametrize("name", ["astronaut_q95_420", "chelsea_gray", "odd_size_420"])
def test_views_equal_single_decodes(fixtures, name):
    """Views sharing a decode (one per distinct DCT scale) equal their single decodes."""
    data = fixtures[name]
    hdr = read_jpeg_header(data)
    h, w = hdr.height, hdr.width
    size = (40, 48)
    windows = np.array(
        [
            [0, 0, h, w],  # large: a reduced DCT scale
            [h // 4, w // 5, h // 2, w // 2],
            [3, 5, 44, 50],  # the full scale
            [h - 45, w - 60, 45, 60],
            [7, 9, 40, 48],  # the output size: copied
            [1, 2, h // 2 + 1, w // 2 + 3],
        ],
        dtype=np.int32,
    )
    flips = np.array([0, 1, 1, 0, 1, 0], dtype=np.uint8)
    scales = {choose_scale(int(wi[2]), int(wi[3]), *size) for wi in windows}
    assert len(scales) >= 3  # several groups, some with several views
    got = decode_crop_views(data, windows, size, flips)
    assert got.shape == (6, 40, 48, 3) and got.dtype == np.uint8
    for k, (window, flip) in enumerate(zip(windows, flips, strict=True)):
        single = decode_crop(data, window, size, flip=bool(flip))
        np.testing.assert_array_equal(got[k], single, err_msg=f"view {k}")


def test_views_batch_into_per_view_buffers(fixtures):
    names = ["astronaut_q95_420", "chelsea_gray", "odd_size_420", "chelsea_q90_444"]
    samples = [fixtures[n] for n in names]
    data, offsets, sizes = _pack(samples)
    rng = np.random.default_rng(5)
    windows = np.zeros((len(samples), 3, 4), dtype=np.int32)
    for i, sample in enumerate(samples):
        hdr = read_jpeg_header(sample)
        for k in range(3):
            ch, cw = rng.integers(20, hdr.height), rng.integers(20, hdr.width)
            y, x = rng.integers(0, hdr.height - ch + 1), rng.integers(0, hdr.width - cw + 1)
            windows[i, k] = (y, x, ch, cw)
    flips = rng.integers(0, 2, (len(samples), 3)).astype(np.uint8)
    outs = [np.zeros((len(samples), 24, 32, 3), np.uint8) for _ in range(3)]
    NativeDecoder(2).decode_views_batch(data, offsets, sizes, windows, flips, outs)
    for i, sample in enumerate(samples):
        for k in range(3):
            want = decode_crop(sample, windows[i, k], (24, 32), flip=bool(flips[i, k]))
            np.testing.assert_array_equal(outs[k][i], want, err_msg=f"sample {i} view {k}")
    bad = windows.copy()
    bad[2, 1] = (0, 0, 10**6, 10)
    failures = NativeDecoder(2).decode_views_batch(data, offsets, sizes, bad, flips, outs)
    assert [(position, code) for position, code, _ in failures] == [(2, STATUS_INVALID_ARGUMENT)]
    assert failures[0][2].startswith("view 1: crop window")
    assert not outs[0][2].any() and outs[0][1].any()  # the failed sample is zeroed


def test_views_one_view_and_errors(fixtures):
    data = fixtures["astronaut_q95_420"]
    window = np.array([[10, 20, 100, 90]], dtype=np.int32)
    np.testing.assert_array_equal(
        decode_crop_views(data, window, (32, 32), [True])[0],
        decode_crop(data, window[0], (32, 32), flip=True),
    )
    bad = np.array([[0, 0, 10, 10], [0, 0, 10**6, 10]], dtype=np.int32)
    with pytest.raises(DecodeError, match="view 1: crop window"):
        decode_crop_views(data, bad, (8, 8))
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        decode_crop_views(data, np.zeros((2, 3), np.int32), (8, 8))
    with pytest.raises(ValueError, match="flips must hold"):
        decode_crop_views(data, window, (8, 8), [0, 1])
    with pytest.raises(DecodeError):
        decode_crop_views(data[: len(data) // 2], window, (8, 8))


def test_views_of_different_sizes_share_decodes(fixtures):
    """One call, views of two output sizes: each equals its single-window decode."""
    names = ["astronaut_q95_420", "odd_size_420"]
    samples = [fixtures[n] for n in names]
    data, offsets, sizes = _pack(samples)
    windows = np.zeros((2, 3, 4), dtype=np.int32)
    for i, sample in enumerate(samples):
        hdr = read_jpeg_header(sample)
        windows[i] = [[0, 0, hdr.height, hdr.width], [2, 3, 30, 40], [5, 1, 16, 16]]
    flips = np.array([[0, 1, 0], [1, 0, 1]], dtype=np.uint8)
    out_sizes = [(24, 32), (16, 16), (16, 16)]
    outs = [np.zeros((2, h, w, 3), np.uint8) for h, w in out_sizes]
    NativeDecoder(2).decode_views_batch(data, offsets, sizes, windows, flips, outs)
    for i, sample in enumerate(samples):
        for k, size in enumerate(out_sizes):
            want = decode_crop(sample, windows[i, k], size, flip=bool(flips[i, k]))
            np.testing.assert_array_equal(outs[k][i], want, err_msg=f"sample {i} view {k}")


def test_status_constants_and_one_single_image_entry():
    """The STATUS_* constants mirror csrc/status.h; decode_views is the one single-image entry."""
    header = (Path(__file__).parents[1] / "csrc" / "status.h").read_text()
    for name, value in (
        ("kOk", STATUS_OK),
        ("kInvalidArgument", STATUS_INVALID_ARGUMENT),
        ("kDecodeError", STATUS_DECODE_ERROR),
    ):
        assert f"{name} = {value}," in header
    for gone in ("decode_crop", "decode_crop_views", "yuv420_crop_views", "decode_crop_batch"):
        assert not hasattr(_core, gone), gone
    assert hasattr(_core, "decode_views") and hasattr(_core, "decode_views_batch")
