"""Decode engines: every way slipstream turns a batch's stored items into pixels.

One registry (:mod:`slipstream.decode.registry`) maps ``(backend, decode_device,
image_format, device)`` to one engine; each engine implements the same
:class:`~slipstream.decode.stage.DecodeStage` contract and returns a per-sample status.
"""
