"""slipstream's prefetcher and fused decode-crop inside your own DALI pipeline.

``PrefetchedBatches`` hands DALI the batches ``SlipstreamLoader`` would decode (same order,
crop windows and flips for the same seed and epoch) as views into its reused buffers;
``decode_crop`` decodes only each window, straight to the output size (slipstream's CPU
operator, or nvJPEG with ``device="mixed"`` on a GPU). The rest of the graph is yours.

Run: ``python examples/dali_pipeline.py [IMAGE_FOLDER_OR_CACHE]`` (default: the demo photos).
Needs ``pip install 'slipstream[dali]'``; runs on the CPU (``device_id=None``) or GPU 0.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

import slipstream.dali as sdali
from slipstream import SlipstreamDataset
from slipstream.pipelines import supervised_train

BATCH = 64


def main() -> None:
    """Build (or open) the cache, then stream two epochs through the DALI pipeline."""
    if len(sys.argv) > 1:
        source_path = Path(sys.argv[1])
    else:
        from slipstream.demo import make_demo_folder

        source_path = make_demo_folder(Path(tempfile.gettempdir()) / "slipstream-demo-photos", 640)
    dataset = SlipstreamDataset(source_path)
    gpu = torch.cuda.is_available()
    source = sdali.PrefetchedBatches(dataset, BATCH, supervised_train(224), seed=0)

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=0 if gpu else None)
    def pipe():
        jpegs, windows, flips, labels = sdali.external_source(source)
        images = sdali.decode_crop(
            jpegs, windows, size=224, flip=flips, device="mixed" if gpu else "cpu"
        )
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
    iterator = DALIGenericIterator(
        pipeline, ["image", "label"], auto_reset=True, last_batch_policy=LastBatchPolicy.PARTIAL
    )
    for epoch in range(2):
        seen = 0
        for i, (batch,) in enumerate(iterator):
            seen += batch["image"].shape[0]
            if i == 0:
                print(
                    f"epoch {epoch} batch 0: image {tuple(batch['image'].shape)} "
                    f"{batch['image'].dtype} on {batch['image'].device}, "
                    f"labels {batch['label'].flatten()[:8].tolist()}"
                )
        print(f"epoch {epoch}: {seen} images")


if __name__ == "__main__":
    main()
