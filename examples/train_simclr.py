"""A SimCLR training loop on slipstream: a few steps of a tiny conv net on the demo photos.

Each batch holds two views of every image (``batch["view_0"]``, ``batch["view_1"]``): the
``simclr`` preset crops and flips them in the decoder (keyed by seed, epoch, sample id and
view) and runs SimCLR's color chain (jitter, grayscale, blur, normalization) on the output
device. The model is a small conv net with a projection head, trained with the NT-Xent loss
written out below. CPU by default, CUDA when there is one.

Run: ``python examples/train_simclr.py [IMAGE_FOLDER_OR_CACHE] [--steps 20]``
(default data: 640 demo photos cut from scikit-image's sample images).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import simclr


def encoder(width: int = 32, dim: int = 64) -> nn.Module:
    """A tiny conv net (4 stride-2 stages) and a 2-layer projection head."""
    layers, channels = [], 3
    for k in range(4):
        out = width * 2 ** min(k, 2)
        layers += [
            nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        channels = out
    head = [nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Linear(channels, dim)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head)


def nt_xent(z0: torch.Tensor, z1: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (SimCLR): each embedding's positive is the other view of its image."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # an embedding is not its own negative
    n = z0.shape[0]
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, positives)


def main() -> None:
    """Train for ``--steps`` steps, printing loss and img/s per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    if args.data is None:
        from slipstream.demo import make_demo_folder

        args.data = make_demo_folder(Path(tempfile.gettempdir()) / "slipstream-demo-photos", 640)
    dataset = SlipstreamDataset(args.data)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loader = SlipstreamLoader(
        dataset, args.batch_size, simclr(args.size), seed=0, device=device, drop_last=True
    )
    model = encoder().to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    print(f"{dataset}\n{len(loader)} batches/epoch on {device}, backend {loader.backend}")

    step, epoch = 0, 0
    start = time.perf_counter()
    while step < args.steps:
        loader.set_epoch(epoch)
        for batch in loader:
            view_0, view_1 = batch["view_0"], batch["view_1"]
            if step == 0:
                gap = (view_0 - view_1).abs().mean().item()
                print(f"views {tuple(view_0.shape)}, mean |view_0 - view_1| {gap:.3f}")
            loss = nt_xent(model(view_0), model(view_1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            rate = step * args.batch_size / (time.perf_counter() - start)
            print(f"step {step} epoch {epoch} loss {loss.item():.4f} ({rate:,.0f} img/s, 2 views)")
            if step == args.steps:
                break
        epoch += 1


if __name__ == "__main__":
    main()
