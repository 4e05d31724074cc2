"""``examples/train_ddp.py`` under real launchers: torchrun on one node, and 2 nodes x 2 ranks.

Real processes throughout: ``python -m torch.distributed.run`` (gloo, CPU), a real image
folder, a real moto S3 server on loopback as the remote cache. The oracles are independent
of the loader's code:

* the samples: each rank records the sample ids it saw per epoch (``--record-samples``);
  interleaving them (rank ``r``'s ``j``-th id at position ``j * world + r``, as
  ``DistributedSampler`` deals them) must give a permutation of the dataset followed by
  a repeat of its first ``ceil(N / world) * world - N`` ids (the documented padding);
* the builds: the build's progress bar line (``SLIPSTREAM_PROGRESS=1``) and the remote
  cache's log lines, counted in the launchers' output, and the cache folders on disk;
* the S3 traffic: each simulated node talks to S3 through its own counting proxy
  (``tests/s3_test_server.py``), so the GETs and PUTs of every object (the LitData
  dataset's chunks, the shared cache's files) are counted per node outside the library.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "train_ddp.py"
sys.path.insert(0, str(ROOT / "tests"))
from s3_test_server import CountingProxy, start_moto, stop  # noqa: E402

NUM_SAMPLES = 25  # pads in both worlds: 2 ranks x 13 (1 repeat), 4 ranks x 7 (3 repeats)
EPOCHS = 2
BUILD_BAR = re.compile(r"building \S+-v\d+:\s+0%")  # one per build (tqdm's first state)

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)


@pytest.fixture(scope="module")
def folder(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 photos: 5 classes x 5."""
    root = tmp_path_factory.mktemp("ddp_photos")
    for cls in sorted(p for p in photo_folder.iterdir() if p.is_dir())[:5]:
        (root / cls.name).mkdir()
        for f in sorted(cls.iterdir())[:5]:
            shutil.copyfile(f, root / cls.name / f.name)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLURM_"))}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", SLIPSTREAM_PROGRESS="1", **extra)
    return env


def _torchrun(launcher: list[str], script_args: list[str], env: dict[str, str]):
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, str(EXAMPLE)]
    cmd += [*script_args, "--epochs", str(EPOCHS), "--batch-size", "4", "--backend", "native"]
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # so a hung job is killed whole
    )  # fmt: skip


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    """Each launcher's stdout + stderr; every process group is killed if one overruns."""
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            outputs.append(out + err)
    except subprocess.TimeoutExpired:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        raise
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-4000:]
    return outputs


