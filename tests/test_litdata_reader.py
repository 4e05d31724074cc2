"""LitData datasets written by the real ``litdata`` package, read back locally and over S3.

Oracle: every value is generated here, so each field read back must equal what was
written (JPEG files byte for byte, PIL images pixel for pixel before the cache's JPEG
re-encode, within a small tolerance after it). S3 runs against moto's standalone server,
started as a separate process on 127.0.0.1 (real HTTP, real boto3 client).
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

litdata = pytest.importorskip("litdata", reason="needs litdata to write test datasets")
from litdata.streaming.writer import BinaryWriter  # noqa: E402

from slipstream import SlipstreamDataset, SlipstreamLoader  # noqa: E402
from slipstream.pipelines import supervised_train  # noqa: E402
from slipstream.readers import LitDataFormatError, LitDataReader  # noqa: E402

N = 24
IMAGE_DIR: Path | None = None  # the JPEG files litdata_dir was written from


def _jpeg_array(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    h, w = 40 + i, 56 + 2 * i
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.integers(0, 40, 3)
    return np.clip(base, 0, 255).astype(np.uint8)


def _pil_array(i: int) -> np.ndarray:
    """A smooth RGB image: survives the cache's JPEG q95 re-encode within a few levels."""
    y, x = np.mgrid[0:24, 0:30]
    return np.stack([x * 6 + i, y * 7 + 2 * i, np.full_like(x, 10 * i)], axis=-1).astype(np.uint8)


def _mask_array(i: int) -> np.ndarray:
    return ((np.arange(20 * 22).reshape(20, 22) * (i + 1)) % 256).astype(np.uint8)


def _expected(i: int) -> dict:
    return {
        "label": i % 5,
        "name": f"sample-{i:03d} é",
        "score": i / 8 - 1.0,
        "raw": bytes([i, 0, 255, i]),
    }


def _make_sample(i: int, image_dir: str) -> dict:
    """The sample litdata.optimize writes for input ``i`` (runs in a spawned worker)."""
    return {
        "image": Image.open(Path(image_dir) / f"{i}.jpg"),  # JpegImageFile -> "jpeg"
        "pil": Image.fromarray(_pil_array(i)),  # plain PIL image -> "pil" (raw pixels)
        "mask": Image.fromarray(_mask_array(i), mode="L"),
        **_expected(i),
    }


