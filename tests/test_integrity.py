"""Integrity: per-item checksums, one live iteration per loader, validated resume.

Oracles: XXH64 against its published test vectors and an independent pure-Python
implementation of the specification; a damaged cache against the same loader on the clean
cache; a resumed run against the sample order of an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from loader_engines import ENGINES, batches, engine_params, make_loader

from slipstream import SlipstreamDataset
from slipstream.cache import SlipCache
from slipstream.cache.checksum import checksum_file, xxh64, xxh64_items
from slipstream.cache.gather import gather_bytes
from slipstream.decode.errors import SampleCorruptError, SampleDecodeError
from slipstream.errors import SlipstreamError
from slipstream.pipelines import supervised_train
from slipstream.prefetch.iteration import LoaderIterationClosed
from slipstream.prefetch.position import ResumeStateError

UINT8 = supervised_train(48, normalize=False, dtype="uint8")
JPEG_ENGINES = [name for name, kw in ENGINES.items() if kw["image_format"] == "jpeg"]

_M = (1 << 64) - 1
_P = (
    11400714785074694791,
    14029467366897019727,
    1609587929392839161,
    9650029242287828579,
    2870177450012600261,
)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P[1]) & _M, 31) * _P[0]) & _M


def xxh64_reference(data: bytes) -> int:
    """XXH64, seed 0, straight from the specification (slow, independent)."""
    n, p = len(data), 0

    def u64(i: int) -> int:
        return int.from_bytes(data[i : i + 8], "little")

    if n >= 32:
        v = [(_P[0] + _P[1]) & _M, _P[1], 0, (-_P[0]) & _M]
        while p + 32 <= n:
            v = [_round(v[k], u64(p + 8 * k)) for k in range(4)]
            p += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
        for lane in v:
            h = (((h ^ _round(0, lane)) * _P[0]) + _P[3]) & _M
    else:
        h = _P[4]
    h = (h + n) & _M
    while p + 8 <= n:
        h = ((_rotl(h ^ _round(0, u64(p)), 27) * _P[0]) + _P[3]) & _M
        p += 8
    if p + 4 <= n:
        lane = int.from_bytes(data[p : p + 4], "little")
        h = ((_rotl(h ^ ((lane * _P[0]) & _M), 23) * _P[1]) + _P[2]) & _M
        p += 4
    while p < n:
        h = (_rotl(h ^ ((data[p] * _P[4]) & _M), 11) * _P[0]) & _M
        p += 1
    h ^= h >> 33
    h = (h * _P[1]) & _M
    h ^= h >> 29
    h = (h * _P[2]) & _M
    return h ^ (h >> 32)


# ------------------------------------------------------------------ checksums
def test_xxh64_vectors_and_reference():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    rng = np.random.default_rng(0)
    for n in [*range(70), 255, 1024, 4099]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert xxh64(data) == xxh64_reference(data), n


def test_xxh64_items_equals_per_item():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 5000, dtype=np.uint8)
    sizes = np.array([0, 1, 31, 32, 33, 100, 777], np.uint64)
    pointers = np.array([0, 7, 50, 200, 300, 1000, 4000], np.uint64)
    got = xxh64_items(data, pointers, sizes)
    for i, (p, s) in enumerate(zip(pointers.tolist(), sizes.tolist(), strict=True)):
        assert int(got[i]) == xxh64_reference(data[p : p + s].tobytes())
    with pytest.raises(ValueError, match="past the end"):
        xxh64_items(data, np.array([4990], np.uint64), np.array([11], np.uint64))


def test_checked_gather_flags_and_zeroes_only_the_flipped_item():
    rng = np.random.default_rng(2)
    source = rng.integers(0, 256, 4000, dtype=np.uint8)
    pointers = np.array([0, 1000, 2000, 3000], np.uint64)
    sizes = np.array([900, 800, 700, 1000], np.uint64)
    expected = xxh64_items(source, pointers, sizes)
    source[2100] ^= 1  # inside item 2
    out, offsets = np.zeros(3400, np.uint8), np.zeros(4, np.uint64)
    corrupt = np.full(4, 7, np.uint8)
    gather_bytes(source, pointers, sizes, out, offsets, expected, corrupt)
    np.testing.assert_array_equal(corrupt, [0, 0, 1, 0])
    start = int(offsets[2])
    np.testing.assert_array_equal(out[start : start + 4], 0)
    np.testing.assert_array_equal(out[start + 4 : start + 700], source[2004:2700])
    np.testing.assert_array_equal(out[: int(offsets[1])], source[:900])


def test_cache_records_checksums_of_every_item(photo_dataset):
    cache = photo_dataset.cache
    assert cache.manifest["version"] == 2
    assert cache.manifest["fields"]["image"]["checksum"] == "xxh64"
    sums = cache.checksums("image")
    for i in (0, 5, len(cache) - 1):
        assert int(sums[i]) == xxh64_reference(cache.item_bytes("image", i).tobytes())


def test_version_1_cache_opens_without_checksums(photo_dataset, tmp_path):
    old = tmp_path / "v1"
    shutil.copytree(photo_dataset.cache_path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = 1
    spec = manifest["fields"]["image"]
    del spec["checksum"], spec["files"][checksum_file("image")]
    (old / checksum_file("image")).unlink()
    (old / "manifest.json").write_text(json.dumps(manifest))
    cache = SlipCache.open(old)
    assert cache.checksums("image") is None
    assert len(batches(make_loader(SlipstreamDataset(old), "native-jpeg", 64, UINT8))) == 4


@pytest.fixture(scope="module")
def flipped_dataset(photo_dataset, tmp_path_factory):
    """``(dataset, victim)``: one bit flipped in the middle of sample 7's stored JPEG."""
    dest = tmp_path_factory.mktemp("flipped") / "cache"
    shutil.copytree(photo_dataset.cache_path, dest)
    meta = np.load(dest / "image.meta.npy")
    victim = 7
    with open(dest / "image.bin", "r+b") as f:
        f.seek(int(meta["data_ptr"][victim] + meta["data_size"][victim] // 2))
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0x04]))
    return SlipstreamDataset(dest), victim


