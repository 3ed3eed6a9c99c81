"""Weight initializers (Keras names). Draws come from pyreg's seeded generator
(pyreg.utils.set_random_seed), so the same seed gives the same weights; they
cannot match TensorFlow's streams bit for bit: copy weights with set_weights
to compare."""
import math

import numpy as np

from . import backend


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _uniform(out, limit, rng):
    rng.random(out=out.reshape(-1), dtype=np.float32)  # [0, 1)
    out *= np.float32(2.0 * limit)
    out -= np.float32(limit)


class Initializer:
    def fill(self, out, rng=None):
        raise NotImplementedError

    def __call__(self, shape, dtype="float32"):
        out = np.empty(tuple(shape), dtype=np.float32)
        self.fill(out)
        return out

    def get_config(self):
        return {}


class Zeros(Initializer):
    def fill(self, out, rng=None):
        out[...] = 0


class Ones(Initializer):
    def fill(self, out, rng=None):
        out[...] = 1


class GlorotUniform(Initializer):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed=None):
        self.seed = seed

    def fill(self, out, rng=None):
        fan_in, fan_out = _fans(out.shape)
        limit = math.sqrt(6.0 / max(1.0, fan_in + fan_out))
        rng = rng or (np.random.Generator(np.random.PCG64(self.seed)) if self.seed is not None else backend.rng())
        _uniform(out, limit, rng)

    def get_config(self):
        return {"seed": self.seed}


class HeUniform(Initializer):
    """U(-limit, limit), limit = sqrt(6 / fan_in)."""

    def __init__(self, seed=None):
        self.seed = seed

    def fill(self, out, rng=None):
        fan_in, _ = _fans(out.shape)
        rng = rng or (np.random.Generator(np.random.PCG64(self.seed)) if self.seed is not None else backend.rng())
        _uniform(out, math.sqrt(6.0 / max(1, fan_in)), rng)

    def get_config(self):
        return {"seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def fill(self, out, rng=None):
        rng = rng or (np.random.Generator(np.random.PCG64(self.seed)) if self.seed is not None else backend.rng())
        rng.random(out=out.reshape(-1), dtype=np.float32)
        out *= np.float32(self.maxval - self.minval)
        out += np.float32(self.minval)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "glorot_uniform": GlorotUniform,
    "he_uniform": HeUniform, "random_uniform": RandomUniform,
}


def get(identifier):
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"Unknown initializer {identifier!r}: expected one of {sorted(_BY_NAME)} or an Initializer")


def name_of(init):
    for k, v in _BY_NAME.items():
        if type(init) is v:
            return k
    return type(init).__name__
