"""slipstream's fused decode-crop inside your own DALI pipeline.

The slip cache supplies encoded bytes, slipstream's sampler supplies keyed crop windows
(same windows as ``SlipstreamLoader`` for the same seed/epoch), and the DALI operator
``fn.slipstream_decode_crop`` decodes only each window, straight to the output size.

Run: ``python examples/dali_pipeline.py [IMAGE_FOLDER_OR_CACHE]`` (default: the demo photos).
Needs ``pip install 'slipstream[dali]'``; runs on the CPU (``device_id=None``) or GPU 0.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.pytorch import DALIGenericIterator

import slipstream.dali as sdali
from slipstream import SlipstreamDataset
from slipstream.sampling import crops, epoch_order, flips

BATCH = 64


def batches(dataset: SlipstreamDataset, seed: int, epoch: int):
    """Yield (jpegs, windows, flips, labels) batches of one epoch, in slipstream's order."""
    cache = dataset.cache
    heights, widths = dataset.image_sizes()
    labels = np.asarray(cache.numbers("label"))
    order = epoch_order(len(cache), seed=seed, epoch=epoch)
    for start in range(0, len(order) - BATCH + 1, BATCH):  # full batches only
        ids = order[start : start + BATCH]
        windows = crops.random_resized_crop(heights[ids], widths[ids], ids, seed=seed, epoch=epoch)
        yield (
            [np.asarray(cache.item_bytes("image", int(i))) for i in ids],
            list(windows),
            list(flips(ids, seed=seed, epoch=epoch)),
            list(labels[ids].astype(np.int64)),
        )


def main() -> None:
    """Build (or open) the cache, then stream one epoch through the DALI pipeline."""
    if len(sys.argv) > 1:
        source = Path(sys.argv[1])
    else:
        from slipstream.demo import make_demo_folder

        source = make_demo_folder(Path(tempfile.gettempdir()) / "slipstream-demo-photos", 640)
    dataset = SlipstreamDataset(source)
    gpu = torch.cuda.is_available()

    def epoch_batches():  # DALI wants the generator function itself with cycle="raise"
        yield from batches(dataset, seed=0, epoch=0)

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=0 if gpu else None)
    def pipe():
        jpegs, windows, flip, labels = fn.external_source(
            source=epoch_batches, num_outputs=4, batch=True, cycle="raise"
        )
        images = sdali.decode_crop(jpegs, windows, size=224, flip=flip)  # uint8 HWC, CPU
        images = images.gpu() if gpu else images
        images = fn.crop_mirror_normalize(
            images,
            dtype=types.FLOAT,
            output_layout="CHW",
            mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
            std=[0.229 * 255, 0.224 * 255, 0.225 * 255],
        )
        return images, labels

    pipeline = pipe()
    pipeline.build()
    for i, (batch,) in enumerate(DALIGenericIterator(pipeline, ["image", "label"])):
        print(
            f"batch {i}: image {tuple(batch['image'].shape)} {batch['image'].dtype} "
            f"on {batch['image'].device}, labels {batch['label'].flatten()[:8].tolist()}"
        )


if __name__ == "__main__":
    main()
