"""Weight regularizers with Keras's formulas (tf-keras, Keras 2 API):

    L1(w)   = l1 * sum(|w|)
    L2(w)   = l2 * sum(w**2)            # no 1/2, as Keras (the tutorial writes 1/2)
    L1L2(w) = l1 * sum(|w|) + l2 * sum(w**2)

The penalty is added, unscaled, to the batch-mean loss, and is part of every
reported loss (progress bar, History, evaluate). Its gradient is
l1 * sign(w) + 2 * l2 * w with sign(0) = 0, as TensorFlow. The sums run in C,
in double precision.
"""
import math
import numbers

import numpy as np

from . import _core


def _check_factor(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(np.float32(value))


class Regularizer:
    """Base class: a callable returning the penalty of a weight array."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        return _core.reg_penalty(x, self.l1, self.l2)

    def gradient(self, x):
        """d penalty / dx: l1 * sign(x) + 2 * l2 * x."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        g = np.zeros_like(x)
        _core.reg_backward(g, x, self.l1, self.l2)
        return g

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


class L1(Regularizer):
    """l1 * sum(|x|). Default l1=0.01; the old keyword `l` is accepted."""

    def __init__(self, l1=0.01, **kwargs):
        if "l" in kwargs:
            l1 = kwargs.pop("l")
        if kwargs:
            raise TypeError(f"L1: unexpected arguments {sorted(kwargs)}")
        self.l1 = _check_factor(0.01 if l1 is None else l1, "l1")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """l2 * sum(x**2) (no 1/2). Default l2=0.01; the old keyword `l` is accepted."""

    def __init__(self, l2=0.01, **kwargs):
        if "l" in kwargs:
            l2 = kwargs.pop("l")
        if kwargs:
            raise TypeError(f"L2: unexpected arguments {sorted(kwargs)}")
        self.l2 = _check_factor(0.01 if l2 is None else l2, "l2")

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x**2). Class defaults are 0.0 (as Keras);
    the function l1_l2() defaults to 0.01 and 0.01."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _check_factor(0.0 if l2 is None else l2, "l2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


l1 = L1
l2 = L2


def l1_l2(l1=0.01, l2=0.01):
    """Elastic net: L1L2(l1=l1, l2=l2), defaults 0.01 each (tf-keras)."""
    return L1L2(l1=l1, l2=l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01), "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """A regularizer from None, an instance, a name ('l1', 'l2', 'l1_l2') or a config dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Unknown regularizer {identifier!r}: expected None, 'l1', 'l2', 'l1_l2' or a Regularizer")


def serialize(reg):
    if reg is None:
        return None
    return {"class_name": type(reg).__name__, "config": reg.get_config()}


def deserialize(config):
    if config is None:
        return None
    cls = {"L1": L1, "L2": L2, "L1L2": L1L2}.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown regularizer config {config!r}")
    return cls(**config.get("config", {}))
