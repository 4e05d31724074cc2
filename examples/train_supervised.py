"""A supervised training loop on slipstream: a few steps of a small ResNet on the demo photos.

Runs on the CPU here and on the GPU when there is one (then the DALI backend decodes with
nvJPEG and batches arrive normalized on the GPU). The loop is what a real training script
does with a ``SlipstreamLoader``: ``set_epoch``, iterate, step, and checkpoint the loader's
``state_dict`` next to the model's so a resumed run sees exactly the remaining batches.

Run: ``python examples/train_supervised.py [IMAGE_FOLDER_OR_CACHE] [--steps 20]``
(default data: 640 demo photos cut from scikit-image's sample images).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.pipelines import supervised_train


def main() -> None:
    """Train for ``--steps`` steps, printing loss and img/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    if args.data is None:
        from slipstream.demo import make_demo_folder

        args.data = make_demo_folder(Path(tempfile.gettempdir()) / "slipstream-demo-photos", 640)
    dataset = SlipstreamDataset(args.data)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    num_classes = int(dataset.cache.numbers("label").max()) + 1
    loader = SlipstreamLoader(
        dataset, args.batch_size, supervised_train(args.size), seed=0, device=device
    )
    model = torchvision.models.resnet18(num_classes=num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    print(f"{dataset}\n{len(loader)} batches/epoch on {device}, backend {loader.backend}")

    step, epoch = 0, 0
    start = time.perf_counter()
    while step < args.steps:
        loader.set_epoch(epoch)
        for batch in loader:
            images, labels = batch["image"], batch["label"]
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % 5 == 0 or step == args.steps:
                rate = step * args.batch_size / (time.perf_counter() - start)
                print(f"step {step} epoch {epoch} loss {loss.item():.3f} ({rate:,.0f} img/s)")
            if step == args.steps:
                checkpoint = {"model": model.state_dict(), "loader": loader.state_dict()}
                print(f"checkpoint: loader at {checkpoint['loader']}")
                break
        epoch += 1


if __name__ == "__main__":
    main()