@pytest.mark.parametrize("engine", engine_params(JPEG_ENGINES))
def test_flipped_byte_raises_sample_corrupt_error(flipped_dataset, engine):
    dataset, victim = flipped_dataset
    loader = make_loader(dataset, engine, 64, UINT8, shuffle=False)
    with pytest.raises(SampleCorruptError, match=rf"sample {victim} \(.*\.jpg\).*checksum") as info:
        batches(loader)
    assert isinstance(info.value, SampleDecodeError) and isinstance(info.value, SlipstreamError)
    assert str(dataset.cache.path) in str(info.value)


@pytest.mark.parametrize("engine", engine_params(JPEG_ENGINES))
def test_flipped_byte_skipped_and_zero_filled(flipped_dataset, photo_dataset, engine):
    dataset, victim = flipped_dataset
    got = batches(make_loader(dataset, engine, 64, UINT8, shuffle=False, on_error="skip"))
    clean = batches(make_loader(photo_dataset, engine, 64, UINT8, shuffle=False))
    for damaged, reference in zip(got, clean, strict=True):
        ids = damaged["index"]
        bad = ids == victim
        assert torch.equal(damaged["valid"], ~bad)
        assert torch.equal(damaged["image"][~bad], reference["image"][~bad])
        assert int(damaged["image"][bad].abs().sum()) == 0


# ------------------------------------------------------------------ iterations
@pytest.mark.parametrize("engine", engine_params())
def test_second_iter_closes_the_first(yuv_dataset, engine):
    loader = make_loader(yuv_dataset, engine, 64, UINT8, shuffle=False)
    loader.set_epoch(1)
    expected = batches(loader)
    loader.set_epoch(0)
    first = iter(loader)
    next(first)
    again = batches(loader)  # a new iteration: the next epoch (1), whole and correct
    assert [b["index"].tolist() for b in again] == [b["index"].tolist() for b in expected]
    for a, b in zip(again, expected, strict=True):
        assert torch.equal(a["image"], b["image"])
    with pytest.raises(LoaderIterationClosed, match="newer iter"):
        next(first)
    assert loader.epoch == 2 and len(batches(loader)) == len(expected)  # still usable


