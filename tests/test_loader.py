"""SlipstreamLoader beyond the per-engine contract: arguments, defaults, DALI absence, CUDA.

The loader contract on every decode engine (shapes, dtypes, labels, order, keyed crops,
set_epoch, resume, distributed, drop_last, multi-view, on_error) is
``test_loader_contract.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from loader_engines import make_loader

from slipstream import SlipstreamLoader
from slipstream.pipelines import supervised_train

UINT8_TRAIN = supervised_train(64, normalize=False, dtype="uint8")


def test_bad_arguments(photo_dataset):
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(photo_dataset, "native-jpeg", 0, UINT8_TRAIN)
    with pytest.raises(ValueError, match="backend"):
        make_loader(photo_dataset, "native-jpeg", 8, UINT8_TRAIN, backend="nope")
    with pytest.raises(KeyError, match="not an image field"):
        make_loader(photo_dataset, "native-jpeg", 8, {"label": UINT8_TRAIN["image"]})
    with pytest.raises(IndexError):
        make_loader(photo_dataset, "native-jpeg", 8, UINT8_TRAIN, indices=[0, 10_000])


@pytest.mark.gpu
def test_cuda_output_matches_cpu(photo_dataset):
    for pipelines in (UINT8_TRAIN, supervised_train(64)):
        cpu = make_loader(photo_dataset, "native-jpeg", 16, pipelines)
        gpu = make_loader(photo_dataset, "native-jpeg", 16, pipelines, device="cuda")
        for a, b in zip(cpu, gpu, strict=True):
            assert b["image"].is_cuda and b["label"].is_cuda
            torch.testing.assert_close(b["image"].cpu(), a["image"], rtol=0, atol=1e-5)
            assert torch.equal(b["index"].cpu(), a["index"])


def test_dali_backend_without_dali_names_the_extra(photo_dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # `import nvidia.dali` fails
    for name in [
        m for m in sys.modules if m == "slipstream.dali" or m.startswith("slipstream.dali.")
    ]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    with pytest.raises(ImportError, match=r"pip install 'slipstream\[dali\]'"):
        make_loader(photo_dataset, "native-jpeg", 8, UINT8_TRAIN, backend="dali")


def test_import_slipstream_does_not_import_dali():
    code = "import sys, slipstream; print('nvidia.dali' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stdout + proc.stderr


def test_default_backend_is_dali_where_installed(photo_dataset, monkeypatch):
    import importlib.util

    from slipstream.decode import default_backend

    installed = importlib.util.find_spec("nvidia.dali") is not None
    assert default_backend() == ("dali" if installed else "native")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_backend() == "native"
    loader = SlipstreamLoader(photo_dataset, 8, UINT8_TRAIN, device="cpu")
    assert loader.backend == "native"
