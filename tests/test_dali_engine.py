"""The DALI engine's own life cycle: a break drains it, an error inside DALI drops it.

Neither path may call DALI's private API or leave a batch in use that the Prefetcher
hands out again.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "nvidia.dali", reason="nvidia-dali is not installed (pip install 'slipstream[dali]')"
)

from loader_engines import assert_same, batches, make_loader  # noqa: E402

from slipstream.dali.engine import BatchFeed, DaliEngine  # noqa: E402
from slipstream.pipelines import supervised_train  # noqa: E402

pytestmark = pytest.mark.dali

UINT8_TRAIN = supervised_train(48, normalize=False, dtype="uint8")


def test_a_break_drains_and_keeps_the_pipeline(photo_dataset, monkeypatch):
    """After a break the same pipeline runs the next epochs, batches equal to native."""
    builds = []
    build = DaliEngine._build
    monkeypatch.setattr(DaliEngine, "_build", lambda self: builds.append(1) or build(self))
    loader = make_loader(photo_dataset, "dali-cpu-jpeg", 32, UINT8_TRAIN, seed=4)
    native = make_loader(photo_dataset, "native-jpeg", 32, UINT8_TRAIN, seed=4)
    for epoch in range(3):
        loader.set_epoch(epoch)
        for k, _ in enumerate(loader):
            if k == epoch:  # break after 1, 2, 3 batches
                break
        assert not loader._decoder._feed.pending  # every fed batch came back
    for epoch in (5, 6):  # whole epochs after the breaks: one pipeline, native's batches
        loader.set_epoch(epoch)
        native.set_epoch(epoch)
        assert_same(batches(native), batches(loader))
    assert len(builds) == 1  # a rebuild costs nvJPEG's set-up each epoch on a GPU


def test_an_error_inside_dali_drops_the_pipeline(photo_dataset, monkeypatch):
    """A DALI error is raised (no crash); its batches are never reused; the next epoch runs."""
    fed = []
    feed_next = BatchFeed.__next__

    def malformed_third_batch(self):
        arrays = feed_next(self)
        fed.append(self.pending[-1])
        if len(fed) == 3:  # windows of shape [3]: the operator's argument check throws
            arrays[1] = np.ascontiguousarray(arrays[1][:, :3])
        return arrays

    monkeypatch.setattr(BatchFeed, "__next__", malformed_third_batch)
    loader = make_loader(photo_dataset, "dali-cpu-jpeg", 32, UINT8_TRAIN, seed=4)
    with pytest.raises(RuntimeError, match=r"\[4\] or \[K, 4\]"):
        list(loader)
    abandoned = {id(batch) for batch in fed[2:]}
    ring = {id(batch) for batch in loader.prefetcher._slots}
    assert not abandoned & ring  # what DALI may still read is out of the ring
    monkeypatch.setattr(BatchFeed, "__next__", feed_next)
    native = make_loader(photo_dataset, "native-jpeg", 32, UINT8_TRAIN, seed=4)
    native.set_epoch(1)  # a pass left early (here by the error) runs the next epoch next
    assert_same(batches(native), batches(loader))  # a fresh pipeline, epoch 1
