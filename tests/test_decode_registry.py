"""The decode-engine registry: one engine per argument combination, one message otherwise."""

from __future__ import annotations

import pytest
import torch

from slipstream.decode import ENGINES, NoDecodeEngineError, select_engine

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only compared by type: nothing runs on it here


@pytest.mark.parametrize(
    ("backend", "decode_device", "image_format", "device", "engine", "runs_on"),
    [
        ("native", None, "jpeg", CPU, "native", "cpu"),
        ("native", None, "yuv420", CUDA, "native", "cpu"),
        ("native", "torch", "yuv420", CPU, "torch-yuv420", "torch"),
        ("native", "cuda", "yuv420", CUDA, "torch-yuv420", "cuda"),
        ("dali", None, "jpeg", CPU, "dali-cpu", "cpu"),
        ("dali", None, "jpeg", CUDA, "dali-mixed", "mixed"),
        ("dali", None, "yuv420", CUDA, "dali-cpu", "cpu"),
        ("dali", "cpu", "yuv420", CPU, "dali-cpu", "cpu"),
        ("dali", "mixed", "jpeg", CUDA, "dali-mixed", "mixed"),
    ],
)
def test_each_combination_has_one_engine(
    backend, decode_device, image_format, device, engine, runs_on
):
    spec, chosen = select_engine(backend, decode_device, image_format, device)
    assert (spec.name, chosen) == (engine, runs_on)


@pytest.mark.parametrize(
    ("backend", "decode_device", "image_format", "device"),
    [
        ("native", "mixed", "jpeg", CUDA),  # nvJPEG is DALI's
        ("dali", "mixed", "jpeg", CPU),  # nvJPEG needs a GPU
        ("dali", "mixed", "yuv420", CUDA),  # nvJPEG reads JPEG only
        ("native", "torch", "jpeg", CPU),  # the torch decode reads YUV420 only
        ("native", "cuda", "yuv420", CPU),  # decode_device="cuda" needs a CUDA device
        ("dali", "torch", "yuv420", CPU),  # the torch decode is not a DALI engine
    ],
)
def test_impossible_combinations_share_one_message(backend, decode_device, image_format, device):
    with pytest.raises(NoDecodeEngineError) as info:
        select_engine(backend, decode_device, image_format, device)
    message = str(info.value)
    assert message.startswith(
        f"no decode engine for backend={backend!r}, decode_device={decode_device!r}, "
        f"image_format={image_format!r}, device={str(device)!r}"
    )
    for spec in ENGINES:  # the message lists what is possible
        assert spec.describe() in message


def test_unknown_values_name_the_choices():
    with pytest.raises(ValueError, match="backend must be one of"):
        select_engine("ffcv", None, "jpeg", CPU)
    with pytest.raises(ValueError, match="decode_device must be one of"):
        select_engine("native", "gpu", "jpeg", CPU)
