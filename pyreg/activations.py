"""Activations by name, as Keras: 'relu', 'softmax', 'sigmoid', 'tanh', 'linear'
or None. The arithmetic lives in csrc/activations.c."""
from . import _core

_KINDS = {
    None: _core.ACT_LINEAR,
    "linear": _core.ACT_LINEAR,
    "relu": _core.ACT_RELU,
    "sigmoid": _core.ACT_SIGMOID,
    "tanh": _core.ACT_TANH,
    "softmax": _core.ACT_SOFTMAX,
}


def get(identifier):
    """Normalised activation name (str) for a name, None, or a pyreg function."""
    if identifier is None:
        return "linear"
    if callable(identifier) and getattr(identifier, "__name__", None) in _KINDS:
        return identifier.__name__
    if isinstance(identifier, str) and identifier in _KINDS:
        return identifier
    raise ValueError(
        f"Unknown activation {identifier!r}: expected one of "
        "'relu', 'softmax', 'sigmoid', 'tanh', 'linear' or None")


def kind(name):
    return _KINDS[name]


def _apply(name, x):
    import numpy as np
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.size:
        _core.activation_forward(_KINDS[name], x, x)
    return x


def relu(x):
    return _apply("relu", x)


def sigmoid(x):
    return _apply("sigmoid", x)


def tanh(x):
    return _apply("tanh", x)


def softmax(x):
    return _apply("softmax", x)


def linear(x):
    return _apply("linear", x)
