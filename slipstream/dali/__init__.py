"""slipstream's DALI integration: the only subpackage that imports ``nvidia.dali``.

Two uses:

* ``SlipstreamLoader(..., backend="dali")``: the loader's gather stage feeds a DALI
  pipeline through ``external_source`` and a ``DALIGenericIterator`` hands back the
  batches (:mod:`slipstream.dali.engine`).
* Building blocks for your own ``pipeline_def``: :class:`PrefetchedBatches` (the
  prefetcher's batches: bytes, crop windows, flips, labels) read by
  :func:`external_source`, and :func:`decode_crop` (slipstream's fused CPU operator, or
  nvJPEG with ``device="mixed"``).

The operator's plugin is built for the installed DALI on first use (see
:mod:`slipstream.dali.plugin`). Install DALI with ``pip install 'slipstream[dali]'``.

Example:
    >>> from nvidia.dali import fn, pipeline_def
    >>> import slipstream.dali as sdali
    >>> source = sdali.PrefetchedBatches(dataset, 64, supervised_train(224))  # doctest: +SKIP
    >>> @pipeline_def(batch_size=64, num_threads=4, device_id=None)
    ... def pipe():
    ...     jpegs, windows, flips, labels = sdali.external_source(source)
    ...     return sdali.decode_crop(jpegs, windows, size=224, flip=flips), labels
"""

from __future__ import annotations

from slipstream.dali.ops import DECODE_DEVICES, decode_crop, external_source
from slipstream.dali.plugin import PluginBuildError, load_plugin
from slipstream.dali.source import PrefetchedBatches

__all__ = [
    "DECODE_DEVICES",
    "PluginBuildError",
    "PrefetchedBatches",
    "decode_crop",
    "external_source",
    "load_plugin",
]
