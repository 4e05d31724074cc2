"""slipstream: a fast, frictionless image data loader for PyTorch training.

Example:
    >>> from slipstream import SlipstreamDataset, SlipstreamLoader  # doctest: +SKIP
    >>> from slipstream.pipelines import supervised_train  # doctest: +SKIP
    >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
    >>> loader = SlipstreamLoader(ds, 256, supervised_train(224), seed=0)  # doctest: +SKIP
"""

from slipstream.dataset import SlipstreamDataset
from slipstream.errors import SlipstreamError
from slipstream.loader import SlipstreamLoader

__version__ = "0.1.0"

__all__ = ["SlipstreamDataset", "SlipstreamError", "SlipstreamLoader", "__version__"]