def _check_epochs(record_dir: Path, world: int) -> None:
    """Per epoch: the ranks' ids, dealt back into one list, are the dataset plus padding."""
    records = [json.loads((record_dir / f"rank{r}.json").read_text()) for r in range(world)]
    per_rank = math.ceil(NUM_SAMPLES / world)
    pad = per_rank * world - NUM_SAMPLES
    orders = []
    for epoch in range(EPOCHS):
        shards = [record["epochs"][epoch] for record in records]
        assert [len(s) for s in shards] == [per_rank] * world
        order = [shards[p % world][p // world] for p in range(per_rank * world)]
        assert sorted(order[:NUM_SAMPLES]) == list(range(NUM_SAMPLES))  # each sample once
        assert order[NUM_SAMPLES:] == order[:pad]  # then the start of the order again
        for r in range(world):
            for s in range(r + 1, world):
                assert set(shards[r]) & set(shards[s]) <= set(order[:pad])
        orders.append(order)
    assert orders[0] != orders[1] and orders[0] != sorted(orders[0])  # shuffled per epoch


def _caches(cache_dir: Path) -> list[Path]:
    return sorted(p.parent for p in cache_dir.glob("*/manifest.json"))


def test_torchrun_two_ranks_one_node(folder, tmp_path):
    cache_dir, records = tmp_path / "cache", tmp_path / "records"
    proc = _torchrun(
        ["--standalone", "--nproc_per_node", "2"],
        [str(folder), "--cache-dir", str(cache_dir), "--record-samples", str(records),
         "--checkpoint", str(tmp_path / "ckpt.pt")],
        _env(),
    )  # fmt: skip
    (output,) = _wait_all([proc], timeout=150)

    assert len(BUILD_BAR.findall(output)) == 1, output  # one build on the node
    (cache,) = _caches(cache_dir)
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(f"{cache.name}.")]
    for rank in range(2):
        assert f"rank {rank}/2 (local {rank}): 13 samples, 4 batches per epoch on cpu" in output
    assert len(re.findall(r"^epoch \d: loss \d", output, re.M)) == EPOCHS, output
    _check_epochs(records, world=2)
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["epoch"] == EPOCHS - 1 and set(state["model"])
    assert state["loader"]["seed"] == 0 and state["loader"]["order"]["world_size"] == 2


@pytest.fixture
def s3_bucket():
    """A moto S3 server on loopback with a fresh bucket: ``(endpoint, bucket)``."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    proc, endpoint = start_moto()
    try:
        bucket = f"ddp-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="t", aws_secret_access_key="t",
            region_name="us-east-1",
        )  # fmt: skip
        client.create_bucket(Bucket=bucket)
        yield endpoint, bucket, client
    finally:
        stop(proc)


def _upload_litdata(folder: Path, out: Path, client, bucket: str) -> list[str]:
    """``folder``'s photos as a LitData dataset (5 chunks of 5) under ``s3://bucket/train``."""
    from litdata.streaming.writer import BinaryWriter
    from PIL import Image

    writer = BinaryWriter(str(out), chunk_size=5)
    classes = sorted(p.name for p in folder.iterdir())
    for i, path in enumerate(sorted(folder.rglob("*.jpg"))):
        writer[i] = {"image": Image.open(path), "label": classes.index(path.parent.name)}
    writer.done()
    writer.merge()
    for path in sorted(out.iterdir()):
        client.upload_file(str(path), bucket, f"train/{path.name}")
    return sorted(p.name for p in out.glob("chunk-*.bin"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # litdata's
def test_two_nodes_two_ranks_share_one_build_through_s3(folder, tmp_path, s3_bucket):
    pytest.importorskip("litdata")
    endpoint, bucket, client = s3_bucket
    chunks = _upload_litdata(folder, tmp_path / "litdata", client, bucket)
    assert len(chunks) == 5
    proxies = [CountingProxy(endpoint) for _ in range(2)]  # one per simulated node
    port, records = _free_port(), tmp_path / "records"
    remote = f"s3://{bucket}/caches"
    try:
        procs = []
        for node in range(2):
            launcher = f"--nnodes 2 --node_rank {node} --nproc_per_node 2 "
            launcher += f"--master_addr 127.0.0.1 --master_port {port}"
            script = f"s3://{bucket}/train --cache-dir {tmp_path / f'node{node}'} "
            script += f"--remote-cache {remote} --record-samples {records}"
            env = _env(
                AWS_ENDPOINT_URL=proxies[node].url,  # this node's S3 traffic, counted
                AWS_ACCESS_KEY_ID="t",
                AWS_SECRET_ACCESS_KEY="t",
                AWS_DEFAULT_REGION="us-east-1",
                SLIPSTREAM_REMOTE_CACHE_POLL="0.2",  # waiting ranks check the marker often
            )
            procs.append(_torchrun(launcher.split(), script.split(), env))
        outputs = _wait_all(procs, timeout=240)
    finally:
        for proxy in proxies:
            proxy.close()

    # One build in the job, by global rank 0 on node 0; node 1 downloads once.
    assert [len(BUILD_BAR.findall(o)) for o in outputs] == [1, 0], outputs
    built = [re.findall(r"^\[rank (\d)\].*building it, then uploading", o, re.M) for o in outputs]
    assert built == [["0"], []], outputs
    fetched = [re.findall(r"^\[rank (\d)\].*downloading the cache", o, re.M) for o in outputs]
    assert fetched[0] == [] and len(fetched[1]) == 1 and fetched[1][0] in "23", outputs
    (cache0,), (cache1,) = _caches(tmp_path / "node0"), _caches(tmp_path / "node1")
    assert cache0.name == cache1.name
    files = sorted(p.name for p in cache0.iterdir() if p.is_file())
    assert files == sorted(p.name for p in cache1.iterdir() if p.is_file())
    for name in files:
        assert (cache0 / name).read_bytes() == (cache1 / name).read_bytes(), name

    # S3 traffic per node, counted by the proxies. Node 0 fetches each chunk of the
    # dataset once (for the build), uploads each cache file once and fetches none; node 1
    # fetches no chunk, each cache file once, and uploads nothing.
    chunk_gets = [
        {p.rsplit("/", 1)[1]: n for p, n in proxy.gets(".bin").items() if "/train/" in p}
        for proxy in proxies
    ]
    assert chunk_gets == [dict.fromkeys(chunks, 1), {}]
    marker_key = f"caches/{cache0.name}/complete.json"
    marker = json.loads(client.get_object(Bucket=bucket, Key=marker_key)["Body"].read())
    prefix = f"/{bucket}/caches/{cache0.name}/{marker['data']}/"
    expected = {prefix + rel: 1 for rel in marker["files"]}
    assert set(marker["files"]) == set(files)

    def data_requests(proxy: CountingProxy, method: str) -> dict[str, int]:
        return {p: n for (m, p), n in proxy.counts.items() if m == method and "/data-" in p}

    assert data_requests(proxies[0], "PUT") == expected
    assert data_requests(proxies[0], "GET") == {}
    assert data_requests(proxies[1], "GET") == expected
    assert not [key for key in proxies[1].counts if key[0] in ("PUT", "POST", "DELETE")]

    _check_epochs(records, world=4)
