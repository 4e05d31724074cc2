"""The self-contained demo behind ``slipstream demo``."""

from slipstream.demo.photos import make_demo_folder
from slipstream.demo.run import run_demo

__all__ = ["make_demo_folder", "run_demo"]
