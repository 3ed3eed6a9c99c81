"""Keras backend facts pyreg follows (floatx, epsilon, data format) and the
session state: layer-name counters and the random generator."""
import numpy as np

_EPSILON = 1e-7
_name_counts = {}
_rng = None


def floatx():
    return "float32"


def epsilon():
    """Fuzz factor of the probability losses (tf-keras: 1e-7)."""
    return _EPSILON


def image_data_format():
    return "channels_last"


def unique_name(base):
    """Keras-style unique names: dense, dense_1, dense_2, ..."""
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def clear_session():
    """Resets layer and model name counters, as keras.backend.clear_session()."""
    _name_counts.clear()


def set_seed(seed):
    global _rng
    _rng = np.random.Generator(np.random.PCG64(seed))


def rng():
    """The generator behind initial weights and shuffling (seeded by
    pyreg.utils.set_random_seed; from OS entropy otherwise)."""
    global _rng
    if _rng is None:
        _rng = np.random.Generator(np.random.PCG64())
    return _rng


def to_snake_case(name):
    """Keras's rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    import re
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
