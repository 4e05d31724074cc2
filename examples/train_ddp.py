r"""Distributed data-parallel training on slipstream, launched by torchrun.

Every rank runs this same script. The loader takes its place in the job from the launcher:
it shards each epoch across the process group (``DistributedSampler``'s split), decodes on
its share of the node's cores, and delivers batches on ``cuda:$LOCAL_RANK`` (CPU without a
GPU). The dataset's cache is built once per node (the other ranks of the node wait for it),
or once in the whole job with ``--remote-cache`` (global rank 0 builds and uploads it, the
other nodes download it once each).

One machine, 2 processes (gloo on CPU, NCCL on GPUs)::

    torchrun --nproc_per_node 2 examples/train_ddp.py path/to/imagefolder --epochs 2

Two machines sharing the cache through S3 (run on each, ``--node_rank 0`` and ``1``)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --master_addr HOST0 \\
        --master_port 29500 examples/train_ddp.py s3://bucket/litdata/train \\
        --remote-cache s3://bucket/slip-caches --cache-dir /local/ssd/slip

Under Slurm, start one torchrun per node: ``srun --ntasks-per-node 1 torchrun --nnodes
$SLURM_NNODES --node_rank $SLURM_NODEID --nproc_per_node 8 --master_addr HOST0 ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from slipstream import SlipstreamDataset, SlipstreamLoader


def small_convnet(num_classes: int) -> nn.Module:
    """A tiny CNN for CPU runs (resnet18 is used on GPUs)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )  # fmt: skip


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="image folder, slip cache, LitData dir or s3:// URL")
    parser.add_argument("--remote-cache", help="s3://bucket/prefix to share the built cache")
    parser.add_argument("--cache-dir", type=Path, help="local cache folder (node-local disk)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--size", type=int, default=None, help="crop side (224 GPU, 32 CPU)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--backend", default=None, help="'native' or 'dali' (default: auto)")
    parser.add_argument("--checkpoint", type=Path, help="rank 0 saves here after each epoch")
    parser.add_argument("--record-samples", type=Path, help="folder: rank<r>.json of ids seen")
    return parser.parse_args()


def main() -> None:
    """Train ``--epochs`` epochs; rank 0 prints the loss and checkpoints."""
    args = parse_args()
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")  # reads torchrun's MASTER_ADDR, RANK...
    rank, world = dist.get_rank(), dist.get_world_size()
    logging.basicConfig(format=f"[rank {rank}] %(message)s")
    logging.getLogger("slipstream").setLevel(logging.INFO)  # builds, downloads, waits, shards

    # Rank 0 of the node (or of the job, with --remote-cache) builds; the others wait.
    dataset = SlipstreamDataset(args.data, cache_dir=args.cache_dir, remote_cache=args.remote_cache)
    size = args.size or (224 if cuda else 32)
    # No rank/world_size/device/num_workers: the loader reads them from the process group.
    loader = SlipstreamLoader(dataset, args.batch_size, crop_size=size, backend=args.backend)
    print(
        f"rank {rank}/{world} (local {local_rank}): {loader.samples_per_epoch()} samples, "
        f"{len(loader)} batches per epoch on {loader.device}, {loader.num_workers} decode "
        f"threads, cache {dataset.cache_path}",
        flush=True,
    )

    num_classes = dataset.num_classes or 1000
    net = torchvision.models.resnet18(num_classes=num_classes) if cuda else None
    net = (net or small_convnet(num_classes)).to(loader.device)
    model = DistributedDataParallel(net, device_ids=[local_rank] if cuda else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    seen: list[list[int]] = []

    for epoch in range(args.epochs):
        loader.set_epoch(epoch)  # a new shuffle (and new crops) each epoch, same on every rank
        start, ids = time.perf_counter(), []
        for batch in loader:
            images, labels = batch["image"], batch["label"]
            ids += batch["index"].tolist()  # the sample ids of this batch
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients across ranks here
            optimizer.step()
        seen.append(ids)
        if rank == 0:
            rate = len(ids) * world / (time.perf_counter() - start)
            print(f"epoch {epoch}: loss {loss.item():.3f}, {rate:,.0f} img/s in all", flush=True)
            if args.checkpoint is not None:  # the loader's position goes with the weights
                state = {"model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                         "loader": loader.state_dict(), "epoch": epoch}  # fmt: skip
                torch.save(state, args.checkpoint)

    if args.record_samples is not None:
        args.record_samples.mkdir(parents=True, exist_ok=True)
        record = {"rank": rank, "world_size": world, "num_samples": len(dataset), "epochs": seen}
        (args.record_samples / f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
