"""Decode engines: every way slipstream turns a batch's stored items into pixels.

One registry (:mod:`slipstream.decode.registry`) maps ``(backend, decode_device,
image_format, device)`` to one engine; each engine implements the same
:class:`~slipstream.decode.stage.DecodeStage` contract and returns a per-sample status.
"""

from slipstream.decode.errors import (
    BatchDecodeError,
    NoDecodeEngineError,
    SampleCorruptError,
    SampleDecodeError,
)
from slipstream.decode.registry import ENGINES, EngineSpec, default_backend, select_engine
from slipstream.decode.stage import DecodedBatch, DecodeStage, SampleFailure

__all__ = [
    "ENGINES",
    "BatchDecodeError",
    "DecodeStage",
    "DecodedBatch",
    "EngineSpec",
    "NoDecodeEngineError",
    "SampleCorruptError",
    "SampleDecodeError",
    "SampleFailure",
    "default_backend",
    "select_engine",
]