# ------------------------------------------------------------------ resume
def _order(epoch_batches: list[dict]) -> list[int]:
    return [i for b in epoch_batches for i in b["index"].tolist()]


def test_resume_at_another_batch_size_continues_after_the_last_sample(photo_dataset):
    full = _order(batches(make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3)))
    saver = make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3)
    it = iter(saver)
    seen = [i for _ in range(3) for i in next(it)["index"].tolist()]
    state = json.loads(json.dumps(saver.state_dict()))
    it.close()
    assert state["samples"] == 96 and seen == full[:96]
    resumed = make_loader(photo_dataset, "native-jpeg", 64, UINT8, seed=3)
    resumed.load_state_dict(state)
    rest = batches(resumed)
    assert _order(rest) == full[96:] and len(rest[0]["index"]) == 64
    assert resumed.epoch == 1 and resumed.state_dict()["samples"] == 0


def test_old_state_resumes_by_batches(photo_dataset):
    full = _order(batches(make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3)))
    loader = make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3)
    loader.load_state_dict({"epoch": 0, "batch": 5, "seed": 3})
    assert _order(batches(loader)) == full[160:]


def test_state_mismatches_are_named(photo_dataset, yuv_dataset, bogus_huffman_dataset):
    saver = make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3, indices=range(100))
    state = saver.state_dict()
    other, _ = bogus_huffman_dataset  # other content, same sample count and fields
    with pytest.raises(ResumeStateError, match="dataset"):
        make_loader(other, "native-jpeg", 32, UINT8, seed=3, indices=range(100)).load_state_dict(
            state
        )
    with pytest.raises(ResumeStateError, match="seed 3"):
        make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=4).load_state_dict(state)
    with pytest.raises(ResumeStateError, match="indices"):
        make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3).load_state_dict(state)
    sharded = make_loader(
        photo_dataset, "native-jpeg", 32, UINT8, seed=3, indices=range(100),
        distributed=True, rank=1, world_size=2,
    )  # fmt: skip
    with pytest.raises(ResumeStateError, match="world_size.*rank|rank"):
        sharded.load_state_dict(state)
    plain = make_loader(photo_dataset, "native-jpeg", 32, UINT8, seed=3)
    for bad in ({"epoch": 0, "batch": -3, "seed": 3}, {"epoch": -1, "batch": 0}, {"batch": 1}):
        with pytest.raises(ResumeStateError):
            plain.load_state_dict(bad)
    with pytest.raises(ResumeStateError, match="240"):
        plain.load_state_dict({"epoch": 0, "batch": 0, "samples": 241, "seed": 3})
    # the same content elsewhere (a copy) is the same dataset
    make_loader(yuv_dataset, "native-jpeg", 32, UINT8, seed=3, indices=range(100)).load_state_dict(
        state
    )


# ------------------------------------------------------------------ build-time JPEG checks
def test_table_rules_match_between_the_two_walkers(photo_dataset):
    from conftest import bogus_huffman_table

    from slipstream.cache.jpeg_check import ImageCheckError, parse_jpeg_header
    from slipstream.cache.jpeg_scan import scan_portable_jpeg

    good = photo_dataset.cache.item_bytes("image", 3).tobytes()
    assert scan_portable_jpeg(good)[0]
    parse_jpeg_header(good)
    bogus = bogus_huffman_table(good)
    assert scan_portable_jpeg(bogus) == (False, 0, 0)
    with pytest.raises(ImageCheckError, match="bad Huffman table.*272 symbols"):
        parse_jpeg_header(bogus)
    dqt = good.index(b"\xff\xdb")
    zero_q = good[: dqt + 5] + b"\x00" + good[dqt + 6 :]
    assert scan_portable_jpeg(zero_q) == (False, 0, 0)
    with pytest.raises(ImageCheckError, match="quantization table.*zero"):
        parse_jpeg_header(zero_q)


def test_build_rejects_a_bogus_huffman_table(photo_folder, photo_dataset, tmp_path):
    from conftest import VICTIM, bogus_huffman_table

    folder = tmp_path / "photos"
    shutil.copytree(photo_folder, folder)
    path = photo_dataset.cache.string("path", VICTIM)
    (folder / path).write_bytes(bogus_huffman_table((folder / path).read_bytes()))
    with pytest.raises(Exception, match=rf"{path}.*Huffman"):
        SlipstreamDataset(folder, cache_dir=tmp_path / "caches", progress=False)


