"""Keras's utils: to_categorical, set_random_seed, Progbar."""
import random

import numpy as np

from .. import backend
from .progbar import Progbar  # noqa: F401


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encoding as keras.utils.to_categorical: (N,) or (N, 1) integer
    labels -> (N, num_classes), float32 by default."""
    y = np.array(y, dtype="int")
    input_shape = y.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = tuple(input_shape[:-1])
    y = y.reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: expected labels >= 0, got {y.min()}")
    if not num_classes:
        num_classes = int(np.max(y)) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: label {y.max()} is out of range for num_classes={num_classes}")
    n = y.shape[0]
    categorical = np.zeros((n, num_classes), dtype=dtype)
    categorical[np.arange(n), y] = 1
    return categorical.reshape(input_shape + (num_classes,))


def set_random_seed(seed):
    """Seeds pyreg's generator (initial weights, shuffling), Python's and NumPy's,
    as keras.utils.set_random_seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: expected a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    backend.set_seed(int(seed))
