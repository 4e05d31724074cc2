"""The examples run end to end (``train_ddp.py`` under torchrun: ``test_launchers.py``)."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.dali
def test_dali_pipeline_example(photo_dataset):
    pytest.importorskip("nvidia.dali", reason="needs pip install 'slipstream[dali]'")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "dali_pipeline.py"),
            str(photo_dataset.cache_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "epoch 0: 240 images" in lines and "epoch 1: 240 images" in lines, result.stdout
    assert "image (64, 3, 224, 224) torch.float32" in lines[0], result.stdout


def test_train_supervised_example(photo_dataset):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "train_supervised.py"),
            str(photo_dataset.cache_path),
            "--steps",
            "10",
            "--batch-size",
            "16",
            "--size",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if " loss " in line]
    assert len(losses) == 2 and all(loss == loss for loss in losses), result.stdout  # not NaN
    checkpoint = [line for line in lines if line.startswith("checkpoint: loader at ")]
    assert len(checkpoint) == 1, result.stdout
    state = ast.literal_eval(checkpoint[0].removeprefix("checkpoint: loader at "))
    assert (state["epoch"], state["batch"], state["samples"], state["seed"]) == (0, 10, 160, 0)


def test_train_simclr_example(photo_dataset):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "train_simclr.py"),
            str(photo_dataset.cache_path),
            "--steps",
            "6",
            "--batch-size",
            "32",
            "--size",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if " loss " in line]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses), result.stdout
    assert any("img/s" in line for line in lines), result.stdout
    views = next(line for line in lines if line.startswith("views "))
    assert views.startswith("views (32, 3, 32, 32)"), result.stdout
    assert float(views.split("|view_0 - view_1| ")[1]) > 0.05, result.stdout  # views differ