# ------------------------------------------------------------------ FFCV cross-checks
FFCV = Path(__file__).parent / "fixtures" / "ffcv"


def _beton_copy(tmp_path: Path, name: str = "all_fields") -> Path:
    path = tmp_path / f"{name}.beton"
    shutil.copyfile(FFCV / f"{name}.beton", path)
    return path


def test_ffcv_header_sample_count_is_cross_checked(tmp_path):
    from slipstream.readers import FfcvFile, FfcvFormatError

    path = _beton_copy(tmp_path)
    with open(path, "r+b") as f:  # num_samples: <u8 at byte 8
        f.seek(8)
        f.write((7).to_bytes(8, "little"))
    with pytest.raises(FfcvFormatError, match=rf"{path}.*num_samples \(7\).*allocation table"):
        FfcvFile(path)


def test_ffcv_allocation_size_past_the_file_fails_on_open(tmp_path):
    from slipstream.readers import FfcvFile, FfcvFormatError
    from slipstream.readers.ffcv_format import ALLOCATION_DTYPE

    path = _beton_copy(tmp_path)
    table_ptr = int(FfcvFile(path)._alloc_table_ptr)
    table = np.fromfile(path, dtype=ALLOCATION_DTYPE, offset=table_ptr)
    table["size"][0] = np.uint64(2**64 - 1)
    with open(path, "r+b") as f:
        f.seek(table_ptr)
        f.write(table.tobytes())
    with pytest.raises(FfcvFormatError, match=rf"{path}.*allocation table record 0.*outside"):
        FfcvFile(path)


def test_beton_read_in_place_gets_checksums_from_a_sidecar(tmp_path):
    from slipstream.readers import FfcvFile
    from slipstream.readers.ffcv_checksums import sidecar_path

    path = _beton_copy(tmp_path, "custom")
    beton = FfcvFile(path)
    sums = beton.checksums("image")
    assert sidecar_path(beton, "image").is_file()
    for i in range(len(beton)):
        assert int(sums[i]) == xxh64_reference(beton.item_bytes("image", i).tobytes())
    meta = beton.meta("image")
    victim = 2
    dataset = SlipstreamDataset(path)
    assert isinstance(dataset.cache, FfcvFile)
    make_loader(dataset, "native-jpeg", 4, UINT8)  # first open: the sidecar exists already
    with open(path, "r+b") as f:  # flip a byte in place (keeps size; mtime may change)
        f.seek(int(meta["data_ptr"][victim] + meta["data_size"][victim] // 2))
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0x20]))
    loaded = FfcvFile(path)
    loaded._checksums["image"] = sums  # the sidecar as recorded before the damage
    dataset.cache = loaded
    with pytest.raises(SampleCorruptError, match=rf"sample {victim} .*checksum"):
        batches(make_loader(dataset, "native-jpeg", 4, UINT8, shuffle=False))


# ------------------------------------------------------------------ parse errors name the file
def test_garbled_npy_header_names_the_file(photo_dataset, tmp_path):
    from slipstream.cache.reader import CacheFormatError

    dest = tmp_path / "cache"
    shutil.copytree(photo_dataset.cache_path, dest)
    raw = bytearray((dest / "image.meta.npy").read_bytes())
    raw[20:30] = b"\xff'(\x00{]\x80\"#\x01"
    (dest / "image.meta.npy").write_bytes(bytes(raw))
    with pytest.raises(CacheFormatError, match=r"image\.meta\.npy"):
        SlipCache.open(dest)


def test_damaged_litdata_index_names_the_file(tmp_path):
    from slipstream.readers.litdata_dataset import LitDataFormatError, LitDataReader

    (tmp_path / "index.json").write_text(
        json.dumps({"config": {"data_format": ["jpeg"], "data_spec": "[1, 5]"}, "chunks": []})
    )
    with pytest.raises(LitDataFormatError, match=r"index\.json"):
        LitDataReader(tmp_path)
