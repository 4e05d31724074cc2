"""Batch transforms that run on the output device."""

from slipstream.transforms.output import ImageOutput

__all__ = ["ImageOutput"]
