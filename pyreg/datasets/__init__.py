"""Data sets in Keras's format: ``cifar10`` (the real CIFAR-10, loaded from a
local copy or downloaded) and ``synthetic`` (an offline, CIFAR-shaped
SYNTHETIC set, not CIFAR-10). Both use only NumPy and the standard library."""

from . import cifar10, synthetic

__all__ = ["cifar10", "synthetic"]