@pytest.fixture(scope="module")
def litdata_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``litdata.optimize`` output: 24 samples in chunks of 5, plus the JPEG files it read."""
    global IMAGE_DIR
    root = tmp_path_factory.mktemp("litdata")
    IMAGE_DIR = root / "jpegs"
    IMAGE_DIR.mkdir()
    for i in range(N):
        Image.fromarray(_jpeg_array(i)).save(IMAGE_DIR / f"{i}.jpg", quality=90)
    out = root / "optimized"
    litdata.optimize(
        fn=functools.partial(_make_sample, image_dir=str(IMAGE_DIR)),
        inputs=list(range(N)),
        output_dir=str(out),
        chunk_size=5,
        num_workers=1,
        mode="overwrite",
    )
    return out


def _jpeg_bytes(i: int) -> bytes:
    return (Path(IMAGE_DIR) / f"{i}.jpg").read_bytes()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _write(folder: Path, items: list, chunk_size: int = 4) -> Path:
    writer = BinaryWriter(str(folder), chunk_size=chunk_size)
    for i, item in enumerate(items):
        writer[i] = item
    writer.done()
    writer.merge()
    return folder


# ----------------------------------------------------------------------------- local


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # litdata's
def test_reader_reads_back_every_field(litdata_dir: Path):
    reader = LitDataReader(litdata_dir)
    assert len(reader) == N
    assert len(reader.chunks) == 5
    assert reader.field_types == {
        "image": "ImageBytes",
        "pil": "ImageBytes",
        "mask": "ImageBytes",
        "label": "int",
        "name": "str",
        "score": "float",
        "raw": "bytes",
    }
    for i in range(N):
        sample = reader.read_sample(i)
        assert sample["image"] == _jpeg_bytes(i)  # JPEG passes through byte for byte
        np.testing.assert_array_equal(_decode(sample["pil"]), _pil_array(i))  # lossless PNG
        np.testing.assert_array_equal(_decode(sample["mask"]), _mask_array(i))
        assert {k: sample[k] for k in _expected(i)} == _expected(i)
        assert type(sample["label"]) is int and type(sample["score"]) is float
    assert "chunk-0-4.bin" in reader.describe(N - 1)
    # litdata's own reader agrees, sample for sample.
    theirs = litdata.StreamingDataset(str(litdata_dir))
    assert len(theirs) == N
    for i in (0, 7, N - 1):
        ours, ref = reader.read_sample(i), theirs[i]
        assert {k: ours[k] for k in _expected(i)} == {k: ref[k] for k in _expected(i)}
        np.testing.assert_array_equal(_decode(ours["pil"]), np.asarray(ref["pil"]))
    with pytest.raises(IndexError):
        reader.read_sample(N)


def test_dataset_from_litdata_folder(litdata_dir: Path, tmp_path: Path):
    ds = SlipstreamDataset(litdata_dir, cache_dir=tmp_path, progress=False)
    assert ds.cache_path.parent == tmp_path
    assert ds.cache_path.name.startswith("optimized-") and ds.cache_path.name.endswith("-v3")
    assert len(ds) == N
    heights, widths = ds.image_sizes("image")
    assert heights.tolist() == [40 + i for i in range(N)]
    assert widths.tolist() == [56 + 2 * i for i in range(N)]
    for i in range(N):
        sample = ds[i]
        assert bytes(sample["image"]) == _jpeg_bytes(i)
        assert sample["raw"] == _expected(i)["raw"]
        assert {k: sample[k] for k in ("label", "name", "score")} == {
            k: _expected(i)[k] for k in ("label", "name", "score")
        }
        # PIL images are stored as raw RGB items: their pixels, exactly
        pil = np.frombuffer(bytes(sample["pil"]), np.uint8).reshape(24, 30, 3)
        np.testing.assert_array_equal(pil, _pil_array(i))
        mask = np.frombuffer(bytes(sample["mask"]), np.uint8).reshape(20, 22, 3)  # L -> RGB
        np.testing.assert_array_equal(mask, np.repeat(_mask_array(i)[..., None], 3, axis=-1))
    assert ds.cache.manifest["build"]["reencoded"] == []  # nothing re-encoded
    assert ds.cache.manifest["fields"]["pil"]["format"] == "raw"
    again = SlipstreamDataset(litdata_dir, cache_dir=tmp_path, progress=False)
    assert again.cache_path == ds.cache_path


def test_tuple_and_single_value_samples(litdata_dir: Path, tmp_path: Path):
    pairs = _write(
        tmp_path / "pairs",
        [(Image.open(Path(IMAGE_DIR) / f"{i}.jpg"), i * 3) for i in range(6)],
    )
    reader = LitDataReader(pairs)
    assert reader.field_types == {"0": "ImageBytes", "1": "int"}
    assert reader.read_sample(5) == {"0": _jpeg_bytes(5), "1": 15}
    renamed = LitDataReader(pairs, rename={"0": "image", "1": "label"})
    assert renamed.read_sample(2) == {"image": _jpeg_bytes(2), "label": 6}
    assert renamed.fingerprint() != reader.fingerprint()

    single = LitDataReader(_write(tmp_path / "single", [_jpeg_bytes(i) for i in range(5)]))
    assert single.field_types == {"image": "ImageBytes"}  # raw bytes that are JPEGs
    assert single.read_sample(4) == {"image": _jpeg_bytes(4)}
    as_bytes = LitDataReader(single.root, detect_images=False)
    assert as_bytes.field_types == {"image": "bytes"}

    nested = LitDataReader(
        _write(tmp_path / "nested", [{"meta": {"id": i, "tag": f"t{i}"}, "x": i} for i in range(5)])
    )
    assert nested.read_sample(3) == {"meta.id": 3, "meta.tag": "t3", "x": 3}


def test_dict_of_plain_values_arrow_rows(litdata_dir: Path, tmp_path: Path, monkeypatch):
    """{"image": JPEG file bytes, "label": int}: with pyarrow, litdata stores Arrow rows only."""
    from slipstream.readers.litdata_arrow import rows_only_in_arrow

    folder = _write(
        tmp_path / "plain",
        [{"image": _jpeg_bytes(i), "label": i % 3, "tag": {"id": i}} for i in range(10)],
    )
    chunk = memoryview((folder / "chunk-0-0.bin").read_bytes())
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert not rows_only_in_arrow(chunk)  # pytree items: read without pyarrow
    else:
        assert rows_only_in_arrow(chunk)
    reader = LitDataReader(folder)
    assert reader.field_types == {"image": "ImageBytes", "label": "int", "tag.id": "int"}
    for i in range(10):
        assert reader.read_sample(i) == {"image": _jpeg_bytes(i), "label": i % 3, "tag.id": i}
    ds = SlipstreamDataset(folder, cache_dir=tmp_path / "caches", progress=False)
    assert [bytes(ds[i]["image"]) for i in range(10)] == [_jpeg_bytes(i) for i in range(10)]
    batches = _batches(ds)
    assert sorted(sum((b["label"].tolist() for b in batches), [])) == sorted(
        i % 3 for i in range(10)
    )
    if rows_only_in_arrow(chunk):
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        with pytest.raises(ImportError, match="pip install pyarrow"):
            LitDataReader(folder).read_sample(0)


def test_cli_build_from_litdata_folder(litdata_dir: Path, tmp_path: Path, capsys):
    from slipstream.cache import SlipCache
    from slipstream.cli import main

    assert main(["build", str(litdata_dir), str(tmp_path / "cache")]) == 0
    cache = SlipCache.open(tmp_path / "cache")
    assert len(cache) == N and bytes(cache.sample(7)["image"]) == _jpeg_bytes(7)
    assert f"({N} source images)" in capsys.readouterr().out


def test_unsupported_serializer_names_field(tmp_path: Path):
    folder = _write(
        tmp_path / "arrays",
        [{"label": i, "feature": np.full((2, 3), i, np.float32)} for i in range(5)],
    )
    with pytest.raises(LitDataFormatError, match=r"'feature'.*'numpy'"):
        LitDataReader(folder)
    reader = LitDataReader(folder, fields=["label"])
    assert [reader.read_sample(i) for i in range(5)] == [{"label": i} for i in range(5)]


def test_missing_and_truncated_chunk(litdata_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(litdata_dir, broken)
    (broken / "chunk-0-2.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"chunk-0-2\.bin.*index\.json"):
        LitDataReader(broken)
    with pytest.raises(FileNotFoundError, match=r"chunk-0-2\.bin"):
        SlipstreamDataset(broken, cache_dir=tmp_path / "caches", progress=False)
    assert not any((tmp_path / "caches").glob("*/manifest.json"))

    shutil.copy(litdata_dir / "chunk-0-2.bin", broken / "chunk-0-2.bin")
    with open(broken / "chunk-0-3.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(LitDataFormatError, match=r"chunk-0-3\.bin has 100 bytes"):
        LitDataReader(broken)


def test_compressed_dataset_is_refused(tmp_path: Path):
    folder = _write(tmp_path / "plain", [{"x": i} for i in range(3)])
    index = json.loads((folder / "index.json").read_text())
    index["config"]["compression"] = "zstd"
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(LitDataFormatError, match="compressed"):
        LitDataReader(folder)


# ----------------------------------------------------------------------------- S3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's standalone S3 server in its own process on 127.0.0.1; yields the endpoint."""
    pytest.importorskip("boto3", reason="needs boto3 for s3://")
    pytest.importorskip("moto.server", reason="needs moto[server] for an S3 server")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start on port {port}")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch):
    """A boto3 client of the server, with the AWS variables slipstream reads set to it."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.client("s3", endpoint_url=s3_server)


def _upload(client, folder: Path, skip: tuple[str, ...] = ()) -> str:
    bucket = f"slip-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.iterdir()):
        if path.name not in skip:
            client.upload_file(str(path), bucket, f"sets/train/{path.name}")
    return f"s3://{bucket}/sets/train"


def _batches(ds: SlipstreamDataset) -> list[dict]:
    loader = SlipstreamLoader(
        ds, batch_size=4, pipelines=supervised_train(32), seed=0, device="cpu"
    )
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


def test_s3_reads_equal_local(litdata_dir: Path, s3, tmp_path: Path):
    url = _upload(s3, litdata_dir)
    remote = SlipstreamDataset(url, cache_dir=tmp_path / "remote", progress=False)
    local = SlipstreamDataset(litdata_dir, cache_dir=tmp_path / "local", progress=False)
    assert remote.cache_path.name.startswith("train-")
    assert remote.cache_path.name.split("-")[1] == local.cache_path.name.split("-")[1]
    assert len(remote) == len(local) == N
    for i in range(N):
        a, b = remote[i], local[i]
        assert bytes(a["image"]) == bytes(b["image"]) == _jpeg_bytes(i)
        assert bytes(a["pil"]) == bytes(b["pil"])
        assert (a["label"], a["name"], a["raw"]) == (b["label"], b["name"], b["raw"])
    downloaded = list((tmp_path / "remote" / "s3").glob("*/*/chunk-*.bin"))
    assert len(downloaded) == 5 and not list((tmp_path / "remote").rglob("*.part-*"))

    remote_batches, local_batches = _batches(remote), _batches(local)
    assert len(remote_batches) == N // 4
    labels = []
    for a, b in zip(remote_batches, local_batches, strict=True):
        assert a["image"].shape == (4, 3, 32, 32)
        assert a["image"].equal(b["image"])
        assert a["label"].equal(b["label"])
        labels += a["label"].tolist()
    assert sorted(labels) == sorted(i % 5 for i in range(N))

    # The cache exists: opening again fetches index.json only, no chunk (none is left).
    for chunk in downloaded:
        chunk.unlink()
    for key in s3.list_objects_v2(Bucket=url.split("/")[2])["Contents"]:
        if key["Key"].endswith(".bin"):
            s3.delete_object(Bucket=url.split("/")[2], Key=key["Key"])
    again = SlipstreamDataset(url, cache_dir=tmp_path / "remote", progress=False)
    assert again.cache_path == remote.cache_path


def test_s3_missing_chunk_and_index(litdata_dir: Path, s3, tmp_path: Path):
    url = _upload(s3, litdata_dir, skip=("chunk-0-3.bin",))
    with pytest.raises(FileNotFoundError, match=r"chunk-0-3\.bin.*" + url):
        SlipstreamDataset(url, cache_dir=tmp_path, progress=False)
    assert not list(tmp_path.glob("*/manifest.json"))
    assert not list(tmp_path.rglob("*.part-*"))
    empty = url.rsplit("/", 1)[0] + "/nothing"
    with pytest.raises(FileNotFoundError, match="index.json"):
        SlipstreamDataset(empty, cache_dir=tmp_path, progress=False)


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    from slipstream.readers.s3_download import s3_client

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ImportError, match=r"slipstream\[s3\]"):
        s3_client()
